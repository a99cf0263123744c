"""Closed forms of kis.editing against independent numpy/scipy formulas (random SPD C and keys, no model), the
in-place weight update on tiny models, and the hyperparameter rule."""
import copy
import logging

import numpy as np
import pytest
import scipy.linalg
import torch
import yaml

import tiny
from editfix import spd, t
from wf import REPO
from kis import editing, hparams, keys, models

REPO_CONFIG = REPO / "config" / "config.yaml"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_update_maps_key_to_value(seed):
    rng = np.random.default_rng(seed)
    d, f = 7, 16
    C, W, k, v = spd(f, rng), rng.standard_normal((d, f)), rng.standard_normal(f), rng.standard_normal(d)
    lam, u, dW = editing.rome_update(t(W), editing.cholesky(t(C)), t(k), t(v))
    u_np = np.linalg.solve(C, k)
    np.testing.assert_allclose(u.numpy(), u_np, rtol=1e-9)
    np.testing.assert_allclose(lam.numpy(), (v - W @ k) / (u_np @ k), rtol=1e-9)
    np.testing.assert_allclose((W + dW.numpy()) @ k, v, rtol=0, atol=1e-10 * np.abs(v).max())


def test_update_along_another_key_direction_still_writes_v_exactly():
    rng = np.random.default_rng(10)
    d, f = 5, 9
    C, W = spd(f, rng), rng.standard_normal((d, f))
    k0, kbar, v = rng.standard_normal(f), rng.standard_normal(f), rng.standard_normal(d)
    lam, u, dW = editing.rome_update(t(W), editing.cholesky(t(C)), t(k0), t(v), k_dir=t(kbar))
    u_np = np.linalg.solve(C, kbar)
    np.testing.assert_allclose(dW.numpy(), np.outer((v - W @ k0) / (u_np @ k0), u_np), rtol=1e-9)
    np.testing.assert_allclose((W + dW.numpy()) @ k0, v, atol=1e-10)
    # the change on any key is still r P with r = ΔW k̄ and P from u = C⁻¹k̄
    kj = rng.standard_normal(f)
    r = dW.numpy() @ kbar
    np.testing.assert_allclose(dW.numpy() @ kj, r * (u_np @ kj) / (u_np @ kbar), rtol=1e-9)


def test_keys_orthogonal_in_whitening_space_are_untouched():
    rng = np.random.default_rng(3)
    d, f = 6, 12
    C, W, k, v = spd(f, rng), rng.standard_normal((d, f)), rng.standard_normal(f), 5 * rng.standard_normal(d)
    ev, Q = np.linalg.eigh(C)
    half, inv_half = (Q * np.sqrt(ev)) @ Q.T, (Q / np.sqrt(ev)) @ Q.T
    np.testing.assert_allclose(half @ half, C, atol=1e-12)
    z = inv_half @ k                                  # k* in whitening space
    Z = rng.standard_normal((f, 5))
    Z -= np.outer(z, z @ Z) / (z @ z)                 # whitened keys orthogonal to z
    Kj = half @ Z                                     # back to key space: k_jᵀ C⁻¹ k* = 0
    _, _, dW = editing.rome_update(t(W), editing.cholesky(t(C)), t(k), t(v))
    assert np.abs(dW.numpy() @ Kj).max() < 1e-10
    # and a key that is not orthogonal does move
    assert np.abs(dW.numpy() @ (Kj[:, 0] + k)).max() > 1e-3


def test_n_updates_change_any_key_by_sum_of_residual_times_p():
    rng = np.random.default_rng(4)
    d, f, n, m = 5, 10, 6, 8
    C = spd(f, rng)
    L = editing.cholesky(t(C))
    W0 = rng.standard_normal((d, f))
    W = W0.copy()
    Ke, V, Kj = rng.standard_normal((f, n)), rng.standard_normal((d, n)), rng.standard_normal((f, m))
    resid = []
    for i in range(n):
        resid.append(V[:, i] - W @ Ke[:, i])          # r_i = v_i − W_{i−1} k_i, with the W this update saw
        _, _, dW = editing.rome_update(t(W), L, t(Ke[:, i]), t(V[:, i]))
        W = W + dW.numpy()
    R = np.stack(resid, 1)
    U = np.linalg.solve(C, Ke)
    P = (U.T @ Kj) / np.sum(U * Ke, 0)[:, None]       # P_ij = (C⁻¹k_i)ᵀk_j / (C⁻¹k_i)ᵀk_i
    np.testing.assert_allclose((W - W0) @ Kj, R @ P, rtol=1e-8, atol=1e-10)
    # the library's own P and prediction agree, and so does the change on the earlier edit keys (forgetting)
    P_lib = editing.p_matrix(editing.whiten(L, t(Ke)), t(Ke), t(Kj)).numpy()
    np.testing.assert_allclose(P_lib, P, rtol=1e-9)
    np.testing.assert_allclose(editing.predicted_change(t(R), t(P)).numpy(), (W - W0) @ Kj, rtol=1e-8, atol=1e-10)
    P_ee = (U.T @ Ke) / np.sum(U * Ke, 0)[:, None]
    np.testing.assert_allclose((W - W0) @ Ke, R @ P_ee, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(W @ Ke[:, -1], V[:, -1], atol=1e-10)  # the last edit holds exactly


def test_lossless_when_keys_are_orthogonal_in_whitening_space():
    rng = np.random.default_rng(5)
    d, f, n = 4, 9, 5
    C = spd(f, rng)
    ev, Q = np.linalg.eigh(C)
    half = (Q * np.sqrt(ev)) @ Q.T
    Z, _ = np.linalg.qr(rng.standard_normal((f, n)))  # orthonormal whitened keys
    Ke = half @ Z
    L = editing.cholesky(t(C))
    W = rng.standard_normal((d, f))
    V = rng.standard_normal((d, n))
    for i in range(n):
        W = W + editing.rome_update(t(W), L, t(Ke[:, i]), t(V[:, i]))[2].numpy()
    np.testing.assert_allclose(W @ Ke, V, atol=1e-10)  # every edit survives every later one


def test_cholesky_rejects_singular_c():
    C = np.zeros((4, 4))
    C[0, 0] = 1
    with pytest.raises(ValueError, match="not positive definite"):
        editing.cholesky(t(C), where="layer 3: ")
    L = editing.cholesky(t(C), ridge=0.1)  # ridge · tr(C)/f · I
    np.testing.assert_allclose((L @ L.T).numpy(), C + 0.1 * 0.25 * np.eye(4), atol=1e-12)


def test_memit_update_solves_its_normal_equations_and_is_rome_form_for_one_key():
    rng = np.random.default_rng(6)
    d, f, n, lam = 5, 11, 3, 7.0
    C, K, R = spd(f, rng), rng.standard_normal((f, n)), rng.standard_normal((d, n))
    dW = editing.memit_update(t(C), t(K), t(R), lam).numpy()
    np.testing.assert_allclose(dW @ (lam * C + K @ K.T), R @ K.T, rtol=1e-9, atol=1e-10)
    k, r = K[:, :1], R[:, :1]
    one = editing.memit_update(t(C), t(k), t(r), lam).numpy()
    u = np.linalg.solve(C, k[:, 0])
    np.testing.assert_allclose(one, np.outer(r[:, 0], u) / (lam + u @ k[:, 0]), rtol=1e-9)


def test_nullspace_projector():
    rng = np.random.default_rng(7)
    f = 12
    C = spd(f, rng, cond=1e6)
    thr = 1e-3
    P, dim = editing.nullspace_projector(t(C), thr)
    P = P.numpy()
    ev, Q = scipy.linalg.eigh(C)
    assert dim == int((ev < thr).sum()) and 0 < dim < f
    np.testing.assert_allclose(P, P.T, atol=1e-12)
    np.testing.assert_allclose(P @ P, P, atol=1e-10)
    assert np.abs(P @ Q[:, ev >= thr]).max() < 1e-10           # kills the preserved directions
    np.testing.assert_allclose(P @ Q[:, ev < thr], Q[:, ev < thr], atol=1e-10)


def test_per_layer_hyperparameter_reads_a_number_or_its_layers_entry():
    assert editing.per_layer(0.02, 7, "nullspace_threshold") == 0.02
    assert editing.per_layer({0: 0.5, "3": 0.1}, 0, "nullspace_threshold") == 0.5
    assert editing.per_layer({0: 0.5, "3": 0.1}, 3, "nullspace_threshold") == 0.1  # JSON keys are strings
    with pytest.raises(ValueError, match=r"nullspace_threshold is given per layer \(0, 3\) but not for layer 4"):
        editing.per_layer({0: 0.5, "3": 0.1}, 4, "nullspace_threshold")


def test_null_space_counts_what_the_projector_keeps():
    """kis.null_space (rule null_space): the share below AlphaEdit's threshold is the projector's rank; scaling the
    keys by 10 (C by 100) moves directions out of the null space — the same absolute threshold, a different
    constraint."""
    from kis import null_space

    rng = np.random.default_rng(3)
    C = spd(16, rng, cond=1e4)
    thr = float(np.median(np.linalg.eigvalsh(C)))
    K = t(rng.standard_normal((4, 16)))
    rows = [null_space.reach(t(C), K, thr), null_space.reach(t(100 * C), K, thr)]
    _, dim = editing.nullspace_projector(t(C), thr)
    assert rows[0]["below"] == dim == 8 and rows[0]["share"] == 0.5 and rows[0]["f"] == 16
    assert rows[1]["below"] < rows[0]["below"]
    assert rows[1]["mean_eig"] == pytest.approx(100 * np.trace(C) / 16)
    assert rows[0]["median_eig"] == pytest.approx(np.median(np.linalg.eigvalsh(C)))


def test_null_space_measures_what_alphaedit_lets_through():
    """kis.null_space against editing.nullspace_projector: ‖P₀k‖² of each key, tr(P₀C) as the mean of ‖P₀x‖² over
    samples whose second moment is C, and a key inside the null space gets all of its energy through."""
    from kis import null_space

    rng = np.random.default_rng(5)
    f = 12
    C = spd(f, rng, cond=1e4)
    thr = float(np.median(np.linalg.eigvalsh(C)))
    P = editing.nullspace_projector(t(C), thr)[0].numpy()
    ev, Q = np.linalg.eigh(C)
    K = np.vstack([rng.standard_normal((5, f)), Q[:, 0]])               # the last key lies in the null space
    got = null_space.reach(t(C), t(K), thr)
    reach = ((K @ P) ** 2).sum(1)
    share = reach / (K ** 2).sum(1)
    assert got["below"] == 6 and got["f"] == f
    assert got["fact_share_median"] == pytest.approx(np.median(share), rel=1e-9)
    assert got["fact_share_p90"] == pytest.approx(np.percentile(share, 90), rel=1e-9)
    assert share[-1] == pytest.approx(1.0)
    X = rng.multivariate_normal(np.zeros(f), C, size=200_000)             # samples with E[x xᵀ] = C
    corpus = float(np.trace(P @ C))
    assert ((X @ P) ** 2).sum(1).mean() == pytest.approx(corpus, rel=0.02)
    assert got["corpus_share"] == pytest.approx(corpus / np.trace(C), rel=1e-9)
    assert got["ratio"] == pytest.approx(reach.mean() / corpus, rel=1e-9)


def test_alphaedit_update_matches_the_paper_form_and_spares_preserved_keys():
    rng = np.random.default_rng(8)
    d, f, n, l2 = 4, 10, 2, 3.0
    C = spd(f, rng, cond=1e6)
    P, dim = editing.nullspace_projector(t(C), 1e-2)
    assert dim > 0
    P = P.numpy()
    K, R, Kp = rng.standard_normal((f, n)), rng.standard_normal((d, n)), rng.standard_normal((f, 3))
    G = Kp @ Kp.T
    dW = editing.alphaedit_update(t(P), t(K), t(R), t(G), l2).numpy()
    # AlphaEdit (Fang et al. 2025): Δ = R K₁ᵀ P (K_p K_pᵀ P + K₁ K₁ᵀ P + λ I)⁻¹
    paper = R @ K.T @ P @ np.linalg.inv(G @ P + K @ K.T @ P + l2 * np.eye(f))
    np.testing.assert_allclose(dW, paper, rtol=1e-8, atol=1e-12)
    ev, Q = np.linalg.eigh(C)
    assert np.abs(dW @ Q[:, ev >= 1e-2]).max() < 1e-10        # keys in C's range are untouched


def test_orthogonal_complement():
    rng = np.random.default_rng(9)
    d = 8
    M = rng.standard_normal((d, 2)) @ rng.standard_normal((2, 6))  # rank 2
    P, rank = editing.orthogonal_complement(t(M), 1e-8, max_rank=5)
    assert rank == 2
    assert np.abs(P.numpy() @ M).max() < 1e-10
    np.testing.assert_allclose(P.numpy() @ P.numpy(), P.numpy(), atol=1e-12)
    _, rank1 = editing.orthogonal_complement(t(M), 1e-8, max_rank=1)
    assert rank1 == 1


def test_drift_monitor_matches_manual_ema_and_triggers_after_warmup():
    scores = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 10.0, 1.0]
    mon = editing.DriftMonitor(alpha=3.0, decay=0.9, warmup=3)
    mean, var, fired = None, 0.0, []
    for i, s in enumerate(scores, 1):
        got = mon.check(s)
        if mean is None:
            mean, want = s, False
        elif i > 3 and var > 0 and abs(s - mean) > 3.0 * np.sqrt(var):
            want = True
        else:
            mean = 0.9 * mean + 0.1 * s
            var = 0.9 * var + 0.1 * (s - mean) ** 2
            want = False
        fired.append(got)
        assert got == want
        assert mon.mean == pytest.approx(mean) and mon.var == pytest.approx(var)
    assert fired[6] and sum(fired) == 1


def test_deltaedit_drift_check_starts_at_edit_21_as_its_code(covs):
    """DeltaEdit's code may constrain δ from edit 21 on (`case_ids > 20`, CaoD-USTC/DeltaEdit DeltaEdit/compute_z.py:161;
    case_ids counts the edits including this one): with a score far outside μ ± α·σ, edit 20 is not constrained and
    edit 21 is. Edit 1 leaves no score, so counting scores instead (seen) would start at edit 22."""
    from editfix import hp_for, peaked_tiny, tiny_facts

    model, tok = peaked_tiny()
    hp = {**hp_for("deltaedit", covs, [0, 1, 2]), "warmup": 20, "var": 1.5}
    ed = editing.make_editor("deltaedit", model, tok, covs, hp, ["{}"])
    ed.A = torch.randn(ed.A.shape, dtype=ed.A.dtype, generator=torch.Generator().manual_seed(0))
    fact = tiny_facts()[0]
    far = 10 * float((ed.A @ editing.fact_key(model, tok, fact, ed.z_layer, ["{}"])[0]).norm()) + 1.0
    for edit, want in ((20, False), (21, True), (22, True)):
        ed.n_edits = edit - 1
        ed.monitor = editing.DriftMonitor(alpha=1.5, decay=0.9, warmup=20, mean=far, var=1e-6, seen=edit - 2)
        _, triggered, info = ed.project(fact)
        assert triggered == want and ed.n_edits == edit and ed.monitor.seen == edit - 1
        assert ("rank" in info) == want


SETTINGS = {"layer_fraction": 0.2,
            "defaults": {"rome": {"v_lr": 0.5}, "memit": {"span": 5, "mom2_update_weight_per_ff": 0.5},
                         "alphaedit": {"span": 3}, "deltaedit": {}},
            "published": {"gpt2-xl": {"rome": {"layer": 17},
                                       "memit": {"layers": [13, 14, 15, 16, 17], "mom2_update_weight": 20000}}},
            "overrides": {"mine": {"rome": {"v_lr": 0.1}}}}


def test_resolve_hparams_rule_published_and_override():
    hp = editing.resolve_hparams(SETTINGS, "rome", 30, ["smol"])
    assert hp["layer"] == round(0.2 * 30) and hp["source"] == "default rule"
    memit = editing.resolve_hparams(SETTINGS, "memit", 30, ["smol"], d_ff=1536)
    assert memit["layers"] == [2, 3, 4, 5, 6] and memit["mom2_update_weight"] == 0.5 * 1536
    assert "mom2_update_weight_per_ff" not in memit
    assert editing.resolve_hparams(SETTINGS, "memit", 48, ["gpt2-xl"], d_ff=6400)["mom2_update_weight"] == 20000
    with pytest.raises(ValueError, match="d_ff"):
        editing.resolve_hparams(SETTINGS, "memit", 30, ["smol"])
    assert editing.resolve_hparams(SETTINGS, "alphaedit", 3, ["x"])["layers"] == [0, 1]  # clipped at layer 0
    assert editing.resolve_hparams(SETTINGS, "rome", 48, ["cfgkey", "gpt2-xl"])["layer"] == 17
    assert editing.resolve_hparams(SETTINGS, "rome", 30, ["mine"])["v_lr"] == 0.1
    # an override's own per-f rule wins over the default's (it used to be dropped silently)
    own = {**SETTINGS, "overrides": {"mine": {"memit": {"mom2_update_weight_per_ff": 2.0}}}}
    assert editing.resolve_hparams(own, "memit", 30, ["mine"], d_ff=1536)["mom2_update_weight"] == 2.0 * 1536
    with pytest.raises(ValueError, match="not within"):
        editing.resolve_hparams(SETTINGS, "rome", 12, ["gpt2-xl"])
    with pytest.raises(ValueError, match="unknown editing method"):
        editing.resolve_hparams(SETTINGS, "grace", 12)


# (n_layers, d_ff) of the models the configs name: architecture facts, for the default rule and the table of docs/editing.md
DIMS = {"gpt2": (12, 3072), "gpt2-medium": (24, 4096), "gpt2-large": (36, 5120), "gpt2-xl": (48, 6400),
        "EleutherAI/gpt-j-6B": (28, 16384), "gpt-j-6b": (28, 16384), "pythia-1b": (16, 8192),
        "pythia-2.8b": (32, 10240), "pythia-6.9b": (32, 16384), "llama-2-7b": (32, 11008),
        "llama-2-13b": (40, 13824), "meta-llama/Meta-Llama-3-8B": (32, 14336), "llama-3-8b": (32, 14336),
        "meta-llama/Llama-3.1-8B": (32, 14336), "llama-3.1-8b": (32, 14336), "smollm2-135m": (30, 1536),
        "gemma3-270m": (18, 2048)}


def test_config_published_values_fit_their_models():
    cfg = hparams.load_config(REPO_CONFIG)
    if "editing" not in cfg:
        pytest.skip("config/config.yaml has no editing section")
    for name, methods in cfg["editing"]["published"].items():
        assert name in DIMS, name
        for method in methods:
            hp = editing.resolve_hparams(cfg["editing"], method, DIMS[name][0], [name], d_ff=DIMS[name][1])
            assert hp["source"].startswith("published")
            assert "hparams/" in hp["sources"]["layer" if method in editing.ROME_FAMILY else "layers"]
    for method in editing.METHODS:  # every method resolves for an unknown model by the default rule
        assert editing.resolve_hparams(cfg["editing"], method, 30, ["unknown"], d_ff=1536)["source"] == "default rule"


def test_comparable_layers_per_model():
    cfg = hparams.load_config(REPO_CONFIG)["editing"]

    def layers(method, name):
        hp = editing.resolve_hparams(cfg, method, DIMS[name][0], [name], d_ff=DIMS[name][1])
        return hp.get("layers", [hp.get("layer")])

    # published where the authors give them; AlphaEdit GPT-2 XL L2 = 10 (its own file), DeltaEdit's 1
    xl = {m: editing.resolve_hparams(cfg, m, 48, ["gpt2-xl"], d_ff=6400) for m in ("alphaedit", "deltaedit")}
    assert xl["alphaedit"]["L2"] == 10 and xl["deltaedit"]["L2"] == 1
    assert layers("deltaedit", "EleutherAI/gpt-j-6B") == layers("alphaedit", "EleutherAI/gpt-j-6B") == list(range(3, 9))
    assert "alphaedit's window" in editing.resolve_hparams(cfg, "deltaedit", 28, ["EleutherAI/gpt-j-6B"],
                                                           d_ff=16384)["sources"]["layers"]
    # Llama-3.1 follows Llama-3: AlphaEdit's MEMIT and ROME files
    for name in ("meta-llama/Meta-Llama-3-8B", "meta-llama/Llama-3.1-8B"):
        assert layers("memit", name) == [4, 5, 6, 7, 8] and layers("rome", name) == [5]
        rome = editing.resolve_hparams(cfg, "rome", 32, [name], d_ff=14336)
        assert rome["mom2_adjustment"] is False and rome["v_weight_decay"] == 0.001
    # no published window: one default window for the MEMIT family ending at ROME's (published) layer
    for m in editing.WINDOW_FAMILY:
        assert layers(m, "gpt2-medium") == [4, 5, 6, 7, 8]
        assert layers(m, "smollm2-135m") == [2, 3, 4, 5, 6]          # ROME's default layer round(0.2 · 30) = 6
    assert layers("r-rome", "gpt2-medium") == layers("rome", "gpt2-medium") == [8]
    assert layers("r-rome", "smollm2-135m") == layers("rome", "smollm2-135m") == [6]


def test_r_rome_takes_romes_layer_and_sources_name_the_values():
    s = {"layer_fraction": 0.2, "defaults": {"rome": {"source": "ROME.json", "v_lr": 0.5}, "r-rome": {"v_lr": 0.5},
                                             "memit": {"span": 3}},
         "published": {"m": {"rome": {"layer": 9, "source": "rome/m.json"}}}}
    hp = editing.resolve_hparams(s, "r-rome", 30, ["m"])
    assert hp["layer"] == 9 and hp["sources"]["layer"] == "rome/m.json" and hp["mom2_adjustment"] is True
    assert hp["sources"]["v_lr"] == "editing.defaults.r-rome"
    memit = editing.resolve_hparams(s, "memit", 30, ["m"])
    assert memit["layers"] == [7, 8, 9] and "rome/m.json" in memit["sources"]["layers"]
    assert editing.resolve_hparams(s, "rome", 30, ["m"])["sources"]["v_lr"] == "ROME.json"


def _readme_block():
    """The hyperparameter table of docs/editing.md: paper.yaml's models and settings, and the offline SmolLM2."""
    paper = hparams.load_config(REPO_CONFIG.parent / "paper.yaml")
    offline = hparams.load_config(REPO_CONFIG)
    specs = {}
    for cfg in (paper, offline):
        for key, spec in cfg["models"].items():
            n, f = DIMS[key]
            specs[key] = {"names": [key, spec.get("hub_id")], "n_layers": n, "d_ff": f}
    paper_models = {k: v for k, v in specs.items() if k in paper["models"]}
    offline_settings = {**offline["editing"], "methods": list(editing.METHODS)}
    return ("<!-- hparams table: generated by `python tests/test_editing.py` -->\n"
            "Paper models (config/paper.yaml):\n\n" + editing.hparams_markdown(paper["editing"], paper_models)
            + "\nOffline default (config/config.yaml):\n\n"
            + editing.hparams_markdown(offline_settings, {"smollm2-135m": specs["smollm2-135m"]})
            + "<!-- end hparams table -->\n")


def test_readme_hyperparameter_table_matches_the_config():
    readme = (REPO_CONFIG.parents[1] / "docs" / "editing.md").read_text()
    want = _readme_block()
    assert want in readme, "docs/editing.md hyperparameter table is stale: run `python tests/test_editing.py`"


def test_hparams_table_numbers_each_source():
    s = {"methods": ["rome"], "layer_fraction": 0.5,
         "defaults": {"rome": {"source": "a.json", "v_lr": 0.5, "kl_factor": 1.0}},
         "published": {"m": {"rome": {"source": "b.json", "layer": 1}}}}
    rows, sources = editing.hparams_table(s, {"m": {"n_layers": 4, "d_ff": 8}, "x": {"n_layers": 4, "d_ff": 8}})
    assert sources[:2] == ["b.json", "a.json"]
    assert rows[0]["layers"] == "1 [1]" and rows[0]["v_lr"] == "0.5 [2]"
    assert rows[1]["layers"].startswith("2 [") and "default rule" in sources[int(rows[1]["layers"][3]) - 1]


def test_rome_and_r_rome_match_their_published_formulas():
    """ROME (rome/compute_v.py) and r-ROME (rebuilding-rome compute_v.py, random-prefix keys), written out with a
    bias b, the template keys k_t and the normalised left vector, against rome_update as the editors call it."""
    rng = np.random.default_rng(11)
    d, f, T = 6, 10, 4
    C, W, b = spd(f, rng), rng.standard_normal((d, f)), rng.standard_normal(d)
    Kt = rng.standard_normal((T, f))              # row 0: the bare prompt
    k0, kbar, delta = Kt[0], Kt.mean(0), rng.standard_normal(d)
    left = np.linalg.solve(C, kbar)
    left = left / np.linalg.norm(left)            # compute_u returns u / ‖u‖
    target = (W @ k0 + b) + delta                 # target_init + δ (target_init: the bare prompt's FFN output)
    rome_right = (target - (W @ k0 + b)) / (k0 @ left)
    rrome_right = (target - (W @ Kt.T + b[:, None]).mean(1)) / (kbar @ left)
    L = editing.cholesky(t(C))
    v = t(W @ k0 + delta)
    _, _, dW_rome = editing.rome_update(t(W), L, t(k0), v, k_dir=t(kbar))
    _, _, dW_rrome = editing.rome_update(t(W), L, t(kbar), v, k_dir=t(kbar))
    np.testing.assert_allclose(dW_rome.numpy(), np.outer(rome_right, left), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dW_rrome.numpy(), np.outer(rrome_right, left), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose((W + dW_rome.numpy()) @ k0, W @ k0 + delta, atol=1e-10)    # ROME: v* at k₀
    np.testing.assert_allclose((W + dW_rrome.numpy()) @ kbar, W @ k0 + delta, atol=1e-10)  # r-ROME: v* at k̄


def test_directions_give_the_updates():
    rng = np.random.default_rng(12)
    d, f, lam, l2 = 4, 9, 3.0, 2.0
    C, K, R = spd(f, rng, cond=1e5), rng.standard_normal((f, 1)), rng.standard_normal((d, 1))
    U = editing.memit_direction(t(C), t(K), lam).numpy()
    np.testing.assert_allclose(U, np.linalg.solve(lam * C + K @ K.T, K), rtol=1e-9)
    P, _ = editing.nullspace_projector(t(C), 1e-2)
    G = (lambda X: X @ X.T)(rng.standard_normal((f, 3)))
    Ua = editing.alphaedit_direction(P, t(K), t(G), l2).numpy()
    Pn = P.numpy()
    np.testing.assert_allclose(Ua, np.linalg.solve(Pn @ (K @ K.T + G) + l2 * np.eye(f), Pn @ K), rtol=1e-8)
    np.testing.assert_allclose(editing.alphaedit_update(P, t(K), t(R), t(G), l2).numpy(), R @ Ua.T, rtol=1e-9)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_keep_fp32_upcasts_the_edited_layers_of_a_bf16_model(family):
    model, tok = tiny.model(family)
    model.to(torch.bfloat16)
    ids = torch.tensor([tok("the value of the module")["input_ids"]])
    before = model(input_ids=ids).logits.float()
    rec = editing.keep_fp32(model, [1])
    assert rec == {"model_dtype": "bfloat16", "edited_dtype": "float32"}
    assert editing.keep_fp32(model, [1]) == rec                        # idempotent: no second pair of hooks
    assert models.ffn_weight(model, 1).dtype == torch.float32 and models.ffn_weight(model, 0).dtype == torch.bfloat16
    after = model(input_ids=ids).logits
    assert after.dtype == torch.bfloat16                                # the rest of the model runs as before
    np.testing.assert_allclose(after.float().numpy(), before.numpy(), atol=0.1)
    # a tiny update survives in fp32 (it would round away in bf16 weights)
    W = models.ffn_weight(model, 1)
    dW = torch.full(W.shape, 1e-4, dtype=torch.float64)
    W0 = W.detach().double().clone()
    editing._apply(model, 1, dW, "test")
    np.testing.assert_allclose((W.detach().double() - W0).numpy(), dW.numpy(), rtol=1e-2)


def test_template_groups_weigh_the_bare_prompt_half_as_memits_compute_ks():
    model, tok = tiny.model("gpt2")
    templates = ["{}", "A fact. {}", "The news. {}", "I think {}"]
    fact = {"case_id": 1, "prompt": "{} is located in", "subject": "the river"}
    with pytest.raises(ValueError, match="must start with"):
        editing.template_groups(["A fact. {}", "{}"])
    got = editing.group_key(model, tok, fact, 1, templates)
    # memit/compute_ks.py: keys of every (group, template), averaged within each group, then over the groups
    groups = [["{}"], templates[1:]]
    flat = torch.stack([keys.averaged(model, tok, [fact["prompt"]], [fact["subject"]], layers=[1], templates=[tpl])[0, 0]
                        for g in groups for tpl in g])
    csum = np.cumsum([0] + [len(g) for g in groups])
    want = torch.stack([flat[csum[j]:csum[j + 1]].mean(0) for j in range(len(groups))]).mean(0)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-8)
    weights = [0.5] + [0.5 / 3] * 3                                     # the bare prompt weighs ½
    torch.testing.assert_close(got, sum(w * k for w, k in zip(weights, flat)), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_update_through_ffn_weight_changes_the_module_output_exactly(family):
    torch.manual_seed(0)
    model, _ = tiny.model(family)
    layer = 1
    d, f = models.dims(model)
    mod = models.ffn_out(model, layer)
    k = torch.randn(f)
    before = mod(k[None].float())[0].double()
    W = models.ffn_weight(model, layer).detach().double()
    C = torch.eye(f, dtype=torch.float64) + 0.1
    v = W @ k.double() + torch.randn(d, dtype=torch.float64)
    _, _, dW = editing.rome_update(W, editing.cholesky(C), k, v)
    editing._apply(model, layer, dW, "test")
    after = mod(k[None].float())[0].double()
    np.testing.assert_allclose((after - before).numpy(), (v - W @ k.double()).numpy(), rtol=1e-4, atol=1e-4)
    with pytest.raises(editing.EditDiverged):
        editing._apply(model, layer, dW * float("nan"), "test")


def test_one_list_of_methods():
    """kis.editing.METHODS is the list; the schema's enum and default, the editors, the defaults the schema
    requires and the figure styles (kept apart because the figure env has no torch) must name the same methods."""
    from kis import editing_figures

    schema = yaml.safe_load((REPO_CONFIG.parent / "schema.yaml").read_text())
    methods = schema["properties"]["editing"]["properties"]["methods"]
    assert tuple(methods["items"]["enum"]) == editing.METHODS
    assert tuple(methods["default"]) == editing.METHODS
    defaults = schema["properties"]["editing"]["properties"]["defaults"]
    assert set(defaults["required"]) == set(editing.METHODS) == set(defaults["properties"])
    assert tuple(editing.EDITORS) == editing.METHODS
    assert tuple(editing_figures.STYLES) == editing.METHODS


if __name__ == "__main__":  # rewrite docs/editing.md hyperparameter table from the configs
    import re
    import sys

    readme = REPO_CONFIG.parents[1] / "docs" / "editing.md"
    text = readme.read_text()
    pat = re.compile(r"<!-- hparams table:.*?<!-- end hparams table -->\n", re.S)
    if not pat.search(text):
        sys.exit(f"{readme}: no '<!-- hparams table: ... <!-- end hparams table -->' block to replace")
    readme.write_text(pat.sub(lambda _m: _readme_block(), text))
    print(f"updated {readme}")


@pytest.mark.parametrize("family", ["gemma3", "llama"])
def test_memit_reaches_z_through_a_post_ffn_norm(family, monkeypatch):
    """MEMIT's z is a block output (δ added there, memit/compute_z.py). Gemma 2/3 normalise the FFN output before the
    residual add, so the residual is mapped back through the norm (editing.to_ffn_space): one layer, λ → 0, the
    edited block output lands on z; without the mapping it misses by far."""
    model, tok = tiny.model(family)
    assert (models.post_ffn_norm(model, 1) is not None) == (family == "gemma3")
    _, f = models.dims(model)
    covs = {1: torch.eye(f, dtype=torch.float64)}
    hp = {"layers": [1], "v_num_grad_steps": 4, "v_lr": 0.05, "v_weight_decay": 0.0, "clamp_norm_factor": 0.1,
          "kl_factor": 0.0, "mom2_update_weight": 1e-8}
    fact = {"case_id": 0, "prompt": "{} is found in the", "subject": "The list", "target_new": "module"}
    z = {}
    real = editing.vstar.optimize_delta

    def spy(*a, **kw):
        res = real(*a, **kw)
        z["z"] = res.v0_block + res.delta
        return res

    def miss(m, mapped=True):
        if not mapped:
            monkeypatch.setattr(editing, "to_ffn_space", lambda *a: a[-1])
        ed = editing.MEMIT(m, tok, covs, hp, ["{}"])
        ed.edit(fact)
        got = editing.vstar.block_output(m, tok, fact["prompt"], fact["subject"], 1)
        return float((got - z["z"]).norm() / (z["z"] - z["v0"]).norm())

    monkeypatch.setattr(editing.vstar, "optimize_delta", spy)
    z["v0"] = editing.vstar.block_output(model, tok, fact["prompt"], fact["subject"], 1)
    with_map = miss(copy.deepcopy(model))
    without = miss(copy.deepcopy(model), mapped=False)
    assert with_map < 1e-3              # measured 4e-6 for gemma3 and llama
    if family == "gemma3":
        assert without > 0.3            # the norm rescales what MEMIT writes (measured: misses by 8.5 × |z − v0|)
    else:
        assert without == pytest.approx(with_map, abs=1e-9)  # no norm: the mapping is the identity


@pytest.mark.parametrize("degrees", [20, 60, 88])
def test_to_ffn_space_takes_the_smallest_change_of_the_ffn_output(degrees):
    """The norm's output is blind to the scale of m + Δm: to turn the block output as a rotation of m by θ would,
    the least Δm lies on that rotation's ray nearest m, ‖Δm‖ = ‖m‖ sin θ and ‖m + Δm‖ = ‖m‖ cos θ (closed form;
    0.1 ‖m‖ past 84°, the floor).
    Gauss-Newton alone walks tangentially and lands farther out (the drift that compounded ‖ΔW‖ over a stream)."""
    model, tok = tiny.model("gemma3")
    with torch.no_grad():  # FFN outputs well above the norm's √ε (as a real model's), where ε cannot matter
        models.ffn_weight(model, 1).mul_(1e3)
    fact = {"case_id": 0, "prompt": "{} is found in the", "subject": "The list"}
    norm = models.post_ffn_norm(model, 1)
    m = editing.vstar.ffn_output(model, tok, fact["prompt"], fact["subject"], 1)
    assert float(m.pow(2).mean().sqrt()) > 100 * norm.eps ** 0.5
    torch.manual_seed(1)
    v = torch.randn_like(m)
    v = v - (v @ m) / (m @ m) * m
    th = np.radians(degrees)
    x_rot = float(np.cos(th)) * m + float(np.sin(th)) * m.norm() * v / v.norm()   # m turned by θ, same norm
    with torch.no_grad():
        R = (norm(x_rot.float()).double() - norm(m.float()).double())[:, None]
    dm = editing.to_ffn_space(model, tok, fact, 1, R)[:, 0]
    with torch.no_grad():
        miss = float((norm((m + dm).float()).double() - norm(m.float()).double() - R[:, 0]).norm())
    assert miss < 1e-3 * float(R.norm())
    assert float(dm.norm()) == pytest.approx(float(m.norm()) * np.sin(th), rel=1e-2)
    # past cos θ < 0.1 the floor (RMS ≥ 0.1·RMS(m)) keeps m + Δm off the origin, on the same ray
    assert float((m + dm).norm()) == pytest.approx(float(m.norm()) * max(np.cos(th), 0.1), rel=2e-2)


def test_to_ffn_space_meets_an_unreachable_target_in_least_squares(caplog):
    """An RMS norm cannot change its output's scale: a radial R is met in least squares, never by blowing m up
    (a near-singular Jacobian once gave ‖ΔW‖ = 1e20 on Gemma-3-270M), and the fallback is logged."""
    model, tok = tiny.model("gemma3")
    fact = {"case_id": 0, "prompt": "{} is found in the", "subject": "The list"}
    norm = models.post_ffn_norm(model, 1)
    m = editing.vstar.ffn_output(model, tok, fact["prompt"], fact["subject"], 1)
    with torch.no_grad():
        y0 = norm(m.float()).double()
    torch.manual_seed(0)
    tangential = torch.randn_like(y0) * 0.05 * y0.norm()
    R = (4.0 * y0 + tangential)[:, None]            # mostly "scale the output by 5": unreachable
    with caplog.at_level(logging.INFO, logger="kis.editing"):
        dm = editing.to_ffn_space(model, tok, fact, 1, R)[:, 0]
    assert any("cannot reach" in r.getMessage() and "layer 1" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kis.editing"):
        editing.to_ffn_space(model, tok, fact, 1, tangential[:, None] * 1e-3)  # small, reachable: nothing logged
    assert not caplog.records
    assert torch.isfinite(dm).all() and float(dm.norm()) < 100 * float(m.norm())
    with torch.no_grad():
        miss = float((norm((m + dm).float()).double() - (y0 + R[:, 0])).norm())
    assert miss < float(R.norm())                    # it still moves towards the target
