"""Rule fig_kde: KDE of the off-diagonal P entries of one model, one panel per layer (kis.figures)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import figures, io  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
figures.run_kde(sm.input.table, sm.wildcards.model, sm.output.png, sm.output.csv, sm.params.label,
                sm.params.points, sm.params.dpi)
log.info("KDEs of %s -> %s", sm.wildcards.model, sm.output.png)
