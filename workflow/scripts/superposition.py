"""Rule superposition: P, Q and the whitening / activation cosines of the keys, every layer (kis.superposition)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821
from kis import io, models, superposition  # noqa: E402

sm = snakemake  # noqa: F821
log = io.setup_logging(sm.log[0])
device = models.stage_device(sm.config, f"rule {sm.rule}")  # no CUDA and no run_on_cpu: fail now
models.pin_threads(sm.threads)
superposition.run_rule(model_name=sm.wildcards.model, keys=sm.input.key_table, cov=sm.input.cov, out=sm.output.table,
                       ridge=sm.params.ridge, condition_warn=sm.params.condition_warn,
                       device=device, logger=log)
