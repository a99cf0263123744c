"""Rule covariance_diagnostics: condition number and rank of every layer's C, one layer in memory at a time."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import covariance, io  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
_, meta = covariance.load(sm.input.cov, layers=[])
table = covariance.diagnostics(covariance.iter_layers(sm.input.cov), sm.params.condition_warn)
for row in table.itertuples():
    if row.singular or row.ill_conditioned:
        log.warning("layer %d: C is %s, condition number %.3g (rank %d of %d)", row.layer,
                    "singular" if row.singular else "badly conditioned", row.condition_number, row.rank, row.f)
table["corpus_id"] = meta.get("corpus_id")
io.write_parquet(table, sm.output.table, metadata=meta)
log.info("diagnostics for %d layers, %d flagged", len(table), int((table.singular | table.ill_conditioned).sum()))
