"""Rule known: which facts one model knows (teacher-forced exact match, kis.knowledge.run_known)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import io, knowledge, models  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
device = models.stage_device(sm.config, f"rule {sm.rule}")  # no CUDA and no run_on_cpu: fail now
models.pin_threads(sm.threads)
table, meta = knowledge.run_known(manifest=sm.input.manifest, facts=sm.input.facts, model_name=sm.wildcards.model,
                                  batch_size=sm.resources.batch_size, device=device, logger=log)
io.write_parquet(table, sm.output.known, metadata=meta)
