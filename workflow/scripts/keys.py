"""Rule keys: every layer's key at the subject's last token for the analysis items, one pass (kis.keys)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import io, keys, models  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
device = models.stage_device(sm.config, f"rule {sm.rule}")  # no CUDA and no run_on_cpu: fail now
models.pin_threads(sm.threads)
keys.run_rule(model_name=sm.wildcards.model, manifest=sm.input.manifest, items=sm.input.analysis,
              out=sm.output.table, position=sm.params.position, context_templates=list(sm.params.context_templates),
              batch_size=sm.resources.batch_size, device=device, logger=log)
