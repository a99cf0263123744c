"""Rule trajectory: one method's lifelong editing trajectory on one model (kis.trajectory)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import io, models, trajectory  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
device = models.stage_device(sm.config, f"rule {sm.rule}")  # no CUDA and no run_on_cpu: fail now
trajectory.run_rule(manifest=sm.input.manifest, cov=sm.input.cov, known=sm.input.known, facts=sm.input.facts,
                    out=sm.output.table, model_name=sm.wildcards.model, method=sm.wildcards.method,
                    settings={**sm.params.settings, "batch_size": sm.resources.batch_size}, names=sm.params.names,
                    device=device, logger=log)
