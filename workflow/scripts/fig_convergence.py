"""Rule fig_convergence: KDE and kurtosis of off-diagonal P[:n, :n] as n grows, one model (kis.figures)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import figures, io  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
figures.run_convergence(sm.input.table, sm.input.statistics, sm.wildcards.model, sm.output.png, sm.output.csv,
                        sm.params.label, sm.params.layer, sm.params.points, sm.params.dpi)
log.info("convergence of %s at layer %d -> %s", sm.wildcards.model, sm.params.layer, sm.output.png)
