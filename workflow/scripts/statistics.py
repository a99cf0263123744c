"""Rule statistics: kurtosis and other moments of the off-diagonal entries, all models (kis.superposition)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import io, superposition  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
runs = [{"model": m, "label": sm.params.labels[m], "manifest": man, "table": table}
        for m, man, table in zip(sm.params.models, sm.input.manifests, sm.input.tables)]
table, meta = superposition.statistics_table(runs)
io.write_parquet(table, sm.output.table, metadata=meta)
full = table[(table.kind == "P") & (table.n == table.groupby("model").n.transform("max"))]
for model, g in full.groupby("model"):
    log.info("%s: kurtosis of off-diagonal P per layer %s", model, g.sort_values("layer")["kurtosis"].round(2).tolist())
