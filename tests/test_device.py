"""Fail fast: a GPU stage on a node without CUDA stops at once, naming the node and the setting, unless the config
opts into the CPU (the offline default does)."""
import platform
import time

import pytest
import torch

import wf
from kis import models


def test_no_cuda_and_no_opt_in_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("KIS_DEVICE", raising=False)
    with pytest.raises(RuntimeError) as err:
        models.require_device("cpu", allow_cpu=False, where="rule covariance")
    msg = str(err.value)
    assert "rule covariance" in msg and platform.node() in msg and "run_on_cpu: true" in msg
    with pytest.raises(RuntimeError, match="no usable CUDA"):  # asking for cuda where there is none
        models.require_device("cuda", allow_cpu=True, where="rule keys")
    assert models.require_device("cpu", allow_cpu=True, where="rule keys") == "cpu"
    assert models.stage_device({"run_on_cpu": True}, "rule keys") == "cpu"
    with pytest.raises(RuntimeError):
        models.stage_device({"run_on_cpu": False}, "rule keys")  # the schema's default


def test_offline_default_opts_into_cpu():
    import yaml

    assert yaml.safe_load((wf.REPO / "config" / "config.yaml").read_text())["run_on_cpu"] is True
    assert yaml.safe_load((wf.REPO / "config" / "paper.yaml").read_text())["run_on_cpu"] is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_rule_without_cuda_fails_in_seconds_naming_node_and_setting(tmp_path):
    cfg = wf.tiny_config(tmp_path, families=("gpt2",), overrides={"run_on_cpu": False})
    res = wf.results(cfg)
    target = str(res / "covariance" / "tiny-gpt2.safetensors")
    wf.snakemake(cfg, "--cores", "1", str(res / "models" / "tiny-gpt2" / "manifest.json"),
                 str(res / "corpus" / "texts.parquet"), env={"KIS_DEVICE": ""})
    t = time.perf_counter()
    proc = wf.snakemake(cfg, "--cores", "1", target, check=False, env={"KIS_DEVICE": ""})
    seconds = time.perf_counter() - t
    assert proc.returncode != 0
    log = (res / "logs" / "covariance" / "tiny-gpt2.log").read_text()
    assert platform.node() in log and "run_on_cpu: true" in log and "rule covariance" in log
    assert not (res / "covariance" / "tiny-gpt2.safetensors").exists()
    assert seconds < 60, seconds  # snakemake's own start included; the job stops before loading the model
