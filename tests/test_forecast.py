"""The forecast of forgetting (kis.preedit before the edits, kis.forecast's evaluation, the per-fact trajectory columns,
the figure), the bookkeeping identity of the interference, and the layer-choosing editors WilKE and least-interference on random
tensors and tiny random models."""
import copy

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

from editfix import TEMPLATES, hp_for, peaked_tiny, spd, t, tiny_facts
from kis import editing, editing_figures, forecast, io, keys, models, preedit, trajectory, vstar

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- closed forms on random tensors

def test_bookkeeping_identity_and_the_papers_p_on_random_tensors():
    """Σ_i r_i P_ij with the directions actually used equals (W_n − W_0) k_j for any sum of rank-one updates (a
    check of the code, not of the paper); with ROME's u_i = C⁻¹k_i it is the paper's P."""
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
    # other directions (MEMIT's form (λC' + kkᵀ)⁻¹k with another matrix C' than C): the identity holds with them, the
    # paper's P (C⁻¹k) misses
    Wm, Km, Rm, Um = W0.clone(), [], [], []
    for _ in range(n):
        k, r = t(rng.standard_normal(f)), t(rng.standard_normal(d))
        u = editing.memit_direction(C + t(np.diag(rng.random(f) * 5)), k[:, None], 0.5)[:, 0]
        Wm = Wm + torch.outer(r, u) / (u @ k)
        Km.append(k), Rm.append(r), Um.append(u)
    Km, Rm = torch.stack(Km, 1), torch.stack(Rm, 1)
    meas, pred, err = trajectory.interference(torch.stack(Um, 1), Km, Rm, K_test, Wm - W0)
    assert err.max() < 1e-9 * meas.max()
    _m, pred_c, err_c = trajectory.interference(editing.whiten(L, Km), Km, Rm, K_test, Wm - W0)
    assert np.median(err_c / meas) > 1e-3
    # the predicted damage least-interference minimises is the summed displacement of the protected keys by that one update
    k, v = t(rng.standard_normal(f)), t(rng.standard_normal(d))
    _lam, u, dW = editing.rome_update(W, L, k, v)
    want = np.linalg.norm((dW @ K_test).numpy(), axis=0).sum()
    assert editing.predicted_damage(dW @ k, u, k, K_test) == pytest.approx(want, rel=1e-10)


def test_cumulative_risk_against_numpy():
    """risk_j(s) = ‖Σ_{i≤s} r̂_i P_ij‖, P_ij = (C⁻¹k_i)ᵀk_j / (C⁻¹k_i)ᵀk_i, written out in numpy."""
    rng = np.random.default_rng(4)
    d, f, n, m = 5, 10, 6, 7
    C, K, Kt, R = spd(f, rng), rng.standard_normal((f, n)), rng.standard_normal((f, m)), rng.standard_normal((d, n))
    got = preedit.cumulative_risk(editing.cholesky(t(C)), t(K), t(R), t(Kt))
    assert got.shape == (n + 1, m) and (got[0] == 0).all()
    for s in range(1, n + 1):
        disp = sum(np.outer(R[:, i], (np.linalg.solve(C, K[:, i]) @ Kt) / (np.linalg.solve(C, K[:, i]) @ K[:, i]))
                   for i in range(s))
        np.testing.assert_allclose(got[s], np.linalg.norm(disp, axis=0), rtol=1e-9)


class UndoneROME(editing.ROME):
    """ROME whose every edit is computed and then taken back: the model stays the unedited one."""

    def edit(self, fact):
        W = models.ffn_weight(self.model, self.layer).detach().clone()
        res = super().edit(fact)
        with torch.no_grad():
            models.ffn_weight(self.model, self.layer).copy_(W)
        return res


def test_pre_edit_forecast_is_the_same_whether_or_not_the_edits_are_applied(covs):
    """The forecast columns come from the unedited model only: a trajectory whose edits are undone gives the same
    risk, margin and key norm at every step as one that applies them, and the risk is ‖Σ_{i≤s} δ_i P_ij‖ with δ_i
    the v* shift on a fresh unedited model (numpy)."""
    facts = tiny_facts()
    edits, test = facts[:4], facts[6:10]
    hp = dict(hp_for("rome", covs, [1]), v_num_grad_steps=8)
    frames = {}
    for name, cls in (("applied", editing.ROME), ("undone", UndoneROME)):
        model, tok = peaked_tiny()
        frames[name] = trajectory.run(model, tok, cls(model, tok, covs, hp, TEMPLATES), edits, test, eval_every=2,
                                      model_name="tiny", fluency_prompts=0)
    a, u = frames["applied"], frames["undone"]
    assert a.step.tolist() == u.step.tolist() == [0, 2, 4]
    assert a.delta_w_fro.iloc[-1] > 0 and (u.delta_w_fro == 0).all()            # the edits did change the model
    assert not np.allclose(a.heldout_logp_true_facts.iloc[-1], u.heldout_logp_true_facts.iloc[-1])
    for col in ("forecast_risk_facts", "heldout_margin_facts", "heldout_key_norm_facts"):
        for x, y in zip(a[col], u[col]):
            assert list(x) == list(y), col
    assert list(a.forecast_risk_facts.iloc[0]) == [0.0] * 4
    # the risk by hand on a fresh unedited model
    model, tok = peaked_tiny()
    K = keys.averaged(model, tok, [f["prompt"] for f in edits], [f["subject"] for f in edits], layers=[1],
                      templates=TEMPLATES)[0].numpy().T
    Kt = keys.averaged(model, tok, [f["prompt"] for f in test], [f["subject"] for f in test], layers=[1])[0].numpy().T
    deltas = [vstar.optimize_delta(model, tok, prompt=f["prompt"], subject=f["subject"], target=f["target_new"],
                                   layer=1, templates=TEMPLATES, hp=hp, kl_prompt="{} is a", norm="mlp").delta.numpy()
              for f in edits]
    C = covs[1].double().numpy()
    for s, row in zip((2, 4), a.forecast_risk_facts.iloc[1:]):
        disp = sum(np.outer(deltas[i], (np.linalg.solve(C, K[:, i]) @ Kt) / (np.linalg.solve(C, K[:, i]) @ K[:, i]))
                   for i in range(s))
        np.testing.assert_allclose(row, np.linalg.norm(disp, axis=0), rtol=1e-6)
    np.testing.assert_allclose(a.heldout_key_norm_facts.iloc[0], np.linalg.norm(Kt, axis=0), rtol=1e-9)
    # the margin is positive exactly for the facts correct before editing
    assert [m > 0 for m in a.heldout_margin_facts.iloc[0]] == list(a.heldout_correct_facts.iloc[0])


def test_confidence_margin_by_hand_and_positive_exactly_for_correct_facts():
    """margin = log p(true) − max log p(other) (one-token targets here, from the prompt's last logits by hand); > 0
    exactly where trajectory.score calls the fact correct. Some facts get the model's own top token as target_true."""
    from kis import probe

    facts = tiny_facts()
    model, tok = peaked_tiny()
    by_hand = []
    for i, f in enumerate(facts):
        text = f["prompt"].format(f["subject"])
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([probe.prompt_ids(tok, text)])).logits[0, -1]
        lp = torch.log_softmax(logits.double(), -1)
        if i < 6:  # the first top-5 token that is its own one-token target
            for cand in lp.topk(5).indices.tolist():
                w = tok.decode([cand]).strip()
                if w and probe.target_ids(tok, text, w) == [cand]:
                    f["target_true"] = w
                    break
        tid = probe.target_ids(tok, text, f["target_true"])
        assert len(tid) == 1
        others = lp.clone()
        others[tid[0]] = -torch.inf
        by_hand.append(float(lp[tid[0]] - others.max()))
    got = preedit.confidence_margin(model, tok, facts, batch_size=5)
    np.testing.assert_allclose(got, by_hand, rtol=1e-4, atol=1e-5)
    _, _, hit = trajectory.score(model, tok, [f["prompt"].format(f["subject"]) for f in facts],
                                 [f["target_true"] for f in facts])
    assert hit.any() and not hit.all()
    assert ((got > 0) == hit).all()


def test_confidence_margin_multi_token_targets_one_unpadded_pass_per_fact():
    """Multi-token targets, batches of facts with other lengths (padding): the margin is the minimum over target
    tokens of log p(t_k) − max_{v ≠ t_k} log p(v), each fact's from one unpadded forward pass of prompt + target."""
    from kis import probe

    facts = tiny_facts()
    for i, f in enumerate(facts):
        f["target_true"] = " ".join(["Paris", "of the", "north side of", "old"][: 1 + i % 4])
    model, tok = peaked_tiny()
    by_hand = []
    for f in facts:
        text = f["prompt"].format(f["subject"])
        p, tt = probe.prompt_ids(tok, text), probe.target_ids(tok, text, f["target_true"])
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=torch.tensor([p + tt])).logits[0].double(), -1)
        per_token = []
        for k, tok_id in enumerate(tt):
            row = lp[len(p) - 1 + k].clone()
            own = float(row[tok_id])
            row[tok_id] = -torch.inf
            per_token.append(own - float(row.max()))
        by_hand.append(min(per_token))
    assert len({len(probe.target_ids(tok, f["prompt"].format(f["subject"]), f["target_true"])) for f in facts}) > 2
    for bs in (1, 5):
        np.testing.assert_allclose(preedit.confidence_margin(model, tok, facts, batch_size=bs), by_hand,
                                   rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- AUC, bootstrap

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
    assert np.isnan(forecast.forgetting_auc([1, 2, 3], [True, True, True], n_boot=10, seed=0)[0])


def test_bootstrap_interval_is_the_percentiles_of_mann_whitney_aucs_of_resampled_facts():
    rng = np.random.default_rng(5)
    pred = rng.standard_normal(40)
    label = rng.random(40) < 1 / (1 + np.exp(-pred))
    _auc, lo, hi = forecast.forgetting_auc(pred, label, n_boot=200, seed=7)
    draw, boots = np.random.default_rng(7), []
    for _ in range(200):  # the same resamples of the facts, each AUC by Mann–Whitney U
        i = draw.integers(0, 40, 40)
        y, p = label[i], pred[i]
        if y.all() or not y.any():
            continue
        boots.append(scipy.stats.mannwhitneyu(p[y], p[~y]).statistic / (y.sum() * (~y).sum()))
    np.testing.assert_allclose([lo, hi], np.percentile(boots, [2.5, 97.5]), rtol=1e-12)


# ---------------------------------------------------------------- the long table and the figure

def fake_trajectory(method, meas_by_step, logp_by_step, correct_by_step, risk_by_step, margin, key_norm, model="m"):
    rows = []
    for step, (p, lp, c, r) in enumerate(zip(meas_by_step, logp_by_step, correct_by_step, risk_by_step)):
        rows.append({"model": model, "method": method, "step": step, "status": "ok",
                     "interference_measured_keys": list(p), "heldout_logp_true_facts": list(lp),
                     "heldout_correct_facts": list(c), "forecast_risk_facts": list(r),
                     "heldout_margin_facts": list(margin), "heldout_key_norm_facts": list(key_norm)})
    return pd.DataFrame(rows)


def test_long_table_differences_and_forgotten():
    traj = fake_trajectory("rome", [[0, 0, 0], [1.0, 2.0, 3.0]], [[-1.0, -2.0, -3.0], [-1.5, -2.0, -9.0]],
                           [[True, False, True], [True, False, False]], [[0, 0, 0], [0.1, 0.2, 0.3]],
                           [2.0, -1.0, 0.5], [3.0, 4.0, 5.0])
    long = forecast.long_table(traj, [7, 8, 9])
    assert list(long.columns) == list(forecast.FORECAST_COLUMNS)
    assert long.case_id.tolist() == [7, 8, 9] and (long.step == 1).all()
    np.testing.assert_allclose(long.delta_logp_true, [-0.5, 0.0, -6.0])
    np.testing.assert_allclose(long.risk, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(long.measured, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(long.margin0, [2.0, -1.0, 0.5])
    np.testing.assert_allclose(long.random, np.random.default_rng(0).random(3))  # seeded
    assert long.forgotten.tolist() == [False, False, True]   # fact 8 was never correct: not forgotten
    with pytest.raises(ValueError, match="3 values of measured for 4 held-out facts"):
        forecast.long_table(traj, [7, 8, 9, 10])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['forecast_risk_facts'\]"):
        forecast.long_table(traj.drop(columns=["forecast_risk_facts"]), [7, 8, 9])


def test_step_table_per_step_against_mann_whitney_with_every_baseline():
    """One AUC per (method, step, score) over the facts correct at step 0, signed so that higher = more at risk
    (confidence: the negated margin); each equals Mann–Whitney U / (n₁ n₀) computed here; the interval is a
    bootstrap over those facts."""
    rng = np.random.default_rng(2)
    m = 60
    c0 = rng.random(m) < 0.8
    margin, key_norm = rng.standard_normal(m), rng.random(m) + 1
    risk1, risk2 = rng.random(m), rng.random(m)
    meas1 = risk1 + 0.1 * rng.standard_normal(m)
    c1 = c0 & (risk1 < 0.7)
    c2 = c1 & (risk2 < 0.8)
    traj = fake_trajectory("least-interference", [np.zeros(m), meas1, meas1 * 2], [np.zeros(m)] * 3, [c0, c1, c2],
                           [np.zeros(m), risk1, risk2], margin, key_norm)
    long = forecast.long_table(traj, range(m), seed=3)
    tab = forecast.step_table(long, n_boot=100, seed=1)
    assert list(tab.columns) == forecast.STEP_COLUMNS
    assert set(tab.score) == {"risk", "confidence", "key_norm", "random", "measured_displacement"}
    assert not tab[tab.score == "measured_displacement"].pre_edit.any() and tab[tab.score == "risk"].pre_edit.all()
    rand = np.random.default_rng(3).random(m)
    for step, forgotten, risk, meas in ((1, c0 & ~c1, risk1, meas1), (2, c0 & ~c2, risk2, 2 * meas1)):
        y = forgotten[c0]
        want = {"risk": risk, "confidence": -margin, "key_norm": key_norm, "random": rand,
                "measured_displacement": meas}
        for score, x in want.items():
            x = x[c0]
            row = tab[(tab.step == step) & (tab.score == score)].iloc[0]
            u = scipy.stats.mannwhitneyu(x[y], x[~y]).statistic
            assert row.auc == pytest.approx(u / (y.sum() * (~y).sum()), rel=1e-12), (step, score)
            assert row.auc_lo <= row.auc <= row.auc_hi
            assert row.n_known == c0.sum() and row.n_forgotten == y.sum()
    assert tab[(tab.step == 1) & (tab.score == "risk")].auc.iloc[0] == 1.0  # step 1: forgotten iff risk1 ≥ 0.7


def test_forecast_figure_and_table_per_method_and_step(tmp_path):
    rng = np.random.default_rng(1)
    m = 30
    paths = []
    for method, sign in (("least-interference", 1.0), ("rome", -1.0)):
        risk = rng.random(m) + 0.01
        correct1 = sign * (risk - np.median(risk)) < 0          # least-interference: the riskiest half forgotten
        traj = fake_trajectory(method, [np.zeros(m), risk], [np.zeros(m), -risk], [np.ones(m, bool), correct1],
                               [np.zeros(m), risk], rng.standard_normal(m), rng.random(m))
        long = forecast.long_table(traj, range(m))
        path = tmp_path / f"{method}.forecast.parquet"
        io.write_parquet(long, path, metadata={"corpus_id": "pydoc-test"})
        paths.append(path)
    png, csv, summ_csv, paired_csv = tmp_path / "f.png", tmp_path / "f.csv", tmp_path / "auc.csv", tmp_path / "p.csv"
    editing_figures.run_forecast(paths, png, csv, summ_csv, paired_csv, labels={"m": "Model M"}, dpi=50, n_boot=50,
                                 seed=0)
    paired = pd.read_csv(paired_csv)  # the two methods on the same facts, in kis.editing's order
    assert list(zip(paired.method_a, paired.method_b)) == [("rome", "least-interference")] and len(paired) == 1
    summ = pd.read_csv(summ_csv)
    risk = summ[summ.score == "risk"].set_index("method")
    assert risk.loc["least-interference", "auc"] == 1.0 and risk.loc["rome", "auc"] == 0.0 and (risk.step == 1).all()
    assert len(summ) == 2 * len(forecast.SCORES)
    fig, _ = editing_figures.forecast_figure(editing_figures.read_forecasts(paths), {"m": "Model M"}, n_boot=50, seed=0)
    assert len(fig.axes) == 2
    texts = [x.get_text() for x in fig.axes[0].get_legend().get_texts()]
    assert texts == ["risk", "confidence", "key_norm", "random", "measured_displacement (post-edit)"], texts
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


# ---------------------------------------------------------------- least-interference and WilKE on a tiny model

def layer_hp(method, covs):
    hp = hp_for(method, covs, [0, 1, 2])
    hp.update(v_num_grad_steps=6, n_protected=4)
    return hp


@pytest.mark.parametrize("target", [0, 2])
def test_kis_picks_the_layer_of_least_predicted_damage(covs, target):
    """Protected keys orthogonal (in whitening space) to the edit's key at `target`, equal to it elsewhere: the
    predicted damage is 0 at `target` only, so least-interference edits there and leaves the other layers alone."""
    model, tok = peaked_tiny()
    facts = tiny_facts()
    fact = facts[0]
    ed = editing.make_editor("least-interference", model, tok, covs, layer_hp("least-interference", covs), TEMPLATES, protected=facts[8:12])
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
        hp = dict(layer_hp("least-interference", covs), protect_weight=w)
        ed = editing.make_editor("least-interference", model, tok, covs, hp, TEMPLATES, protected=prot)
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




def test_kis_and_wilke_trajectories_measure_every_candidate_layer(covs):
    facts = tiny_facts()
    for method in ("least-interference", "wilke"):
        model, tok = peaked_tiny()
        ed = editing.make_editor(method, model, tok, covs, layer_hp(method, covs), TEMPLATES,
                                 protected=facts[9:12] if method == "least-interference" else None)
        frame = trajectory.run(model, tok, ed, facts[:3], facts[5:9], eval_every=3, model_name="tiny",
                               fluency_prompts=0)
        assert (frame.status == "ok").all() and frame.step.tolist() == [0, 3]
        assert len(frame.edit_layers.iloc[-1]) == 3 and set(frame.edit_layers.iloc[-1]) <= {0, 1, 2}
        assert frame.interference_measured.iloc[-1] > 0
        assert frame.interference_rel_error_max.iloc[-1] < 1e-4   # bookkeeping, summed over the layers
        assert len(frame.forecast_risk_facts.iloc[0]) == 4 and len(frame.heldout_correct_facts.iloc[-1]) == 4


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
    ed = editing.make_editor("least-interference", model, tok, covs, layer_hp("least-interference", covs), TEMPLATES, protected=facts[6:9])
    with pytest.raises(ValueError, match="protected set and the held-out set share"):
        trajectory.run(model, tok, ed, facts[:2], facts[8:11], eval_every=1, fluency_prompts=0)
    with pytest.raises(ValueError, match="least-interference needs a protected set"):
        editing.make_editor("least-interference", copy.deepcopy(model), tok, covs, layer_hp("least-interference", covs), TEMPLATES)


def test_new_trajectory_columns_come_after_the_old_ones():
    cols = list(trajectory.TRAJECTORY_COLUMNS)
    assert cols.index("seconds") == cols.index("heldout_logp_true_facts") - 1
    assert cols[cols.index("seconds") + 1:cols.index("seconds") + 5] == [
        "heldout_logp_true_facts", "heldout_correct_facts", "forecast_risk_facts", "edit_layers"]
    assert cols.index("interference_predicted_c_keys") > cols.index("edit_layers")
    assert cols[-3:] == ["efficacy_magnitude", "paraphrase_magnitude", "neighborhood_magnitude"]


def test_paired_forgetting_is_the_exact_mcnemar_test_on_the_facts_one_method_alone_forgot():
    """Three methods on the same 40 held-out facts (35 correct at step 0): the discordant counts by hand, the exact
    two-sided p-value from the binomial sum (not scipy), Holm's adjustment by hand; the step is the last one both
    methods reached (a diverged row does not count); facts held out by one method only are an error."""
    from math import comb

    rng = np.random.default_rng(3)
    ids = np.arange(40)
    correct0 = np.arange(40) >= 5
    lost = {"rome": rng.random(40) < 0.6, "memit": rng.random(40) < 0.3, "alphaedit": rng.random(40) < 0.25}
    rows = []
    for m, x in lost.items():
        for step in (10, 25):
            if m == "alphaedit" and step == 25:
                continue  # alphaedit's stream ended at 10
            for i in ids:
                rows.append({"model": "m", "method": m, "step": step, "status": "ok", "case_id": int(i),
                             "correct0": bool(correct0[i]), "forgotten": bool(correct0[i] and x[i])})
    rows.append({"model": "m", "method": "rome", "step": 50, "status": "diverged", "case_id": 0, "correct0": True,
                 "forgotten": True})
    tab = forecast.paired_forgetting(pd.DataFrame(rows), order=["rome", "memit", "alphaedit"])
    assert list(zip(tab.method_a, tab.method_b, tab.step)) == [("rome", "memit", 25), ("rome", "alphaedit", 10),
                                                               ("memit", "alphaedit", 10)]

    def exact(b, c):  # two-sided: twice the smaller tail of Binomial(b + c, ½), at most 1
        n, k = b + c, min(b, c)
        return min(1.0, 2 * sum(comb(n, j) for j in range(k + 1)) / 2 ** n) if n else 1.0

    ps = []
    for r in tab.itertuples():
        a, b = lost[r.method_a] & correct0, lost[r.method_b] & correct0
        assert (r.n_known, r.forgotten_a, r.forgotten_b) == (35, a.sum(), b.sum())
        assert (r.only_a, r.only_b) == ((a & ~b).sum(), (b & ~a).sum())
        assert r.p_mcnemar == pytest.approx(exact(r.only_a, r.only_b), rel=1e-12)
        ps.append(r.p_mcnemar)
    order = np.argsort(ps)
    holm = np.empty(3)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, ps[i] * (3 - rank)))
        holm[i] = running
    np.testing.assert_allclose(tab.p_holm, holm, rtol=1e-12)
    assert tab.p_mcnemar.iloc[0] < 0.05  # rome forgets far more than memit here: a difference the test can see
    other = pd.DataFrame(rows)
    other = other[~((other.method == "memit") & (other.case_id == 7))]
    with pytest.raises(ValueError, match="m: rome and memit do not hold out the same facts at step 25"):
        forecast.paired_forgetting(other, order=["rome", "memit", "alphaedit"])

