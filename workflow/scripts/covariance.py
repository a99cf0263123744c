"""Rule covariance: C_l for every layer through a memory plan of layer groups (kis.covariance), checkpointed."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import covariance, io, models  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
device = models.stage_device(sm.config, f"rule {sm.rule}")  # no CUDA and no run_on_cpu: fail now
models.pin_threads(sm.threads)
covariance.run_rule(manifest=sm.input.manifest, texts=sm.input.texts, out=sm.output.cov,
                    max_length=sm.params.max_length, store_dtype=sm.params.store_dtype,
                    checkpoint=sm.params.checkpoint, checkpoint_every=sm.resources.checkpoint_every or None,
                    checkpoint_minutes=sm.resources.checkpoint_s / 60,
                    device_memory_gb=sm.resources.device_mib / 1024 or None,
                    token_budget=sm.resources.token_budget, device=device, logger=log)
