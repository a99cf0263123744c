"""Rule covariance: C_l for every layer in one pass (kis.covariance), checkpointed, resumable."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import covariance, io, models  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
models.pin_threads(sm.threads)
covariance.run_rule(manifest=sm.input.manifest, texts=sm.input.texts, out=sm.output.cov,
                    max_length=sm.params.max_length, store_dtype=sm.params.store_dtype,
                    checkpoint=sm.params.checkpoint, checkpoint_every=sm.resources.checkpoint_every,
                    token_budget=sm.resources.token_budget, device=models.default_device(), logger=log)
