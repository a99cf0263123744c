"""Rule fig_scaling_law: kurtosis of off-diagonal P against depth and model size (kis.figures)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import figures, io  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
figures.run_scaling_law(sm.input.statistics, sm.output.png, sm.output.csv, sm.params.dpi)
log.info("scaling law -> %s", sm.output.png)
