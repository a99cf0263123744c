"""P, Q and the cosines against explicit per-pair numpy loops; statistics against scipy; the stage end to end."""
import json
import logging

import numpy as np
import pytest
import torch
from scipy import stats

import tiny
from kis import covariance, io, keys, models, superposition as sp


def spd(f, seed=0, cond=50.0):
    """A random SPD matrix with a chosen condition number."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((f, f)))
    return (u * np.geomspace(1.0, 1.0 / cond, f)) @ u.T


def mats(k, c, ridge=0.0):
    chol, _ = sp.factor(torch.from_numpy(c), ridge=ridge)
    return {kind: m.numpy() for kind, m in sp.matrices(torch.from_numpy(k), chol).items()}


@pytest.mark.parametrize("n, f", [(9, 14), (20, 12)])  # fewer and more keys than dimensions
def test_matrices_match_per_pair_loops(n, f):
    rng = np.random.default_rng(1)
    c, k = spd(f), rng.standard_normal((n, f))
    m = mats(k, c)
    P, Q, cw, ca = (np.empty((n, n)) for _ in range(4))
    for i in range(n):
        ci = np.linalg.solve(c, k[i])
        for j in range(n):
            cj = np.linalg.solve(c, k[j])
            P[i, j] = ci @ k[j] / (ci @ k[i])
            Q[i, j] = k[i] @ k[j]
            cw[i, j] = ci @ k[j] / np.sqrt((ci @ k[i]) * (cj @ k[j]))
            ca[i, j] = k[i] @ k[j] / (np.linalg.norm(k[i]) * np.linalg.norm(k[j]))
    np.testing.assert_allclose(np.diag(m["P"]), 1.0, atol=1e-12)
    for kind, ref in (("P", P), ("Q", Q), ("cos_white", cw), ("cos_act", ca)):
        np.testing.assert_allclose(m[kind], ref, atol=1e-8, rtol=0, err_msg=kind)
    assert not np.allclose(m["P"], m["P"].T)  # P is not symmetric


def test_whitening_cosine_is_cosine_of_whitened_keys():
    rng = np.random.default_rng(2)
    f, n = 16, 10
    c, k = spd(f, seed=3, cond=200.0), rng.standard_normal((n, f))
    w, v = np.linalg.eigh(c)
    z = k @ (v / np.sqrt(w)) @ v.T  # rows C^-1/2 k_i (Appendix B)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(mats(k, c)["cos_white"], z @ z.T, atol=1e-8)


def test_keys_orthogonal_in_whitening_space_give_zero_off_diagonal_P():
    rng = np.random.default_rng(4)
    f, n = 12, 8
    c = spd(f, seed=5)
    w, v = np.linalg.eigh(c)
    u, _ = np.linalg.qr(rng.standard_normal((f, n)))  # orthonormal columns
    k = (u.T * rng.uniform(0.5, 3.0, (n, 1))) @ (v * np.sqrt(w)) @ v.T  # k_i = s_i C^1/2 u_i
    m = mats(k, c)
    np.testing.assert_allclose(m["P"], np.eye(n), atol=1e-10)
    assert np.abs(sp.offdiag(m["cos_act"])).max() > 0.01  # but not orthogonal in activation space


def test_singular_covariance_raises_or_gets_ridge(caplog):
    rng = np.random.default_rng(6)
    f = 10
    a = rng.standard_normal((f, 4))
    c = a @ a.T  # rank 4
    k = rng.standard_normal((5, f))
    keyset, cov = {3: k.astype(np.float32)}, lambda layer: torch.from_numpy(c)
    with pytest.raises(sp.SingularCovariance, match=r"model m1, layer 3: .*condition number"):
        sp.compute(keyset, cov, np.arange(5), model="m1")
    with caplog.at_level(logging.WARNING):
        frame, ridged = sp.compute(keyset, cov, np.arange(5), model="m1", ridge=1e-3)
    assert ridged == [3] and "ridge" in caplog.text
    lam = 1e-3 * np.trace(c) / f
    ref = mats(k.astype(np.float32).astype(np.float64), c + lam * np.eye(f))
    got = frame[frame.kind == "P"].value.to_numpy().reshape(5, 5)
    np.testing.assert_allclose(got, ref["P"], atol=1e-8)


def test_statistics_match_scipy_on_off_diagonal():
    rng = np.random.default_rng(7)
    n, f = 40, 24
    m = mats(rng.standard_normal((n, f)) + 0.3, spd(f, seed=8))
    table = sp.statistics({(kind, 2): m[kind] for kind in sp.KINDS}, n_layers=5)
    assert sorted(table.n.unique()) == [16, 32, 40]
    for kind in sp.KINDS:
        for size in (16, 40):
            row = table[(table.kind == kind) & (table.n == size)].iloc[0]
            x = np.array([m[kind][i, j] for i in range(size) for j in range(size) if i != j])
            assert row["kurtosis"] == pytest.approx(stats.kurtosis(x, fisher=True, bias=True), abs=1e-10)
            assert row["skewness"] == pytest.approx(stats.skew(x), abs=1e-10)
            assert row["mean"] == pytest.approx(x.mean()) and row["std"] == pytest.approx(x.std())
            assert row.share_abs_gt_0_1 == pytest.approx(np.mean(np.abs(x) > 0.1))
            assert row.rel_depth == pytest.approx(2 / 4)
            if kind in sp.COSINES:
                ang = np.degrees(np.arccos(x))
                assert row.angle_mean == pytest.approx(ang.mean()) and row.angle_std == pytest.approx(ang.std())
            else:
                assert np.isnan(row.angle_mean) and np.isnan(row.angle_std)


def test_sizes():
    assert sp.sizes(128) == [16, 32, 64, 128]
    assert sp.sizes(100) == [16, 32, 64, 100]
    assert sp.sizes(10) == [10]


def test_stage_end_to_end_on_a_tiny_model(tmp_path):
    """Tiny GPT-2: keys table → C from a pydoc corpus → superposition table → statistics table."""
    from pydoc_data.topics import topics

    model, tok = tiny.model("gpt2")
    texts = [v[:400] for _, v in sorted(topics.items())[:12]]
    sums, count = covariance.collect(model, tok, texts, max_length=64)
    covs = covariance.finalize(sums, count)
    cov_path = tmp_path / "cov.safetensors"
    covariance.save(cov_path, covs, count, {"corpus_id": "pydoc-test"})

    prompts = ["{} is located in", "The capital of {} is", "{}, a product of", "{} plays", "{} was born in"] * 4
    subjects = [f"{s} {i}" for i, s in enumerate(["Rome", "St. John's", "Windows NT", "Allen Iverson", "Ada"] * 4)]
    k = keys.compute(model, tok, prompts, subjects)
    n, L = len(prompts), models.n_layers(model)
    keys_path = tmp_path / "keys.parquet"
    io.write_parquet(keys.to_frame(k, np.arange(n), np.arange(n) + 100), keys_path,
                     metadata={"d_ff": k.shape[2], "n_layers": L, "position": "subject_last"})
    out = tmp_path / "sup.parquet"
    sp.run_rule(model="tiny", key_table=keys_path, cov=cov_path, table=out, ridge=0.0, condition_warn=1e8)

    got, items, meta = sp.read(out)
    assert meta["corpus_id"] == "pydoc-test" and meta["n_items"] == n and len(got) == 4 * L
    for layer in range(L):
        kk, c = k[layer].double().numpy(), covs[layer].numpy()
        g = kk @ np.linalg.solve(c, kk.T)
        np.testing.assert_allclose(got[("P", layer)], g.T / np.diag(g)[:, None], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(np.diag(got[("P", layer)]), 1.0, atol=1e-12)

    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"family": "gpt2", "n_params": 1, "n_layers": L, "d_model": 32, "d_ff": 64}))
    table, tmeta = sp.statistics_table([{"model": "tiny", "label": "Tiny", "manifest": manifest, "table": out}])
    contract = ("model, label, family, n_params, n_layers, d_model, d_ff, layer, rel_depth, kind, n, kurtosis, "
                "mean, std, skewness, share_abs_gt_0_1, angle_mean, angle_std, corpus_id").split(", ")
    assert list(table.columns) == contract and tmeta == {"n_items": n}
    assert len(table) == L * 4 * len(sp.sizes(n)) and set(table.label) == {"Tiny"}
    row = table[(table.kind == "P") & (table.layer == L - 1) & (table.n == n)].iloc[0]
    assert row.rel_depth == 1.0
    assert row["kurtosis"] == pytest.approx(stats.kurtosis(sp.offdiag(got[("P", L - 1)])))
