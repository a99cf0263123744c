"""Rule fig_heatmap: the P matrix of one model at every (configured) layer, one grid (kis.figures)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import figures, io  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
figures.run_heatmap(sm.input.table, sm.wildcards.model, sm.output.png, sm.output.csv, sm.params.label,
                    sm.params.layers, sm.params.dpi)
log.info("heatmaps of %s (layers %s) -> %s", sm.wildcards.model, sm.params.layers, sm.output.png)
