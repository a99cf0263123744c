"""What turning kis's update direction buys, to first order, before any edit is run: P on facts nobody protected.

kis with protect_weight w writes each edit along u_i = A_i⁻¹k̄_i, A_i = C + (w/n)(K_p K_pᵀ + Σ_{e<i} k̄_e k̄_eᵀ) (n the
protected facts K_p, then every earlier edit's key). An edit moves key j by r_i P_ij, P_ij = u_iᵀk_j / u_iᵀk̄_i, and the
residual r_i = v_i − W k̄_i does not depend on u_i, so |P_ij| alone says how a direction trades damage:
  protected     mean_j |P_ij| over the protected facts (what the rule is built to spare)
  validation    mean_j |P_ij| over known facts that are neither edited, held out nor protected (does it generalise?)
  earlier       mean_e<i |P_ie| over the stream's earlier edits (are they overwritten?)
  corpus        sqrt(u_iᵀC u_i) / |u_iᵀk̄_i|: the RMS of P over the corpus tokens behind C (the price)
for each w and candidate layer, averaged over the stream, keys from the unedited model. The held-out set of
editing_methods.py (same seed, same split) is never read. No v*, no edit: minutes on one core.

    PYTHONPATH=src .venv/bin/python benchmarks/kis_direction.py --weights 0,0.1,1,10,100 --out /tmp/kd.md
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from bench_common import REPO, model_for  # noqa: E402
from editing_methods import corpus_texts, markdown  # noqa: E402

from kis import covariance, editing, keys, knowledge, models, trajectory  # noqa: E402

log = logging.getLogger("benchmarks.kis_direction")


def direction_study(C: torch.Tensor, K_edit: torch.Tensor, K_prot: torch.Tensor, K_val: torch.Tensor,
                    weight: float) -> dict:
    """Mean |P| on protected, validation and earlier-edit keys and the corpus RMS of P, over a stream of edits
    K_edit (f × N, in order) written along u_i = A_i⁻¹k̄_i (module docstring); all keys f × m, float64."""
    C, K_edit, K_prot, K_val = (x.double() for x in (C, K_edit, K_prot, K_val))
    n = K_prot.shape[1]
    A = C + (weight / n) * (K_prot @ K_prot.T) if weight else C.clone()
    out = {"protected": [], "validation": [], "earlier": [], "corpus": []}
    for i in range(K_edit.shape[1]):
        k = K_edit[:, i]
        u = torch.cholesky_solve(k[:, None], torch.linalg.cholesky(A))[:, 0]
        norm = float(u @ k)
        out["protected"].append(float((u @ K_prot).abs().mean()) / abs(norm))
        out["validation"].append(float((u @ K_val).abs().mean()) / abs(norm))
        if i:
            out["earlier"].append(float((u @ K_edit[:, :i]).abs().mean()) / abs(norm))
        out["corpus"].append(float(u @ C @ u) ** 0.5 / abs(norm))
        if weight:
            A = A + (weight / n) * torch.outer(k, k)
    return {name: sum(v) / len(v) if v else float("nan") for name, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="Markdown table (a CSV is written beside it)")
    ap.add_argument("--weights", default="0,0.1,1,10,100")
    ap.add_argument("--edits", type=int, default=100)
    ap.add_argument("--n-test", type=int, default=30, help="held-out facts (skipped, never read)")
    ap.add_argument("--max-facts", type=int, default=1017)
    ap.add_argument("--facts", default=str(REPO / "resources" / "facts.json"), help="as editing_methods.py")
    ap.add_argument("--manifest", help="a prepared model's manifest.json (default: SmolLM2-135M)")
    ap.add_argument("--corpus-file")
    ap.add_argument("--n-texts", type=int, default=300)
    ap.add_argument("--max-length", type=int, default=192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    import yaml

    settings = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["editing"]
    model, tok, key = model_for(args.manifest)
    hp = editing.resolve_hparams(settings, "kis", models.n_layers(model), [key], models.dims(model)[1])
    layers, n_prot = hp["layers"], int(hp["n_protected"])
    texts, corpus_id = corpus_texts(args.corpus_file, args.n_texts)
    sums, count = covariance.collect(model, tok, texts, max_length=args.max_length, token_budget=4096)
    covs = covariance.finalize(sums, count)
    frame, _ = knowledge.load_facts({"source": "local", "path": args.facts, "max_records": args.max_facts})
    ktab = knowledge.known_table(model, tok, frame[knowledge.FACT_COLUMNS], batch_size=32)
    known = ktab.case_id[ktab.known].tolist()
    edit_ids, _test = trajectory.split(known, args.edits, args.n_test, args.seed)
    prot_ids = trajectory.protected_split(known, args.edits, args.n_test, args.seed, n_prot)
    used = set(edit_ids) | set(_test) | set(prot_ids)
    val_ids = [c for c in known if c not in used]
    log.info("%d known: %d edits, %d protected, %d validation (held-out %d not read)", len(known), len(edit_ids),
             len(prot_ids), len(val_ids), len(_test))
    if not prot_ids or not val_ids:
        sys.exit(f"{args.facts}: {len(known)} known facts of {args.max_facts} leave {len(prot_ids)} protected and "
                 f"{len(val_ids)} validation facts after {len(edit_ids)} edits and {len(_test)} held out: "
                 "raise --max-facts or lower --edits")

    def keys_of(ids, templates=("{}",)):
        fs = trajectory.facts_by_id(frame, ids)
        return keys.averaged(model, tok, [f["prompt"] for f in fs], [f["subject"] for f in fs], layers=layers,
                             templates=templates)

    K_edit = keys_of(edit_ids, settings["context_templates"])  # what kis writes at: the template mean
    K_prot, K_val = keys_of(prot_ids), keys_of(val_ids)         # as kis caches its protected keys: bare prompt
    rows = []
    for w in [float(x) for x in args.weights.split(",")]:
        for i, layer in enumerate(layers):
            t0 = time.perf_counter()
            r = direction_study(covs[layer], K_edit[i].T, K_prot[i].T, K_val[i].T, w)
            rows.append({"weight": w, "layer": layer, **r})
            log.info("w %g layer %d: %s (%.0f s)", w, layer, r, time.perf_counter() - t0)
    df = pd.DataFrame(rows)
    base = df[df.weight == 0].set_index("layer")
    for col in ("protected", "validation", "earlier", "corpus"):
        df[f"{col}_vs_w0"] = [v / base.loc[layer, col] for v, layer in zip(df[col], df.layer)]
    out = Path(args.out)
    df.to_csv(out.with_suffix(".csv"), index=False)
    text = (f"{key}: kis directions for {len(edit_ids)} edits (seed {args.seed}), {len(prot_ids)} protected, "
            f"{len(val_ids)} validation known facts; C from {count} tokens of {corpus_id}; layers {layers}.\n\n"
            + markdown(df))
    out.write_text(text)
    print(text)
    return df


if __name__ == "__main__":
    main()
