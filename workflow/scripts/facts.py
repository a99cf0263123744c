"""Rule facts: CounterFact records → validated facts.parquet (kis.knowledge.load_facts)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import io, knowledge  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
frame, meta = knowledge.load_facts(sm.params.facts)
io.write_parquet(frame, sm.output.facts, metadata=meta)
log.info("facts from %s: %d valid of %d records (%d skipped)", meta["source"], len(frame), meta["n_records"],
         meta["n_skipped"])
