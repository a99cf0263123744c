"""Rule fig_case_study: the most superposed fact pairs (largest off-diagonal |P_ij|) of one model (kis.figures)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import figures, io  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
figures.run_case_study(sm.input.table, sm.input.item_table, sm.wildcards.model, sm.output.md, sm.output.csv,
                       sm.params.label, sm.params.layer, sm.params.top)
log.info("case study of %s at layer %d (top %d) -> %s", sm.wildcards.model, sm.params.layer, sm.params.top,
         sm.output.md)
