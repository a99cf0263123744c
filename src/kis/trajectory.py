"""Lifelong editing trajectories: edit a stream of known facts one at a time and measure what breaks.

A seeded permutation of the known facts gives the edit stream (first n_edits) and a disjoint held-out set (next
n_test). After every `eval_every` edits (and at step 0, before any edit) one row is recorded (columns:
TRAJECTORY_COLUMNS): held-out confidence P(target_true) and accuracy, retention of earlier edits,
CounterFact efficacy / paraphrase / neighborhood success over the edits so far, ‖ΔW‖_F, and interference on the
held-out keys at the measure layer: the measured displacement ‖(W_n − W_0) k_j‖ and the paper's prediction of it,
‖Σ_i r_i P_ij‖ with P_ij = (C⁻¹k_i)ᵀk_j / (C⁻¹k_i)ᵀk_i, and the pre-edit forecast of forgetting (kis.preedit,
computed before the first edit).
A diverging edit (non-finite update, weight or metric; singular solve) is recorded as a row with status
"diverged" and ends the trajectory; the rows before it are kept.

CounterFact protocol (ROME): a prompt prefers o_new over o_true when the mean per-token log-probability of
" " + o_new exceeds that of " " + o_true, teacher-forced after the prompt; comparisons are strict both ways (a tie
is neither efficacy nor neighborhood success, as MEMIT's summarize); the magnitudes are ROME's mean differences
P(new) − P(true) (neighborhood: P(true) − P(new)) with P = exp(mean per-token log p). Fluency (ROME/MEMIT's n_gram_entropy): greedy
continuations of the generation prompts, up to fluency_max_len tokens in all (ROME's max_out_len = 100; ROME samples
top-5, we decode greedily for a deterministic metric), scored by n_gram_entropy.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from . import editing, keys, models, preedit, probe
from .io import RESUMED, atomic_path, first_difference, read_parquet_metadata, write_parquet

log = logging.getLogger(__name__)

TRAJECTORY_COLUMNS = {
    "step": "edits applied so far (0: the unedited model)",
    "method": " | ".join(editing.METHODS),
    "model": "config key of the model",
    "layer": "measure layer: the edited layer (ROME), the first layer of the range (MEMIT family) or of the "
             "candidate window (wilke, least-interference: their interference columns cover every candidate layer)",
    "status": "ok | diverged (the trajectory stops at the first diverged edit; its row has the reason)",
    "reason": "why an edit diverged ('' when ok)",
    "case_id": "case id of the last edit of this step ('' at step 0)",
    "heldout_p_true": "mean over held-out facts of P(target_true | prompt) (product over target tokens)",
    "heldout_logp_true": "mean over held-out facts of log P(target_true | prompt) (less dominated by sure facts)",
    "heldout_acc": "share of held-out facts whose target_true is the teacher-forced argmax at every token",
    "retention": "share of the edits so far whose target_new is still the argmax at every token",
    "efficacy": "share of edits so far with mean log p(new) > mean log p(true) on the rewrite prompt",
    "paraphrase": "mean over edits so far of the share of paraphrase prompts with p(new) > p(true)",
    "neighborhood": "mean over edits so far of the share of neighborhood prompts with p(true) > p(new) strictly "
                    "(ties fail, as MEMIT's summarize)",
    "fluency": "n-gram entropy (ROME/MEMIT: mean of 2/3·H₂ and 4/3·H₃ in bits, averaged over texts) of greedy "
               "continuations of the held-out facts' generation prompts (a fixed set: step 0 is the baseline)",
    "fluency_edited": "the same over the generation prompts of the edits so far (ROME/MEMIT's protocol; NaN at step 0)",
    "new_edit_efficacy": "share of the edits of this step successful right after they were applied",
    "new_edit_p_new": "mean P(target_new | prompt) of the edits of this step right after they were applied",
    "v_prob": "mean over the edits of this step of exp(−NLL) at the end of the δ optimisation",
    "delta_w_fro": "‖W_n − W_0‖_F summed in squares over the edited layers",
    "interference_measured": "mean over held-out keys j (bare prompt, subject's last token) of ‖(W_n − W_0) k_j‖ at "
                             "the measure layer",
    "interference_predicted": "mean over held-out keys j of ‖Σ_i r_i P_ij‖, P_ij = u_iᵀk_j / u_iᵀk_i from the update "
                              "direction u_i the method used: bookkeeping (equals the measured displacement for any "
                              "sum of rank-one updates; a check of the code, not of the paper)",
    "interference_predicted_c": "the same with the paper's P from u_i = C⁻¹k_i for every method (equals "
                                "interference_predicted for ROME, r-ROME and MEMIT)",
    "interference_rel_error_median": "median over held-out keys j of ‖measured_j − predicted_j‖ / ‖measured_j‖ "
                                     "(bookkeeping: the directions used)",
    "interference_rel_error_max": "max over held-out keys j of ‖measured_j − predicted_j‖ / ‖measured_j‖ (dominated "
                                  "by keys that barely move)",
    "interference_measured_keys": "list: ‖(W_n − W_0) k_j‖ per held-out key",
    "interference_predicted_keys": "list: ‖Σ_i r_i P_ij‖ per held-out key (direction actually used)",
    "n_triggered": "DeltaEdit: edits so far whose δ was orthogonalised (0 for other methods)",
    "seconds": "wall seconds of the edits of this step",
    # per held-out fact (the forecast of forgetting, kis.forecast; added after the columns above, which are unchanged)
    "heldout_logp_true_facts": "list: log P(target_true | prompt) per held-out fact (order of test_case_ids)",
    "heldout_correct_facts": "list: whether target_true is the teacher-forced argmax at every token, per held-out fact",
    "forecast_risk_facts": "list: pre-edit forecast per held-out fact, ‖Σ_{i≤step} r̂_i P_ij‖ over the planned stream "
                           "(kis.preedit: unedited model only, computed before the first edit)",
    "edit_layers": "list: the layer each edit of this step wrote (its key, residual and direction; wilke / least-interference choose "
                   "one per edit)",
    # the paper's P against the measured displacement, and the pre-edit baselines (issue 27; after the columns above)
    "interference_predicted_c_keys": "list: ‖Σ_i r_i P_ij‖ per held-out key with the paper's P (u_i = C⁻¹k_i)",
    "interference_c_error_keys": "list: ‖measured_j − predicted_j‖ per held-out key with the paper's P",
    "interference_c_rel_error_median": "median over held-out keys j of ‖measured_j − predicted_j‖ / ‖measured_j‖ with "
                                       "the paper's P (u_i = C⁻¹k_i): how far the paper's formula is from the method",
    "heldout_margin_facts": "list: unedited confidence margin per held-out fact, min over target tokens of "
                            "log p(true) − max log p(other) (kis.preedit; the same in every row)",
    "heldout_key_norm_facts": "list: ‖k_j‖ of each held-out fact's key at the measure layer, unedited model (the same "
                              "in every row)",
    # CounterFact's magnitudes (ROME's experiments/summarize.py:61-68, :83-90; P = exp(mean per-token log p), its
    # test_batch_prediction, experiments/py/eval_utils_counterfact.py:131-140), after the columns above
    "efficacy_magnitude": "mean over edits so far of P(new) − P(true) on the rewrite prompt, P = exp(mean per-token "
                          "log p) (ROME's rewrite_diff)",
    "paraphrase_magnitude": "mean over edits so far of the mean over paraphrase prompts of P(new) − P(true) "
                            "(ROME's paraphrase_diff)",
    "neighborhood_magnitude": "mean over edits so far of the mean over neighborhood prompts of P(true) − P(new) "
                              "(ROME's neighborhood_diff: positive when the neighbours keep their true object)",
}


# ---------------------------------------------------------------- facts

def _plan(case_ids, n_edits: int, n_test: int, seed: int) -> tuple[list[int], int, int]:
    """(seeded permutation of the eligible case ids, n_edits, n_test), the two shrunk (logged) when facts are few."""
    ids = [int(c) for c in case_ids]
    if len(ids) < 2:
        raise ValueError(f"need at least 2 eligible facts for an edit stream and a held-out set, got {len(ids)}")
    if n_edits + n_test > len(ids):
        new_test = min(n_test, max(1, len(ids) // 3))
        new_edits = min(n_edits, len(ids) - new_test)
        log.warning("only %d eligible facts for %d edits + %d held out: using %d edits + %d held out", len(ids),
                    n_edits, n_test, new_edits, new_test)
        n_edits, n_test = new_edits, new_test
    order = np.random.RandomState(seed).permutation(len(ids))
    return [ids[i] for i in order], n_edits, n_test


def check_enough(n_eligible: int, settings: dict, where: str) -> None:
    """With explicit recorded steps (a study) the stream and held-out set must be as long as asked: too few eligible
    facts is an error naming the numbers, not the shrunk stream _plan would make (eval_every alone keeps that)."""
    need = int(settings["n_edits"]) + int(settings["n_test"])
    if settings.get("steps") is not None and n_eligible < need:
        raise ValueError(f"{where} has {n_eligible} eligible facts, fewer than editing.n_edits ({settings['n_edits']}) "
                         f"+ editing.n_test ({settings['n_test']}) = {need} that a run with explicit editing.steps "
                         "needs: lower them, or raise facts.max_records (null: every record)")


def split(case_ids, n_edits: int, n_test: int, seed: int) -> tuple[list[int], list[int]]:
    """(edit stream, held-out set): a seeded permutation of the eligible case ids, cut in two disjoint parts.
    With too few facts the held-out set shrinks to a third of them and the stream takes the rest (logged)."""
    perm, n_edits, n_test = _plan(case_ids, n_edits, n_test, seed)
    return perm[:n_edits], perm[n_edits:n_edits + n_test]


def protected_split(case_ids, n_edits: int, n_test: int, seed: int, n_protected: int) -> list[int]:
    """The protected set of least-interference: the next n_protected case ids of split's seeded permutation after the edit stream
    and the held-out set (so neither changes with it); fewer, with a warning, when the facts run out."""
    perm, n_edits, n_test = _plan(case_ids, n_edits, n_test, seed)
    rest = perm[n_edits + n_test:]
    if len(rest) < n_protected:
        log.warning("only %d eligible facts left for a protected set of %d", len(rest), n_protected)
    out = rest[:n_protected]
    editing.check_protected(out, perm[n_edits:n_edits + n_test])
    return out


# ---------------------------------------------------------------- scoring

@torch.no_grad()
def score(model, tok, texts: list[str], targets: list[str], batch_size: int = 32) -> tuple[np.ndarray, ...]:
    """(mean log p per token, total log p, all tokens argmax) of " " + target after each text (teacher-forced)."""
    prompts = [probe.prompt_ids(tok, text) for text in texts]
    tgts = [probe.target_ids(tok, text, target) for text, target in zip(texts, targets)]
    n = len(prompts)
    mean_lp, sum_lp, hit = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    for i, (lp, arg) in enumerate(probe.teacher_forced(model, probe.pad_id(tok), prompts, tgts,
                                                       batch_size=batch_size)):
        sum_lp[i], mean_lp[i] = float(lp.sum()), float(lp.mean())
        hit[i] = bool((arg == torch.tensor(tgts[i], device=arg.device)).all())
    return mean_lp, sum_lp, hit


def n_gram_entropy(texts) -> float:
    """ROME/MEMIT's n_gram_entropy: mean over texts of mean(2/3·H₂, 4/3·H₃), H_n the entropy in bits of the
    text's n-gram frequencies. Words: runs of word characters and single punctuation marks (nltk.word_tokenize in
    the reference code; this regex approximates it without the dependency)."""
    out = []
    for text in texts:
        words = re.findall(r"\w+|[^\w\s]", text)
        ent = []
        for n, weight in ((2, 2 / 3), (3, 4 / 3)):
            grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
            if not grams:
                ent.append(0.0)
                continue
            _, counts = np.unique(np.array([" ".join(g) for g in grams]), return_counts=True)
            p = counts / counts.sum()
            ent.append(weight * float(-(p * np.log2(p)).sum()))
        out.append(float(np.mean(ent)))
    return float(np.mean(out)) if out else float("nan")


def generation_prompts(facts: list[dict], per_fact: int | None) -> list[str]:
    """The first `per_fact` (None: all) generation prompts of each fact; its rewrite prompt when it has none."""
    out = []
    for f in facts:
        gen = list(f.get("generation_prompts") or []) or [f["prompt"].format(f["subject"])]
        out += gen if per_fact is None else gen[:per_fact]
    return out


@torch.no_grad()
def greedy_texts(model, tok, prompts: list[str], max_len: int = 100, batch_size: int = 32) -> list[str]:
    """Greedy continuations (no stop at EOS, as ROME's generate_fast) of each prompt to max_len tokens in all, decoded
    with the prompt. Prompts sorted by length share a batch, left-padded (the mask hides the pads, positions count
    real tokens only, so each row is decoded as if alone); a KV cache carries the steps."""
    dev = probe.device_of(model)
    rows = [list(tok(p, add_special_tokens=True)["input_ids"]) for p in prompts]
    out = [""] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]), i))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        ids, mask = (t.to(dev) for t in probe.pad([rows[i] for i in chunk], probe.pad_id(tok), left=True))
        width = ids.shape[1]  # every row's last token sits at column width - 1
        pos = probe.positions(mask)
        with probe.head_at(model, torch.full((len(chunk), 1), width - 1)):  # the prompts' last logits only
            res = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        new, steps = [], max(0, max_len - min(len(rows[i]) for i in chunk))
        for step in range(steps):
            nxt = res.logits[:, -1].argmax(-1, keepdim=True)
            new.append(nxt)
            if step == steps - 1:
                break
            mask = torch.cat([mask, torch.ones_like(nxt)], 1)
            pos = pos[:, -1:] + 1
            res = model(input_ids=nxt, attention_mask=mask, position_ids=pos, past_key_values=res.past_key_values,
                        use_cache=True)
        gen = torch.cat(new, 1).tolist() if new else [[] for _ in chunk]
        for b, i in enumerate(chunk):  # each row keeps max_len tokens in all
            out[i] = tok.decode(rows[i] + gen[b][:max(0, max_len - len(rows[i]))], skip_special_tokens=True)
    return out


def evaluate(model, tok, edited: list[dict], test: list[dict], max_neighborhood: int | None = 10,
             batch_size: int = 32, fluency_prompts: int | None = None, fluency_max_len: int = 100) -> dict:
    """Held-out confidence and accuracy, retention, efficacy, paraphrase and neighborhood success, fluency.
    max_neighborhood / fluency_prompts: prompts per fact (None: all; fluency_prompts 0: no fluency)."""
    texts, targets, tags = [], [], []

    def add(text, target, tag):
        texts.append(text)
        targets.append(target)
        tags.append(tag)

    def nbs(f):
        return list(f["neighborhood_prompts"])[:max_neighborhood]

    for j, f in enumerate(test):
        add(f["prompt"].format(f["subject"]), f["target_true"], ("test", j, 0, "true"))
    for i, f in enumerate(edited):
        for which in ("new", "true"):
            add(f["prompt"].format(f["subject"]), f[f"target_{which}"], ("rw", i, 0, which))
            for q, para in enumerate(f["paraphrase_prompts"]):
                add(para, f[f"target_{which}"], ("para", i, q, which))
            for q, nb in enumerate(nbs(f)):
                add(nb, f[f"target_{which}"], ("nb", i, q, which))
    mean_lp, sum_lp, hit = score(model, tok, texts, targets, batch_size)
    by = {tag: (m, s, h) for tag, m, s, h in zip(tags, mean_lp, sum_lp, hit)}
    nan = float("nan")
    gen = fluency_prompts != 0
    held = generation_prompts(test, fluency_prompts) if gen and test else []
    edit_prompts = generation_prompts(edited, fluency_prompts) if gen and edited else []
    # one decoding chain for both sets (greedy decoding is bound by reading the weights once per token step)
    decoded = greedy_texts(model, tok, held + edit_prompts, fluency_max_len, batch_size) if held or edit_prompts else []
    out = {"heldout_logp_true_facts": [float(by[("test", j, 0, "true")][1]) for j in range(len(test))],
           "heldout_correct_facts": [bool(by[("test", j, 0, "true")][2]) for j in range(len(test))],
           "heldout_p_true": float(np.mean([np.exp(by[("test", j, 0, "true")][1]) for j in range(len(test))]))
           if test else nan,
           "heldout_logp_true": float(np.mean([by[("test", j, 0, "true")][1] for j in range(len(test))]))
           if test else nan,
           "heldout_acc": float(np.mean([by[("test", j, 0, "true")][2] for j in range(len(test))]))
           if test else nan,
           "fluency": n_gram_entropy(decoded[:len(held)]) if held else nan,
           "fluency_edited": n_gram_entropy(decoded[len(held):]) if edit_prompts else nan}
    if not edited:
        return {**out, "retention": nan, "efficacy": nan, "paraphrase": nan, "neighborhood": nan,
                "efficacy_magnitude": nan, "paraphrase_magnitude": nan, "neighborhood_magnitude": nan}

    def new_wins(kind, i, q):
        return by[(kind, i, q, "new")][0] > by[(kind, i, q, "true")][0]

    def true_wins(kind, i, q):  # strict: a tie is no success
        return by[(kind, i, q, "true")][0] > by[(kind, i, q, "new")][0]

    def new_minus_true(kind, i, q):  # ROME's P(new) − P(true), P = exp(mean per-token log p) (summarize.py:64)
        return float(np.exp(by[(kind, i, q, "new")][0]) - np.exp(by[(kind, i, q, "true")][0]))

    para, nbr, para_mag, nbr_mag = [], [], [], []
    for i, f in enumerate(edited):
        if len(f["paraphrase_prompts"]):
            para.append(np.mean([new_wins("para", i, q) for q in range(len(f["paraphrase_prompts"]))]))
            para_mag.append(np.mean([new_minus_true("para", i, q) for q in range(len(f["paraphrase_prompts"]))]))
        if nbs(f):
            nbr.append(np.mean([true_wins("nb", i, q) for q in range(len(nbs(f)))]))
            nbr_mag.append(np.mean([-new_minus_true("nb", i, q) for q in range(len(nbs(f)))]))  # summarize.py:86
    return {**out,
            "retention": float(np.mean([by[("rw", i, 0, "new")][2] for i in range(len(edited))])),
            "efficacy": float(np.mean([new_wins("rw", i, 0) for i in range(len(edited))])),
            "paraphrase": float(np.mean(para)) if para else nan,
            "neighborhood": float(np.mean(nbr)) if nbr else nan,
            "efficacy_magnitude": float(np.mean([new_minus_true("rw", i, 0) for i in range(len(edited))])),
            "paraphrase_magnitude": float(np.mean(para_mag)) if para_mag else nan,
            "neighborhood_magnitude": float(np.mean(nbr_mag)) if nbr_mag else nan}


def immediate(model, tok, fact: dict) -> tuple[bool, float]:
    """(success, P(target_new)) on the rewrite prompt right after an edit."""
    text = fact["prompt"].format(fact["subject"])
    mean_lp, sum_lp, _ = score(model, tok, [text, text], [fact["target_new"], fact["target_true"]])
    return bool(mean_lp[0] > mean_lp[1]), float(np.exp(sum_lp[0]))


# ---------------------------------------------------------------- interference

def interference(U, K_edit, R, K_test, dW) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(‖measured_j‖, ‖predicted_j‖, ‖measured_j − predicted_j‖) for each held-out key k_j (columns of K_test):
    measured (W_n − W_0) k_j against Σ_i r_i P_ij, P_ij = u_iᵀk_j / u_iᵀk_i with U = [u_i] the update directions
    (f × n; editing.whiten(L, K_edit) gives the paper's C⁻¹k_i)."""
    if K_edit.shape[1] == 0:
        z = np.zeros(K_test.shape[1])
        return z, z, z
    pred = editing.predicted_change(R, editing.p_matrix(U, K_edit, K_test))
    meas = dW @ K_test.double()
    return meas.norm(dim=0).cpu().numpy(), pred.norm(dim=0).cpu().numpy(), (meas - pred).norm(dim=0).cpu().numpy()


def _rel(err, meas, how) -> float:
    return float(how(err / np.maximum(meas, 1e-300))) if len(meas) else float("nan")


# ---------------------------------------------------------------- the loop

def run(model, tok, editor, edits: list[dict], test: list[dict], *, eval_every: int, model_name: str = "",
        max_neighborhood: int | None = 10, batch_size: int = 32, fluency_prompts: int | None = None,
        fluency_max_len: int = 100, record_steps=None, progress=None, log_every: int = 1, checkpoint=None,
        checkpoint_every: int | None = None, stale: str = "error", inputs: dict | None = None,
        planned: dict | None = None) -> pd.DataFrame:
    """Apply `edits` one by one with `editor`; a row every eval_every edits, or at the steps in `record_steps`
    when given (and at step 0 and after the last edit). The interference is measured at the editor's
    measure_layers (default [measure_layer]); over several layers the per-key norms are those of the stacked
    displacement, sqrt(Σ_l ‖·‖²). An editor with a protected set (least-interference) must not protect a held-out fact.
    Before the first edit the pre-edit forecast (kis.preedit.compute: risk per held-out fact for every step of the
    planned stream, confidence margin, key norm) is taken from the model as given — the unedited one; a resumed run
    reads it from the checkpoint, where its first part stored it before its first edit. planned: the forecast's
    planned keys and residual estimates (kis.preedit.estimates, the preedit rule's file) when made beforehand.
    max_neighborhood, batch_size, fluency_prompts, fluency_max_len: how a row is measured (Evaluation).
    log_every: log the line of every log_every-th edit, the last and every failed one (0: failed ones only).
    progress: called with the rows so far after every row is recorded (step 0 included), so that a caller can write
    partial results that outlive a kill.
    checkpoint: a file (torch.save) that holds, every checkpoint_every edits and at every recorded row, all a rerun
    needs to go on after the last edit saved: the edited weights, the editor's state (editing.editor_state), the
    rows and the interference bookkeeping. When it exists at the start, the run resumes from it (the same method,
    model, stream, held-out set and hyperparameters, else an error naming the field — or, with stale="restart",
    a logged warning and a fresh start); it is removed once the trajectory ends. Resumed or not, the rows are the
    same (tests/test_trajectory.py). What "the same run" means is checkpoint_signature; `inputs` adds what only the
    caller knows (the rule: the C tensors' hash, the whole editing settings, the model's files).
    checkpoint_every (≥ 1) is required with a checkpoint."""
    if checkpoint is not None and not (isinstance(checkpoint_every, int) and checkpoint_every >= 1):
        raise ValueError(f"a trajectory checkpoint needs checkpoint_every ≥ 1 (edits between saves), got "
                         f"{checkpoint_every!r}")
    if getattr(editor, "protected_ids", None) is not None:
        editing.check_protected(editor.protected_ids, [f["case_id"] for f in test])
    ev = Evaluation(max_neighborhood, batch_size, fluency_prompts, fluency_max_len)
    traj = Trajectory(model, tok, editor, edits, test, ev, model_name, progress)
    saved = store = None
    if checkpoint is not None:  # only a checkpointed run needs its identity
        steps = sorted(int(s) for s in record_steps) if record_steps is not None else int(eval_every)
        store = Checkpoint(Path(checkpoint), checkpoint_every, checkpoint_signature(
            editor, model, edits, test, model_name=model_name, layers=traj.layers, steps=steps,
            evaluation=ev.signature(), inputs=inputs))
        saved = store.load(stale)
    start = traj.start(saved, store.path if store is not None else None, planned)
    if start == 0:
        traj.record(traj.row(0))
    for n, fact in enumerate(edits[start:], start + 1):  # after the last edit a checkpoint saved (0: all)
        if not traj.edit(n, fact, log_every):
            break  # diverged: its row is recorded
        due = n in record_steps if record_steps is not None else n % eval_every == 0
        if (due or n == len(edits)) and not traj.record_row(n):
            break  # non-finite held-out probability: recorded as diverged
        if store is not None and (due or n % store.every == 0) and n < len(edits):
            store.save(traj.state(n))
    if store is not None:
        store.remove(f"{editor.name} on {model_name}")
    return traj.frame()


@dataclass(frozen=True)
class Evaluation:
    """How a row is measured (evaluate): prompts per fact (None: all; fluency_prompts 0: no fluency), the length of
    the greedy continuations and the sequences per forward (batch_size never changes a metric)."""
    max_neighborhood: int | None = 10
    batch_size: int = 32
    fluency_prompts: int | None = None
    fluency_max_len: int = 100

    def signature(self) -> dict:
        """The part of checkpoint_signature that changes a row (with the forecast's rule)."""
        return {"max_neighborhood": self.max_neighborhood, "fluency_prompts": self.fluency_prompts,
                "fluency_max_len": int(self.fluency_max_len), "forecast": preedit.RULE}


class Applied(NamedTuple):
    """One edit of the current step, as the row reports it (a checkpoint stores it as a JSON list)."""
    ok: bool          # target_new wins right after the edit
    p_new: float      # P(target_new | prompt) right after the edit
    v_prob: float     # exp(−NLL) at the end of the δ optimisation
    seconds: float
    layer: int        # the layer the edit wrote (−1: diverged)


class Trajectory:
    """One trajectory's state between edits: the unedited weights W_0 and held-out keys k_j (set up at the start),
    the pre-edit forecast, the edits so far with their keys k_i, residuals r_i and directions u_i per measure layer,
    the edits of the current step (`window`) and the rows recorded."""

    # ------------------------------------------------ setup: W_0 and the held-out keys

    def __init__(self, model, tok, editor, edits: list[dict], test: list[dict], ev: Evaluation, model_name: str,
                 progress=None):
        self.model, self.tok, self.editor, self.edits, self.test = model, tok, editor, edits, test
        self.ev, self.model_name, self.progress = ev, model_name, progress
        self.ml = editor.measure_layer
        self.mls = list(getattr(editor, "measure_layers", [self.ml]))
        self.layers = sorted(set(editor.layers) | set(self.mls))
        self.W0 = {layer: models.ffn_weight(model, layer).detach().double().clone() for layer in self.layers}
        self.dev = probe.device_of(model)
        # held-out keys of the prompts the metrics evaluate: bare prompt, subject's last token (as the paper's P)
        Kt = keys.averaged(model, tok, [f["prompt"] for f in test], [f["subject"] for f in test], layers=self.mls,
                           batch_size=ev.batch_size)
        self.K_test = {layer: Kt[i].to(self.dev).T for i, layer in enumerate(self.mls)}  # f × m
        self.edit_keys, self.resids, self.dirs = ({layer: [] for layer in self.mls} for _ in range(3))
        self.done, self.window, self.rows, self.n_triggered = [], [], [], 0
        self.pre = None

    # ------------------------------------------------ the start: the pre-edit forecast, a resume

    def start(self, saved: dict | None, path: Path | None, planned: dict | None = None) -> int:
        """The pre-edit forecast, from the unedited model before any edit, and the edits already applied (0; a
        resumed run takes the forecast its first part computed before its first edit, and its state, from the
        checkpoint `saved`)."""
        ed = self.editor
        self.pre = ({k: np.asarray(v) for k, v in saved["preedit"].items()} if saved is not None else
                    preedit.compute(self.model, self.tok, ed, self.edits, self.test, self.K_test[self.ml],
                                    self.ev.batch_size, planned))
        start = self._resume(saved, path) if saved is not None else 0
        log.info("%s on %s: layers %s (measure layer %d), edited weights in %s (model %s)", ed.name, self.model_name,
                 ed.layers, self.ml, ed.precision["edited_dtype"], ed.precision["model_dtype"])
        return start

    def _resume(self, saved: dict, path: Path) -> int:
        """Restore the edited weights, the editor, the bookkeeping, the rows and the RNG from a checkpoint; the
        number of edits it saved."""
        start = int(saved["n"])
        with torch.no_grad():
            for layer, w in saved["weights"].items():
                models.ffn_weight(self.model, layer).copy_(w)
        editing.load_editor_state(self.editor, saved["editor"], f"{path}: ")
        for mine, kept in ((self.edit_keys, saved["edit_keys"]), (self.resids, saved["resids"]),
                           (self.dirs, saved["dirs"])):
            for layer in self.mls:
                mine[layer] = [t.to(self.dev) for t in kept[layer]]
        self.done = list(self.edits[:start])
        self.rows, self.window = json.loads(saved["rows"]), [Applied(*w) for w in json.loads(saved["window"])]
        self.n_triggered = int(saved["n_triggered"])
        torch.set_rng_state(saved["rng"])
        log.info("%s on %s: " + RESUMED + " (%d rows recorded)", self.editor.name, self.model_name, path, start,
                 len(self.edits), len(self.rows))
        return start

    # ------------------------------------------------ one edit

    def edit(self, n: int, fact: dict, log_every: int) -> bool:
        """Apply edit n (1-based) and book its key, residual and direction at the layer it wrote; False when it
        diverged (its row is then recorded with the reason)."""
        ed = self.editor
        try:
            res = ed.edit(fact)
        except (editing.EditDiverged, torch.linalg.LinAlgError) as e:
            log.warning("%s: edit %d (case %s) diverged: %s — trajectory stops here", ed.name, n, fact["case_id"], e)
            self.window.append(Applied(False, float("nan"), float("nan"), 0.0, -1))
            self.record({**self.row(n, "diverged", str(e)), "case_id": str(fact["case_id"])})
            return False
        at = self.ml if res.layer is None else int(res.layer)
        if at not in self.edit_keys:
            raise ValueError(f"{ed.name}: edit of case {fact['case_id']} wrote layer {at}, not one of the measure "
                             f"layers {self.mls}")
        self.edit_keys[at].append(res.key)
        self.resids[at].append(res.residual)
        self.dirs[at].append(res.direction)
        self.done.append(fact)
        self.n_triggered += int(res.triggered)
        ok, p_new = immediate(self.model, self.tok, fact)
        self.window.append(Applied(ok, p_new, res.v_prob, res.seconds, at))
        if not ok or (log_every > 0 and (n % log_every == 0 or n == len(self.edits))):
            log.info("%s edit %d/%d case %s: %s, P(new) = %.3f (v* prob %.3f, %.1f s)", ed.name, n, len(self.edits),
                     fact["case_id"], "success" if ok else "FAILED", p_new, res.v_prob, res.seconds)
        return True

    # ------------------------------------------------ one row: evaluation and interference bookkeeping

    def record_row(self, step: int) -> bool:
        """Record the row after edit `step` and start a new window; False (the row marked diverged) when the
        held-out probability is not finite."""
        r = self.row(step)
        if not np.isfinite(r["heldout_p_true"]):
            r.update(status="diverged", reason="non-finite held-out probability")
            self.record(r)
            log.warning("%s: non-finite held-out probability after edit %d — trajectory stops", self.editor.name, step)
            return False
        self.record(r)
        self.window = []
        return True

    def row(self, step: int, status: str = "ok", reason: str = "") -> dict:
        """One row of TRAJECTORY_COLUMNS: the model as it is now (evaluate), the edits of this step (window), ΔW, the
        interference at the measure layers and the pre-edit forecast."""
        dW = {layer: models.ffn_weight(self.model, layer).detach().double() - self.W0[layer] for layer in self.layers}
        w, nan = self.window, float("nan")
        ev = self.ev
        return {"step": step, "method": self.editor.name, "model": self.model_name, "layer": self.ml,
                "status": status, "reason": reason, "case_id": str(self.done[-1]["case_id"]) if self.done else "",
                **evaluate(self.model, self.tok, self.done, self.test, ev.max_neighborhood, ev.batch_size,
                           ev.fluency_prompts, ev.fluency_max_len),
                "forecast_risk_facts": self.pre["risk"][min(step, len(self.pre["risk"]) - 1)].tolist(),
                "edit_layers": [a.layer for a in w],
                "new_edit_efficacy": float(np.mean([a.ok for a in w])) if w else nan,
                "new_edit_p_new": float(np.mean([a.p_new for a in w])) if w else nan,
                "v_prob": float(np.mean([a.v_prob for a in w])) if w else nan,
                "delta_w_fro": float(np.sqrt(sum(float(d.norm()) ** 2 for d in dW.values()))),
                **self._interference(dW),
                "n_triggered": self.n_triggered, "seconds": float(sum(a.seconds for a in w)),
                "heldout_margin_facts": self.pre["margin"].tolist(),
                "heldout_key_norm_facts": self.pre["key_norm"].tolist()}

    def _interference(self, dW: dict) -> dict:
        """The interference columns: measured ‖ΔW k_j‖ against ‖Σ_i r_i P_ij‖ with the directions used and with the
        paper's u_i = C⁻¹k_i, norms stacked over the measure layers (sqrt(Σ_l ‖·‖²))."""
        sq = np.zeros((5, len(self.test)))  # squared norms: measured, predicted, error; predicted and error with C⁻¹k
        for layer in self.mls:
            if self.edit_keys[layer]:
                K_edit, R = torch.stack(self.edit_keys[layer], 1), torch.stack(self.resids[layer], 1)
                U = torch.stack(self.dirs[layer], 1)
                got = interference(U, K_edit, R, self.K_test[layer], dW[layer])
                got_c = interference(editing.whiten(self.editor.chol[layer], K_edit), K_edit, R, self.K_test[layer],
                                     dW[layer])[1:]
                sq += np.stack([*got, *got_c]) ** 2
        meas, pred, err, pred_c, err_c = np.sqrt(sq)
        any_edit = any(self.edit_keys[layer] for layer in self.mls)
        nan = float("nan")
        return {"interference_measured": float(meas.mean()) if len(meas) else nan,
                "interference_predicted": float(pred.mean()) if len(pred) else nan,
                "interference_predicted_c": float(pred_c.mean()) if len(pred_c) else nan,
                "interference_rel_error_median": _rel(err, meas, np.median) if any_edit else nan,
                "interference_rel_error_max": _rel(err, meas, np.max) if any_edit else nan,
                "interference_measured_keys": meas.tolist(), "interference_predicted_keys": pred.tolist(),
                "interference_predicted_c_keys": pred_c.tolist(), "interference_c_error_keys": err_c.tolist(),
                "interference_c_rel_error_median": _rel(err_c, meas, np.median) if any_edit else nan}

    def record(self, r: dict):
        self.rows.append(r)
        if self.progress is not None:
            self.progress(self.frame())

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)[list(TRAJECTORY_COLUMNS)]

    # ------------------------------------------------ the checkpoint's content

    def state(self, n: int) -> dict:
        """All a rerun needs to go on after edit n (Checkpoint adds the signature)."""
        weights = {layer: models.ffn_weight(self.model, layer).detach().cpu().clone() for layer in self.layers}
        return {"n": n, "rows": json.dumps(self.rows, default=_plain), "window": json.dumps(self.window),
                "n_triggered": self.n_triggered, "rng": torch.get_rng_state(), "weights": weights,
                "editor": editing.editor_state(self.editor),
                "preedit": {k: torch.as_tensor(np.asarray(v)) for k, v in self.pre.items()},
                **{name: {layer: [t.detach().cpu() for t in d[layer]] for layer in self.mls}
                   for name, d in (("edit_keys", self.edit_keys), ("resids", self.resids), ("dirs", self.dirs))}}


@dataclass
class Checkpoint:
    """Where a trajectory saves its state (Trajectory.state) every `every` edits and at every row, and the
    signature (checkpoint_signature) a saved state must carry to be resumed."""
    path: Path
    every: int
    signature: dict

    def load(self, stale: str) -> dict | None:
        """The saved state of this run; None when there is none, or (stale="restart") when it belongs to another run
        (logged, and the file removed); else the mismatch is an error naming the field."""
        if not self.path.exists():
            return None
        try:
            return _read_checkpoint(self.path, self.signature)
        except ValueError as e:
            if stale != "restart":
                raise
            log.warning("%s — starting the trajectory over", e)
            self.path.unlink()
            return None

    def save(self, state: dict):
        with atomic_path(self.path) as tmp:
            torch.save({"signature": self.signature, **state}, tmp)

    def remove(self, what: str):
        """At the end of the trajectory."""
        if self.path.exists():
            self.path.unlink()
            log.info("%s: trajectory ended, checkpoint %s removed", what, self.path)


def content_hash(obj) -> str:
    """SHA-256 of obj as canonical JSON (sorted keys; numpy values and other types by their str)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_plain_or_str).encode()).hexdigest()


def _plain_or_str(x):
    try:
        return _plain(x)
    except TypeError:
        return str(x)


def checkpoint_signature(editor, model, edits: list[dict], test: list[dict], *, model_name: str, layers, steps,
                         evaluation: dict, inputs: dict | None = None) -> dict:
    """Everything that changes a trajectory's rows, one field each; a checkpoint resumes only when all agree.

    method; model (its name) and weights (models.weights_id of the unedited model as loaded); the edit stream and the
    held-out set, by case id and by content (a fact edited under the same id is another fact); the protected facts
    (least-interference); the edited layers; the resolved hyperparameters; the context templates and the KL prompt the editor
    uses; the recorded steps; the evaluation settings; and `inputs`, what only the caller knows — the rule passes
    the hash of the C tensors the editor was given, the ridge added to C, and the whole editing settings."""
    return {"method": editor.name, "model": model_name, "weights": models.weights_id(model),
            "edits": [str(f["case_id"]) for f in edits], "edit_facts": content_hash(edits),
            "test": [str(f["case_id"]) for f in test], "test_facts": content_hash(test),
            "protected": [str(i) for i in getattr(editor, "protected_ids", None) or []],
            "layers": [int(x) for x in layers], "hp": json.dumps(editor.hp, sort_keys=True, default=str),
            "templates": list(getattr(editor, "templates", [])), "kl_prompt": getattr(editor, "kl_prompt", None),
            "steps": steps, "evaluation": evaluation, **(inputs or {})}


def _plain(x):
    """JSON for numpy scalars and arrays in a row."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"a trajectory row holds a {type(x).__name__}, which a checkpoint cannot store")


def _read_checkpoint(path: Path, sig: dict) -> dict:
    """The checkpoint at `path`, after checking it belongs to this run (signature fields, named on a mismatch)."""
    try:
        st = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ValueError(f"{path}: not a readable trajectory checkpoint ({type(e).__name__}: {e}); delete it to "
                         "start over") from e
    diff = first_difference(st.get("signature", {}) if isinstance(st, dict) else {}, sig)
    if diff:
        raise ValueError(f"{path}: checkpoint field {diff}: it belongs to another run (delete it to start over)")
    return st


def facts_by_id(frame: pd.DataFrame, ids) -> list[dict]:
    by = {int(r["case_id"]): r for r in frame.to_dict("records")}
    missing = [i for i in ids if i not in by]
    if missing:
        raise ValueError(f"facts.parquet has no case_id {missing[:5]} named by the known table")
    out = []
    for i in ids:
        r = dict(by[i])
        r["paraphrase_prompts"] = list(r["paraphrase_prompts"])
        r["neighborhood_prompts"] = list(r["neighborhood_prompts"])
        r["generation_prompts"] = list(r.get("generation_prompts", []))  # optional (older facts files lack it)
        out.append(r)
    return out


def run_inputs(manifest: dict, covs: dict, settings: dict) -> dict:
    """The rule's part of a trajectory checkpoint's signature: where the model was loaded from, the C the editor got
    (SHA-256 of every loaded layer's tensor: another corpus, sample or model gives another C) with the ridge added
    to it, and the whole editing settings of this trajectory (rules/common.smk edit_settings)."""
    h = hashlib.sha256()
    for layer in sorted(covs):
        h.update(f"{layer}:{tuple(covs[layer].shape)}:{covs[layer].dtype}".encode())
        h.update(covs[layer].detach().cpu().contiguous().numpy().tobytes())
    return {"model_files": {k: manifest.get(k) for k in ("location", "revision", "dtype")},
            "cov": h.hexdigest(), "cov_ridge": float(settings["cov_ridge"]),
            "settings": json.dumps(settings, sort_keys=True, default=str)}


@dataclass
class Setup:
    """What a trajectory job and its preedit job read before editing: the model, the split, the method's resolved
    hyperparameters and its context templates."""
    net: object
    tok: object
    man: dict
    frame: pd.DataFrame
    edit_ids: list
    test_ids: list
    protected_ids: list
    hp: dict
    layers: list
    templates: list
    template_source: str
    seed: int


def setup(*, manifest, known, facts, model: str, method: str, settings: dict, names, device="cpu",
          logger=None) -> Setup:
    """Load the prepared model and the facts, split the known ones into the stream and the held-out set (seeded),
    resolve the method's hyperparameters and make its context templates (module run_rule)."""
    model_name, logger = model, logger or log
    net, tok, man = models.load_prepared(manifest, device=device)
    frame = pd.read_parquet(facts)
    ktab = pd.read_parquet(known)
    for col in ("case_id", "known"):
        if col not in ktab.columns:
            raise ValueError(f"{known}: missing column {col!r}")
    if settings["require_known"]:
        eligible = [c for c in ktab.case_id[ktab.known.astype(bool)].tolist()]
        logger.info("%s knows %d of %d facts", model_name, len(eligible), len(ktab))
    else:
        eligible = frame.case_id.tolist()
        logger.warning("editing.require_known is false: editing and holding out facts whether known or not")
    seed = int(settings["seed"])
    check_enough(len(eligible), settings, f"{known}: {model_name}")
    edit_ids, test_ids = split(eligible, int(settings["n_edits"]), int(settings["n_test"]), seed)
    hp = editing.resolve_hparams(settings, method, man["n_layers"], list(names) or [model_name], man["d_ff"])
    protected_ids = protected_split(eligible, int(settings["n_edits"]), int(settings["n_test"]), seed,
                                    int(hp["n_protected"])) if method == "least-interference" else []
    logger.info("%s on %s: hyperparameters from %s: %s", method, model_name, hp["source"], hp)
    layers = editing.edited_layers(method, hp)
    logger.info("%s on %s edits layers %s (%s)", method, model_name, layers,
                hp["sources"].get("layer", hp["sources"].get("layers")))
    if settings["context_templates"] == "generated":  # sampled from the unedited model (kis.templates)
        from . import templates as tmpl

        templates = tmpl.generate(net, tok, method, int(settings["template_seed"]))
        template_source = f"generated: {method}'s recipe (kis.templates), seed {int(settings['template_seed'])}"
        logger.info("%s on %s: %d context templates %s: %s", method, model_name, len(templates), template_source,
                    templates)
    else:
        templates, template_source = list(settings["context_templates"]), "fixed list (editing.context_templates)"
    return Setup(net, tok, man, frame, edit_ids, test_ids, protected_ids, hp, layers, templates, template_source,
                 seed)


def run_rule(*, manifest, cov, known, facts, table, model: str, method: str, settings: dict, names, batch_size: int,
             checkpoint_every: int, forecast=None, preedit=None, device="cpu", logger=None):
    """Rule `trajectory`: model + C cache + known facts → trajectories/{model}/{method}.parquet (`table`) and, when
    given, the per-fact forecast table beside it (`forecast`, kis.forecast.long_table).

    settings: the editing section's settings of this trajectory (rules/common.smk edit_settings, every key given);
    names: what editing.published / overrides may call the model (config key, hub id, ...); batch_size: sequences
    per evaluation forward (never changes a metric); checkpoint_every > 0: every that many edits (and at every row)
    the state goes to <table stem>.ckpt.pt beside the table, so that a rerun after a kill (a SLURM time limit, a
    preemption) resumes after the last edit saved; a checkpoint of other settings is logged and ignored.
    preedit: the preedit rule's file of the forecast's planned keys and residual estimates (kis.preedit.estimates,
    perhaps made for another method with the same forecast), checked against this trajectory's own signature."""
    model_name = model
    from . import covariance
    from . import preedit as pre

    logger = logger or log
    st = setup(manifest=manifest, known=known, facts=facts, model=model, method=method, settings=settings,
               names=names, device=device, logger=logger)
    net, tok, man, frame, hp, layers = st.net, st.tok, st.man, st.frame, st.hp, st.layers
    edit_ids, test_ids, protected_ids, seed = st.edit_ids, st.test_ids, st.protected_ids, st.seed
    templates, template_source = st.templates, st.template_source
    steps = settings.get("steps")
    covs, cmeta = covariance.load(cov, layers=sorted(set(layers)))
    planned = None
    if preedit is not None:
        edits = facts_by_id(frame, edit_ids)
        planned = pre.load_estimates(preedit, pre.signature(net, edits, method, hp, templates, settings["kl_prompt"]))
        logger.info("%s on %s: the forecast's planned keys and v* shifts from %s", method, model_name, preedit)
    torch.manual_seed(seed)
    editor = editing.make_editor(method, net, tok, covs, hp, templates, settings["kl_prompt"],
                                 float(settings["cov_ridge"]), protected=facts_by_id(frame, protected_ids))
    if editor.measure_layer != editing.measure_layer(method, hp):  # the layer the preedit file was made for
        raise RuntimeError(f"{method}: the editor measures at layer {editor.measure_layer}, editing.measure_layer "
                           f"says {editing.measure_layer(method, hp)}")
    t0 = time.perf_counter()

    def progress(so_far: pd.DataFrame):  # run() hands over the rows recorded so far; the last one is new
        r = so_far.iloc[-1]
        logger.info("step %d: held-out P(true) %.4f, acc %.3f, retention %.3f, efficacy %.3f, interference "
                    "measured %.4g vs the paper's P %.4g (%.1f s so far)", r["step"], r["heldout_p_true"],
                    r["heldout_acc"], r["retention"], r["efficacy"], r["interference_measured"],
                    r["interference_predicted_c"], time.perf_counter() - t0)

    checkpointed = checkpoint_every > 0  # editing.checkpoint_every: edits between saved states, 0: none
    rows = run(net, tok, editor, facts_by_id(frame, edit_ids), facts_by_id(frame, test_ids),
               eval_every=int(settings["eval_every"]), record_steps=steps, model_name=model_name,
               max_neighborhood=settings["max_neighborhood"], batch_size=int(batch_size),
               fluency_prompts=settings["fluency_prompts"], fluency_max_len=int(settings["fluency_max_len"]),
               progress=progress, stale="restart", inputs=run_inputs(man, covs, settings) if checkpointed else None,
               checkpoint=Path(table).with_suffix(".ckpt.pt") if checkpointed else None,
               checkpoint_every=checkpoint_every if checkpointed else None, planned=planned)
    fmeta = read_parquet_metadata(facts)
    meta = {"model": model_name, "method": method, "seed": seed, "corpus_id": cmeta.get("corpus_id"),
            "hparams": {k: v for k, v in hp.items()}, "context_templates": templates,
            "context_templates_source": template_source, "layers": list(layers),
            "precision": editor.precision,
            "edit_case_ids": edit_ids, "test_case_ids": test_ids, "protected_case_ids": protected_ids,
            "facts_source": fmeta.get("source"),
            "n_edits": len(edit_ids), "n_test": len(test_ids), "diverged": bool((rows.status != "ok").any())}
    write_parquet(rows, table, metadata=meta)
    if forecast is not None:
        from . import forecast as fc

        write_parquet(fc.long_table(rows, test_ids), forecast, metadata=meta)
    return rows, meta
