"""The covariance memory plan: published shapes, the packed accumulator's size, grouping, and every paper model
fitting one 80 GB GPU."""
import numpy as np
import pytest
import yaml

from kis import plan
import wf

# total parameters as published (model cards / papers), independent of the formulas in kis.plan
PUBLISHED_PARAMS = {
    "openai-community/gpt2": 124_439_808, "openai-community/gpt2-medium": 354_823_168,
    "openai-community/gpt2-large": 774_030_080, "EleutherAI/pythia-1b": 1_011_781_632,
    "EleutherAI/pythia-2.8b": 2_775_208_960, "EleutherAI/pythia-6.9b": 6_857_302_016,
    "meta-llama/Llama-2-7b-hf": 6_738_415_616, "meta-llama/Llama-2-13b-hf": 13_015_864_320,
    "meta-llama/Meta-Llama-3-8B": 8_030_261_248, "meta-llama/Llama-3.1-8B": 8_030_261_248,
}


def paper_config():
    return yaml.safe_load((wf.REPO / "config" / "paper.yaml").read_text())


def test_shapes_file_covers_every_paper_model_and_matches_published_parameter_counts():
    shapes = plan.load_shapes()
    hub_ids = [m["hub_id"] for m in paper_config()["models"].values()]
    assert set(hub_ids) <= set(shapes), set(hub_ids) - set(shapes)
    for hub_id, n in PUBLISHED_PARAMS.items():
        assert plan.count_params(shapes[hub_id]) == n, hub_id
    # GPT-J's card gives 6,053,381,344 counting its 50,257-token vocabulary; the checkpoint's padded 50,400 rows
    # give the module total within 0.1 %
    assert abs(plan.count_params(shapes["EleutherAI/gpt-j-6B"]) / 6_053_381_344 - 1) < 1e-3


@pytest.mark.parametrize("f", [64, 511, 512, 600, 2048, 3072, 11008, 13824, 16384])
def test_packed_panels_hold_exactly_the_upper_triangle_blocks(f):
    bounds = plan.panel_bounds(f)
    assert bounds[0][0] == 0 and bounds[-1][1] == f and all(b == a2 for (_, b), (a2, _) in zip(bounds, bounds[1:]))
    if f > 4096:  # brute force for big f is slow; count covered cells by panel rows instead
        assert plan.packed_elements(f) == sum((b - a) * (f - a) for a, b in bounds)
    else:
        covered = np.zeros((f, f), bool)
        for a, b in bounds:
            covered[a:b, a:] = True
        assert np.all(covered[np.triu_indices(f)])  # every element on and above the diagonal is stored
        assert covered.sum() == plan.packed_elements(f)
    assert plan.packed_elements(f) <= f * f
    if f >= 8192:
        assert plan.packed_elements(f) <= 0.6 * f * f  # the triangle saves ~45 % of the float64 sums


def test_groups_are_consecutive_fill_from_the_end_and_fit():
    fs = [1024] * 10
    per = plan.accumulator_bytes(1024)
    p = plan.make_plan(fs, device_bytes=100 + 3 * per + 1, weight_bytes=60, activation=40, reserve=0)
    assert p.groups == [[0], [1, 2, 3], [4, 5, 6], [7, 8, 9]]  # the first group takes the remainder
    assert p.passes == 4 and p.forward_layers == 1 + 4 + 7 + 10
    assert all(g <= 3 * per for g in p.group_bytes) and p.device_peak <= p.device_budget
    assert p.checkpoint_bytes == 3 * per
    one = plan.make_plan(fs, device_bytes=100 + 10 * per, weight_bytes=60, activation=40, reserve=0)
    assert one.groups == [list(range(10))] and one.forward_layers == 10
    with pytest.raises(ValueError, match="do not fit"):
        plan.make_plan(fs, device_bytes=100 + per - 1, weight_bytes=60, activation=40, reserve=0)


def test_every_paper_model_fits_one_80GB_gpu():
    cfg = paper_config()
    shapes = plan.load_shapes()
    budget = cfg["covariance"]["token_budget"]
    for name, spec in cfg["models"].items():
        s = shapes[spec["hub_id"]]
        max_length = (spec.get("covariance") or {}).get("max_length") or cfg["corpus"].get("max_length")
        seq = plan.covariance_seq(s.context, max_length, budget)  # null: min(context, budget), as the rule cuts
        assert seq == min(s.context, budget)
        p = plan.plan_for_shape(s, device_bytes=plan.H100["memory_bytes"], token_budget=budget, seq=seq,
                                dtype=spec.get("dtype", "float32"), store_dtype=cfg["covariance"]["store_dtype"])
        assert p.device_peak <= p.device_budget, name
        # the old way: every layer's full f×f float64 sums at once beside the weights and one batch
        old = s.n_layers * s.d_ff ** 2 * 8 + p.weight_bytes + p.activation_bytes + p.reserve_bytes
        if name in ("llama-2-13b", "pythia-6.9b"):
            assert old > p.device_budget  # did not fit before; fits now


def test_cluster_resources_grow_with_the_model_and_the_corpus():
    small = plan.covariance_resources(n_layers=12, d_model=768, d_ff=3072, n_params=124_439_808, dtype="float32",
                                      family="gpt2", n_texts=100_000, max_length=1024, token_budget=16384,
                                      store_dtype="float32")
    big = plan.covariance_resources(n_layers=40, d_model=5120, d_ff=13824, n_params=13_015_864_320, dtype="float16",
                                    family="llama", n_texts=100_000, max_length=4096, token_budget=16384,
                                    store_dtype="float32")
    fewer = plan.covariance_resources(n_layers=40, d_model=5120, d_ff=13824, n_params=13_015_864_320,
                                      dtype="float16", family="llama", n_texts=10_000, max_length=4096,
                                      token_budget=16384, store_dtype="float32")
    assert big["mem_mb"] > small["mem_mb"] and big["runtime"] > fewer["runtime"] > 10
    # host memory holds the weights (26 GB) but never all the sums (61 GB float64)
    assert 26_000 < big["mem_mb"] < 50_000
    override = plan.covariance_resources(n_layers=40, d_model=5120, d_ff=13824, n_params=13_015_864_320,
                                         dtype="float16", family="llama", n_texts=100_000, max_length=4096,
                                         token_budget=16384, store_dtype="float32", size_gb=40)
    assert override["mem_mb"] > big["mem_mb"]


def test_gemma_parameter_formula_counts_a_tiny_gemma_2():
    """The gemma family's formula against the module count of a tiny random Gemma 2 (heads·head_dim = d; tied
    lm_head); the covariance rule needs it to size a Gemma job (the offline default has Gemma-3-270M)."""
    import tiny
    from kis import models

    model, _ = tiny.model("gemma2")
    c = model.config
    assert c.num_attention_heads * c.head_dim == c.hidden_size
    s = plan.Shape(family="gemma", n_layers=c.num_hidden_layers, d_model=c.hidden_size, d_ff=c.intermediate_size,
                   n_heads=c.num_attention_heads, n_kv_heads=c.num_key_value_heads, vocab=c.vocab_size,
                   context=c.max_position_embeddings)
    assert plan.count_params(s) == models.describe(model)["n_params"] == sum(p.numel() for p in model.parameters())
    res = plan.covariance_resources(n_layers=18, d_model=640, d_ff=2048, n_params=268_098_176, dtype="float32",
                                    family="gemma", n_texts=300, max_length=192, token_budget=4096,
                                    store_dtype="float64")
    assert res["mem_mb"] > 1024 and res["runtime"] >= 10
