"""Rule fig_trajectories: confidence / retention / efficacy against edits, and measured vs predicted interference
(kis.editing_figures)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import editing_figures, io  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
editing_figures.run_trajectories(list(sm.input.tables), sm.output.png, sm.output.csv, sm.output.interference_png,
                                 sm.output.interference_csv, labels=dict(sm.params.labels), dpi=sm.params.dpi)
log.info("trajectory figures -> %s, %s", sm.output.png, sm.output.interference_png)
