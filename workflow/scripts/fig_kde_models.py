"""Rule fig_kde_models: KDE of off-diagonal P at one layer, all models on one axis (kis.figures)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import figures, io  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
figures.run_kde_models(dict(zip(sm.params.models, sm.input.tables)), sm.input.statistics, sm.output.png,
                       sm.output.csv, sm.params.layer, sm.params.points, sm.params.dpi)
log.info("layer-%d KDEs of %d models -> %s", sm.params.layer, len(sm.params.models), sm.output.png)
