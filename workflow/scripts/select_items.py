"""Rule select_items: the analysis set, N facts known by every model (kis.knowledge.select_items)."""
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import io, knowledge  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
facts = pd.read_parquet(sm.input.facts)
known = {m: pd.read_parquet(p) for m, p in zip(sm.params.models, sm.input.known)}
a = sm.params.analysis
items, meta = knowledge.select_items(facts, known, n_items=a["n_items"], selection=a["selection"], seed=a["seed"],
                                     require_known=a["require_known"])
io.write_parquet(items, sm.output.table, metadata=meta)
log.info("analysis set: %d items (%s, seed %d) from %d facts, %d known by all of %s", len(items), meta["selection"],
         meta["seed"], meta["n_facts"], meta["n_known_by_all"], ", ".join(meta["models"]))
