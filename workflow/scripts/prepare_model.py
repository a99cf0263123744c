"""Rule prepare_model: make one model loadable offline (kis.models.prepare)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import io, models  # noqa: E402

log = io.setup_logging(snakemake.log[0])  # noqa: F821
out_dir = Path(snakemake.output.manifest).parent  # noqa: F821
manifest = models.prepare(snakemake.params.spec, out_dir)  # noqa: F821
log.info("prepared %s: %s", snakemake.wildcards.model, manifest)  # noqa: F821
