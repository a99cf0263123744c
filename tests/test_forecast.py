"""The forecast of forgetting (kis.forecast, the per-fact trajectory columns, the figure) and the layer-choosing
editors WilKE and kis on random tensors and tiny random models."""
import copy

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

from editfix import TEMPLATES, hp_for, peaked_tiny, spd, t, tiny_facts
from kis import editing, editing_figures, forecast, io, keys, models, trajectory, vstar

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- closed forms on random tensors

def test_forecast_equals_the_measured_displacement_for_rome_on_random_tensors():
    rng = np.random.default_rng(3)
    d, f, n, m = 6, 12, 8, 20
    C = t(spd(f, rng))
    L = editing.cholesky(C)
    W0 = t(rng.standard_normal((d, f)))
    W = W0.clone()
    K_edit, R, U = [], [], []
    for _ in range(n):  # sequential ROME edits, each written at its own key
        k, v = t(rng.standard_normal(f)), t(rng.standard_normal(d))
        _lam, u, dW = editing.rome_update(W, L, k, v)
        W = W + dW
        K_edit.append(k)
        R.append(dW @ k)
        U.append(u)
    K_test = t(rng.standard_normal((f, m)))
    meas, pred, err = trajectory.interference(torch.stack(U, 1), torch.stack(K_edit, 1), torch.stack(R, 1), K_test,
                                              W - W0)
    np.testing.assert_allclose(pred, np.linalg.norm(((W - W0) @ K_test).numpy(), axis=0), rtol=1e-10)
    np.testing.assert_allclose(meas, pred, rtol=1e-10)
    assert err.max() < 1e-10 * meas.max()
    # the predicted damage kis minimises is the summed displacement of the protected keys by that one update
    k, v = t(rng.standard_normal(f)), t(rng.standard_normal(d))
    _lam, u, dW = editing.rome_update(W, L, k, v)
    want = np.linalg.norm((dW @ K_test).numpy(), axis=0).sum()
    assert editing.predicted_damage(dW @ k, u, k, K_test) == pytest.approx(want, rel=1e-10)


def test_prior_risk_is_the_root_sum_of_squared_p():
    rng = np.random.default_rng(4)
    f, n, m = 10, 5, 7
    C, K, Kt = spd(f, rng), rng.standard_normal((f, n)), rng.standard_normal((f, m))
    U = np.linalg.solve(C, K)
    P = (U.T @ Kt) / np.einsum("fn,fn->n", U, K)[:, None]
    got = trajectory.prior_risk(editing.cholesky(t(C)), t(K), t(Kt))
    np.testing.assert_allclose(got, np.sqrt((P ** 2).sum(0)), rtol=1e-9)


# ---------------------------------------------------------------- AUC, deciles

def test_auc_matches_mann_whitney_and_the_interval_brackets_it():
    rng = np.random.default_rng(0)
    pred = np.round(rng.standard_normal(200), 1)           # ties on purpose
    label = rng.random(200) < 1 / (1 + np.exp(-2 * pred))   # informative
    u = scipy.stats.mannwhitneyu(pred[label], pred[~label]).statistic
    auc, lo, hi = forecast.forgetting_auc(pred, label, n_boot=300, seed=1)
    assert auc == pytest.approx(u / (label.sum() * (~label).sum()), rel=1e-12)
    assert 0.5 < lo <= auc <= hi < 1
    assert forecast.forgetting_auc(pred, label, n_boot=300, seed=1) == (auc, lo, hi)  # seeded
    assert forecast.auc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert forecast.auc([4, 3, 2, 1], [False, False, True, True]) == 0.0
    assert np.isnan(forecast.forgetting_auc([1, 2, 3], [True, True, True])[0])


def test_top_decile_forgotten():
    risk = np.arange(20, dtype=float)                       # the 2 riskiest: 19 and 18
    forgotten = np.zeros(20, dtype=bool)
    forgotten[[19, 3]] = True
    assert forecast.top_decile_forgotten(risk, forgotten) == 0.5
    assert forecast.top_decile_forgotten(risk[:5], forgotten[:5]) == 0.0  # one fact: the riskiest (4)


# ---------------------------------------------------------------- the long table and the figure

def fake_trajectory(method, pred_by_step, logp_by_step, correct_by_step, risk, model="m"):
    rows = []
    for step, (p, lp, c) in enumerate(zip(pred_by_step, logp_by_step, correct_by_step)):
        rows.append({"model": model, "method": method, "step": step, "status": "ok",
                     "interference_measured_keys": list(p), "interference_predicted_keys": list(p),
                     "heldout_logp_true_facts": list(lp), "heldout_correct_facts": list(c),
                     "prior_risk_facts": list(risk)})
    return pd.DataFrame(rows)


def test_long_table_differences_and_forgotten():
    traj = fake_trajectory("rome", [[0, 0, 0], [1.0, 2.0, 3.0]], [[-1.0, -2.0, -3.0], [-1.5, -2.0, -9.0]],
                           [[True, False, True], [True, False, False]], [0.1, 0.2, 0.3])
    long = forecast.long_table(traj, [7, 8, 9])
    assert list(long.columns) == list(forecast.FORECAST_COLUMNS)
    assert long.case_id.tolist() == [7, 8, 9] and (long.step == 1).all()
    np.testing.assert_allclose(long.delta_logp_true, [-0.5, 0.0, -6.0])
    assert long.forgotten.tolist() == [False, False, True]   # fact 8 was never correct: not forgotten
    with pytest.raises(ValueError, match="3 values of predicted for 4 held-out facts"):
        forecast.long_table(traj, [7, 8, 9, 10])


def test_forecast_figure_gives_each_methods_auc(tmp_path):
    rng = np.random.default_rng(1)
    m = 30
    paths = []
    for method, sign in (("kis", 1.0), ("rome", -1.0)):
        pred = rng.random(m) + 0.01
        correct1 = sign * (pred - np.median(pred)) < 0          # kis: the most displaced half forgotten
        lp0 = np.zeros(m)
        traj = fake_trajectory(method, [np.zeros(m), pred], [lp0, -pred], [np.ones(m, bool), correct1], pred)
        long = forecast.long_table(traj, range(m))
        path = tmp_path / f"{method}.forecast.parquet"
        io.write_parquet(long, path, metadata={"corpus_id": "pydoc-test"})
        paths.append(path)
    png, csv, summ_csv = tmp_path / "f.png", tmp_path / "f.csv", tmp_path / "auc.csv"
    editing_figures.run_forecast(paths, png, csv, summ_csv, labels={"m": "Model M"}, dpi=50, n_boot=50)
    summ = pd.read_csv(summ_csv).set_index("method")
    assert summ.loc["kis", "auc"] == 1.0 and summ.loc["rome", "auc"] == 0.0
    assert summ.loc["kis", "top_decile_forgotten"] == 1.0 and summ.loc["rome", "top_decile_forgotten"] == 0.0
    fig, _ = editing_figures.forecast_figure(editing_figures.read_forecasts(paths), {"m": "Model M"}, n_boot=50)
    texts = [x.get_text() for x in fig.axes[0].get_legend().get_texts()]
    assert any(x.startswith("kis: AUC 1.00 [1.00, 1.00]") for x in texts), texts
    assert any(x.startswith("rome: AUC 0.00") for x in texts), texts
    assert "C from corpus pydoc-test" in fig._suptitle.get_text()
    assert len(pd.read_csv(csv)) == 2 * m and png.stat().st_size > 1000


@pytest.mark.parametrize("lo, hi", [(3e-3, 8e-3), (3.1e-3, 3.3e-3), (0.02, 1.5), (1e-4, 10.0)])
def test_log_axes_always_show_labelled_ticks(lo, hi):
    """A log axis over less than a decade has no 10^k tick: without more labelled ticks it shows no number at all
    (the quickstart's forecast panel did). Every range gets ≥ 2 labelled ticks inside the data, none overlapping."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 4.2))
    x = np.geomspace(lo, hi, 7)
    ax.scatter(x, np.zeros_like(x))
    ax.set_xscale("log")
    ticks = editing_figures.log_ticks(ax.xaxis, x)
    assert (ticks == []) == (hi / lo >= 100)  # matplotlib's own 10^k labels over two decades or more
    fig.canvas.draw()
    lo_lim, hi_lim = ax.get_xlim()
    shown = [t for t in ax.xaxis.get_major_ticks() if t.label1.get_text() and lo_lim <= t.get_loc() <= hi_lim]
    assert len(shown) >= 2, [t.label1.get_text() for t in ax.xaxis.get_major_ticks()]
    boxes = sorted((t.label1.get_window_extent() for t in shown), key=lambda b: b.x0)
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), "tick labels overlap"
    plt.close(fig)


# ---------------------------------------------------------------- kis and WilKE on a tiny model

def layer_hp(method, covs):
    hp = hp_for(method, covs, [0, 1, 2])
    hp.update(v_num_grad_steps=6, n_protected=4)
    return hp


@pytest.mark.parametrize("target", [0, 2])
def test_kis_picks_the_layer_of_least_predicted_damage(covs, target):
    """Protected keys orthogonal (in whitening space) to the edit's key at `target`, equal to it elsewhere: the
    predicted damage is 0 at `target` only, so kis edits there and leaves the other layers alone."""
    model, tok = peaked_tiny()
    facts = tiny_facts()
    fact = facts[0]
    ed = editing.make_editor("kis", model, tok, covs, layer_hp("kis", covs), TEMPLATES, protected=facts[8:12])
    kbar = keys.averaged(model, tok, [fact["prompt"]], [fact["subject"]], layers=[0, 1, 2], templates=TEMPLATES)[:, 0]
    rng = np.random.default_rng(0)
    for i, layer in enumerate([0, 1, 2]):
        if layer == target:
            u = editing.whiten(ed.chol[layer], kbar[i])
            Z = t(rng.standard_normal((kbar.shape[1], 4)))
            ed.K_prot[layer] = Z - torch.outer(u, u @ Z) / (u @ u)  # uᵀk_j = 0
        else:
            ed.K_prot[layer] = torch.stack([kbar[i]] * 4, 1)
    W = {layer: models.ffn_weight(model, layer).detach().clone() for layer in (0, 1, 2)}
    res = ed.edit(fact)
    assert res.layer == target and res.info["layer"] == target
    scores = res.info["scores"]
    assert scores[target] < 1e-9 * min(s for layer, s in scores.items() if layer != target)
    for layer in (0, 1, 2):
        changed = not torch.equal(models.ffn_weight(model, layer), W[layer])
        assert changed == (layer == target)


def test_kis_protect_weight_turns_the_direction_away_from_protected_and_earlier_edits(covs):
    """protect_weight w: u = (C + (w/n) K Kᵀ)⁻¹k̄ (numpy), the edit still writes v exactly, and as w grows the protected
    keys and the key an earlier edit wrote at move less; w = 0 is the layer-only rule (u = C⁻¹k̄)."""
    facts = tiny_facts()
    prot = facts[8:12]
    moved, kept = {}, {}
    for w in (0.0, 1.0, 1e6):
        model, tok = peaked_tiny()
        hp = dict(layer_hp("kis", covs), protect_weight=w)
        ed = editing.make_editor("kis", model, tok, covs, hp, TEMPLATES, protected=prot)
        W0 = {layer: models.ffn_weight(model, layer).detach().double().clone() for layer in (0, 1, 2)}
        first = ed.edit(facts[0])
        layer = first.layer
        K = ed.K_prot[layer].double().numpy()
        k = first.key.double().numpy()
        want = np.linalg.solve(covs[layer].double().numpy() + w / len(prot) * K @ K.T, k)
        u = first.direction.double().numpy()
        assert abs(u @ want) / (np.linalg.norm(u) * np.linalg.norm(want)) == pytest.approx(1.0, abs=1e-9)
        dW = models.ffn_weight(model, layer).detach().double() - W0[layer]
        np.testing.assert_allclose((dW @ first.key.double()).numpy(), first.residual.double().numpy(),
                                   rtol=1e-6, atol=1e-9)  # W' k̄ = v exactly
        moved[w] = float(np.linalg.norm(dW.numpy() @ K) / np.linalg.norm(dW.numpy() @ k))
        if w:
            assert ed.protected_keys(layer).shape[1] == len(prot) + 1  # the first edit's key is protected now
        k1 = {lay: kk.double() for lay, kk in zip(ed.layers, ed.last_keys)}
        W1 = {lay: models.ffn_weight(model, lay).detach().double().clone() for lay in (0, 1, 2)}
        second = ed.edit(facts[1])
        dW2 = models.ffn_weight(model, second.layer).detach().double() - W1[second.layer]
        kept[w] = float((dW2 @ k1[second.layer]).norm() / (dW2 @ second.key.double()).norm())
    assert moved[1e6] < 1e-4 * moved[0.0] and moved[1.0] < moved[0.0]
    assert kept[1e6] < 1e-4 * kept[0.0]


def test_wilke_picks_the_layer_its_criterion_says(covs, monkeypatch):
    model, tok = peaked_tiny()
    with torch.no_grad():  # a layer whose projection is small matches best: ‖δ‖‖W‖²/‖k‖² shrinks with ‖W‖²
        models.ffn_weight(model, 1).mul_(0.05)
    fact = tiny_facts()[0]
    seen = {}
    real = vstar.optimize_deltas

    def keep(*a, **kw):
        res = real(*a, **kw)
        seen.update(zip(kw["layers"], res))
        return res

    monkeypatch.setattr(vstar, "optimize_deltas", keep)
    ed = editing.make_editor("wilke", model, tok, covs, dict(layer_hp("wilke", covs), per_layer_vstar=False),
                             TEMPLATES)
    assert ed.per_layer_vstar  # WilKE needs every δ_l
    kbar = keys.averaged(model, tok, [fact["prompt"]], [fact["subject"]], layers=[0, 1, 2], templates=TEMPLATES)[:, 0]
    wn = [float(models.ffn_weight(model, layer).double().norm()) for layer in (0, 1, 2)]
    res = ed.edit(fact)
    want = [float(seen[layer].delta.norm()) * wn[layer] ** 2 / float(kbar[layer].norm()) ** 2 for layer in (0, 1, 2)]
    np.testing.assert_allclose([res.info["scores"][layer] for layer in (0, 1, 2)], want, rtol=1e-9)
    assert res.layer == int(np.argmin(want)) == 1


def test_kis_and_wilke_trajectories_measure_every_candidate_layer(covs):
    facts = tiny_facts()
    for method in ("kis", "wilke"):
        model, tok = peaked_tiny()
        ed = editing.make_editor(method, model, tok, covs, layer_hp(method, covs), TEMPLATES,
                                 protected=facts[9:12] if method == "kis" else None)
        frame = trajectory.run(model, tok, ed, facts[:3], facts[5:9], eval_every=3, model_name="tiny",
                               fluency_prompts=0)
        assert (frame.status == "ok").all() and frame.step.tolist() == [0, 3]
        assert len(frame.edit_layers.iloc[-1]) == 3 and set(frame.edit_layers.iloc[-1]) <= {0, 1, 2}
        assert frame.interference_measured.iloc[-1] > 0
        assert frame.interference_rel_error_max.iloc[-1] < 1e-4   # the closed form, summed over the layers
        assert len(frame.prior_risk_facts.iloc[0]) == 4 and len(frame.heldout_correct_facts.iloc[-1]) == 4


def test_protected_and_heldout_never_overlap(covs):
    ids = list(range(100, 140))
    edit_ids, test_ids = trajectory.split(ids, 10, 8, seed=3)
    prot = trajectory.protected_split(ids, 10, 8, 3, 15)
    assert len(prot) == 15 and not set(prot) & (set(edit_ids) | set(test_ids))
    assert trajectory.split(ids, 10, 8, seed=3) == (edit_ids, test_ids)
    with pytest.raises(ValueError, match="share 1 fact"):
        editing.check_protected([1, 2, 3], [3, 4])
    model, tok = peaked_tiny()
    facts = tiny_facts()
    ed = editing.make_editor("kis", model, tok, covs, layer_hp("kis", covs), TEMPLATES, protected=facts[6:9])
    with pytest.raises(ValueError, match="protected set and the held-out set share"):
        trajectory.run(model, tok, ed, facts[:2], facts[8:11], eval_every=1, fluency_prompts=0)
    with pytest.raises(ValueError, match="kis needs a protected set"):
        editing.make_editor("kis", copy.deepcopy(model), tok, covs, layer_hp("kis", covs), TEMPLATES)


def test_new_trajectory_columns_come_after_the_old_ones():
    cols = list(trajectory.TRAJECTORY_COLUMNS)
    assert cols.index("seconds") == cols.index("heldout_logp_true_facts") - 1
    assert cols[-4:] == ["heldout_logp_true_facts", "heldout_correct_facts", "prior_risk_facts", "edit_layers"]
