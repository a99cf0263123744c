"""WilKE as the authors' code does it (kis.editing.WilKE): a full ROME edit at every layer 0 … scanning_ceiling − 1,
LA = ‖ΔW_l‖_F / ‖W_l‖_F, the edit of least LA kept; its hyperparameters (published ceilings and the rule)."""
import copy

import numpy as np
import pytest
import torch

from editfix import HP, TEMPLATES, peaked_tiny, tiny_facts
from kis import editing, models

pytestmark = pytest.mark.usefixtures("one_thread")

CEILING = 3


def wilke_hp(**kw):
    return {**HP, "v_num_grad_steps": 6, "scanning_ceiling": CEILING, **kw}


def weights(model):
    return [models.ffn_weight(model, layer).detach().double().clone() for layer in range(CEILING)]


def test_wilke_equals_a_by_hand_loop_over_full_rome_edits(covs):
    """For each candidate a full edit by kis.editing.ROME, LA from the weights before and after, the layer restored;
    then ROME again at the layer of least LA: WilKE's LA per layer, its choice and its final weights are those."""
    fact = tiny_facts()[1]
    model, tok = peaked_tiny()
    model.double()
    hp = wilke_hp()
    ed = editing.make_editor("wilke", copy.deepcopy(model), tok, covs, hp, TEMPLATES)
    assert ed.layers == [0, 1, 2] and ed.measure_layers == [0, 1, 2]
    res = ed.edit(fact)

    hand = copy.deepcopy(model)
    W0 = weights(hand)
    la = []
    for layer in range(CEILING):
        rome = editing.ROME(hand, tok, covs, {**hp, "layer": layer}, TEMPLATES)
        rome.edit(fact)
        W1 = models.ffn_weight(hand, layer).detach().double()
        la.append(float(torch.linalg.norm(W1 - W0[layer]) / torch.linalg.norm(W0[layer])))
        with torch.no_grad():
            models.ffn_weight(hand, layer).copy_(W0[layer])
    assert all(torch.equal(a, b) for a, b in zip(weights(hand), W0))  # restored
    best = int(np.argmin(la))
    editing.ROME(hand, tok, covs, {**hp, "layer": best}, TEMPLATES).edit(fact)

    np.testing.assert_allclose([res.info["scores"][layer] for layer in range(CEILING)], la, rtol=1e-7)
    assert res.layer == res.info["layer"] == best
    assert len(set(np.round(la, 6))) == CEILING  # a real choice: the LAs differ
    for layer, (got, want, before) in enumerate(zip(weights(ed.model), weights(hand), W0)):
        torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-9)
        assert torch.equal(got, before) == (layer != best)  # only the chosen layer changes


@pytest.mark.parametrize("target", [0, 2])
def test_wilke_picks_the_layer_whose_weights_are_large_where_no_key_reaches(covs, target):
    """Constructed: at layer `target` the up projection's row j is zero, so the key's coordinate j is 0 for every input
    (SwiGLU: silu(gate)·up) and column j of W there never acts. Giving that column a large norm leaves the model's
    function, every δ, key and update unchanged, so that layer's LA shrinks by exactly ‖W‖/‖W'‖ and the other layers'
    LA stay: with the column large enough that layer is chosen, where the plain model chose another."""
    fact = tiny_facts()[1]
    base, tok = peaked_tiny()
    base.double()
    j = 5
    with torch.no_grad():
        base.model.layers[target].mlp.up_proj.weight[j].zero_()
    cv = {layer: c.clone().double() for layer, c in covs.items()}
    diag = float(cv[target].diagonal().mean())
    cv[target][j, :] = 0.0
    cv[target][:, j] = 0.0
    cv[target][j, j] = diag  # C of keys whose coordinate j is 0 (any positive variance: u_j = 0 as k̄_j = 0)
    hp = wilke_hp()
    plain = editing.make_editor("wilke", copy.deepcopy(base), tok, cv, hp, TEMPLATES).edit(fact)
    la = plain.info["scores"]
    assert plain.layer != target
    others = min(la[x] for x in range(CEILING) if x != target)
    W = models.ffn_weight(base, target).detach().double().clone()
    rho = 20 * la[target] / others  # ‖W'‖ / ‖W‖ that makes the target's LA a twentieth of the least other
    rest = float(W.norm() ** 2 - W[:, j].norm() ** 2)
    col = torch.randn(W.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    col *= ((rho ** 2 * float(W.norm()) ** 2 - rest) ** 0.5) / col.norm()
    big = copy.deepcopy(base)
    with torch.no_grad():
        models.ffn_weight(big, target)[:, j] = col
    Wb = models.ffn_weight(big, target).detach().double().clone()
    res = editing.make_editor("wilke", big, tok, cv, hp, TEMPLATES).edit(fact)
    got = res.info["scores"]
    for x in range(CEILING):
        want = la[x] * float(W.norm() / Wb.norm()) if x == target else la[x]
        assert got[x] == pytest.approx(want, rel=1e-7)
    assert got[target] < others / 10 and res.layer == target


def test_wilke_batched_vstar_equals_one_layer_at_a_time(covs):
    """All candidates' v* in one batch (the default) or one call per layer: the same LAs, layer and update."""
    fact = tiny_facts()[2]
    model, tok = peaked_tiny()
    model.double()
    out = {}
    for batched in (True, False):
        ed = editing.make_editor("wilke", copy.deepcopy(model), tok, covs, wilke_hp(batched_vstar=batched), TEMPLATES)
        res = ed.edit(fact)
        out[batched] = (res, weights(ed.model))
    (a, wa), (b, wb) = out[True], out[False]
    assert a.layer == b.layer
    np.testing.assert_allclose(list(a.info["scores"].values()), list(b.info["scores"].values()), rtol=1e-9)
    for x, y in zip(wa, wb):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12)


def test_wilke_refuses_candidates_other_than_zero_to_the_ceiling(covs):
    model, tok = peaked_tiny()
    for hp in (wilke_hp(layers=[1, 2, 3]), {**HP, "layers": [1, 2]}, wilke_hp(scanning_ceiling=0)):
        with pytest.raises(ValueError, match="scans layers 0"):
            editing.make_editor("wilke", model, tok, covs, hp, TEMPLATES)


def _settings(**wilke):
    return {"layer_fraction": 0.2,
            "defaults": {"rome": {"v_lr": 0.5}, "wilke": {"source": "d.json", "v_lr": 0.5, **wilke}},
            "published": {"gpt2-xl": {"rome": {"layer": 17}, "wilke": {"source": "x.json", "scanning_ceiling": 24}},
                          "gptj": {"rome": {"layer": 5}, "wilke": {"scanning_ceiling": 7}}}}


def test_wilke_scanning_ceiling_published_and_by_rule():
    s = _settings(scanning_ceiling_per_rome_layer=1.4)
    xl = editing.resolve_hparams(s, "wilke", 48, ["gpt2-xl"])
    assert xl["scanning_ceiling"] == 24 and xl["layers"] == list(range(24)) and xl["sources"]["scanning_ceiling"] == "x.json"
    assert editing.resolve_hparams(s, "wilke", 28, ["gptj"])["layers"] == list(range(7))
    # the rule reproduces both published ceilings from ROME's published layer
    for n, name in ((48, "gpt2-xl"), (28, "gptj")):
        rule = editing.resolve_hparams({**s, "published": {name: {"rome": s["published"][name]["rome"]}}}, "wilke", n,
                                       [name])
        assert rule["scanning_ceiling"] == s["published"][name]["wilke"]["scanning_ceiling"]
    # other models: round(1.4 · ROME's layer), ROME's layer the default round(0.2 · L)
    smol = editing.resolve_hparams(s, "wilke", 30, ["smollm2"])
    assert smol["scanning_ceiling"] == round(1.4 * 6) == 8 and "default rule" in smol["sources"]["scanning_ceiling"]
    assert smol["sources"]["layers"] == smol["sources"]["scanning_ceiling"]
    gemma = editing.resolve_hparams(s, "wilke", 18, ["gemma3"])
    assert gemma["scanning_ceiling"] == round(1.4 * 4) == 6
    with pytest.raises(ValueError, match="neither scanning_ceiling"):
        editing.resolve_hparams(_settings(), "wilke", 30, ["smollm2"])
    with pytest.raises(ValueError, match="not layers"):
        editing.resolve_hparams(_settings(layers=[1, 2]), "wilke", 30, ["smollm2"])
    with pytest.raises(ValueError, match="not within 1"):
        editing.resolve_hparams(s, "wilke", 20, ["gpt2-xl"])
