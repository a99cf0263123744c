"""Rule corpus: the seeded text sample behind C (kis.corpus.build)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import corpus, io  # noqa: E402

log = io.setup_logging(snakemake.log[0])  # noqa: F821
frame, meta = corpus.build(snakemake.params.corpus)  # noqa: F821
io.write_parquet(frame, snakemake.output.texts, metadata=meta)  # noqa: F821
log.info("corpus %s: %d texts, %d characters, sample hash %s", meta["corpus_id"], meta["n_texts"],
         meta["n_chars"], meta["sample_hash"])
