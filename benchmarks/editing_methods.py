"""ROME, r-ROME, MEMIT, AlphaEdit, DeltaEdit, WilKE and kis side by side on SmolLM2-135M (or any prepared model):
one edit stream, one held-out set (and, for kis, one protected set disjoint from both).

    python benchmarks/editing_methods.py --out benchmarks/out/editing_methods.md [--edits 50] [--device cuda]
    python benchmarks/editing_methods.py --manifest results/models/gemma3-270m/manifest.json --out /tmp/g.md
    python benchmarks/editing_methods.py --edits 2 --steps 0,1,2 --out /tmp/m.md      # CPU smoke test
    python benchmarks/editing_methods.py --tiny llama --edits 4 --steps 0,4 --methods rome,wilke,kis --out /tmp/t.md
        # a tiny random model (seconds): seconds per edit of each method relative to ROME

Besides the table: the forecast of forgetting per method at the last recorded step (kis.forecast: ROC AUC for
"held-out fact forgotten" of the pre-edit risk ‖Σ_{i≤s} r̂_i P_ij‖ of kis.preedit and of its baselines, bootstrap 95 %
interval over facts) and the mean seconds per edit relative to ROME's.

Needs only torch, transformers, safetensors, pandas, pyarrow (+ gguf to convert the PyPI SmolLM2 once; no
snakemake). Every method starts from the same unedited model and edits the same seeded stream of facts SmolLM2 knows;
the same held-out known facts measure what breaks. Hyperparameters: config/config.yaml's editing section resolved
for smollm2-135m (kis.editing.resolve_hparams; the table's header names the layers). Rows at --steps: efficacy,
paraphrase and neighborhood success over the edits so far, held-out accuracy and P(true), fluency (n-gram entropy
of greedy continuations of the held-out facts' generation prompts: a fixed set, step 0 is the baseline) and the
median relative error of measured vs predicted interference.

C = E[k kᵀ] of the edited layers: from --corpus-file (JSON lines with a "text" field, .gz allowed, or plain text
with one document per blank-line-separated paragraph), else the shared Wikipedia sample (../shared), else the
CPython documentation (kis.corpus python_docs); the choice is logged and printed with the table.
"""
from __future__ import annotations

import argparse
import copy
import gzip
import json
import logging
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from bench_common import REPO, WIKI, model_for, wiki_texts  # noqa: E402

from kis import covariance, editing, forecast, knowledge, models, schema, trajectory  # noqa: E402
from kis import io as kio  # noqa: E402

log = logging.getLogger("benchmarks.editing_methods")

COLUMNS = ["efficacy", "paraphrase", "neighborhood", "heldout_acc", "heldout_p_true", "fluency", "fluency_edited",
           "interference_rel_error_median", "status"]


def corpus_texts(corpus_file: str | None, n_texts: int) -> tuple[list[str], str]:
    """(texts, corpus id): --corpus-file, else the shared Wikipedia sample, else the CPython docs (logged)."""
    if corpus_file:
        path = Path(corpus_file)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            raw = fh.read()
        name = path.name.removesuffix(".gz")
        if name.endswith((".jsonl", ".json")):
            texts = [json.loads(line)["text"] for line in raw.splitlines() if line.strip()]
        else:
            texts = [p for p in raw.split("\n\n") if p.strip()]
        corpus_id = f"file:{path.name}"
    elif WIKI.exists():
        texts = wiki_texts(n_texts)
        corpus_id = f"shared enwiki_2015_sample first {n_texts}"
    else:
        from kis import corpus

        log.warning("no --corpus-file and no %s: C from the CPython documentation (python_docs)", WIKI)
        frame, meta = corpus.build(schema.filled("corpus", {"source": "python_docs", "n_texts": n_texts, "seed": 0,
                                                            "min_chars": 500}))
        texts, corpus_id = frame.text.tolist(), str(meta.get("corpus_id", "python_docs"))
    if not texts:
        sys.exit(f"corpus {corpus_id}: no texts")
    texts = texts[:n_texts]
    log.info("C from %d texts of %s", len(texts), corpus_id)
    return texts, corpus_id


def stream_and_heldout(model, tok, facts_path: Path, max_facts: int, n_edits: int, n_test: int, seed: int,
                       batch_size: int, device: str, n_protected: int = 0, require_known: bool = True):
    """(edit stream, held-out facts, protected facts, number eligible): a seeded split of the facts SmolLM2 knows
    (all facts with require_known false, e.g. a tiny random model); the protected set (kis) is disjoint from both."""
    frame, _ = knowledge.load_facts({"source": "local", "path": str(facts_path), "max_records": max_facts})
    if require_known:
        ktab = knowledge.known_table(model, tok, frame[knowledge.FACT_COLUMNS], batch_size=batch_size, device=device)
        known = ktab.case_id[ktab.known].tolist()
    else:
        known = frame.case_id.tolist()
    edit_ids, test_ids = trajectory.split(known, n_edits, n_test, seed)
    prot = trajectory.protected_split(known, n_edits, n_test, seed, n_protected) if n_protected else []
    return (trajectory.facts_by_id(frame, edit_ids), trajectory.facts_by_id(frame, test_ids),
            trajectory.facts_by_id(frame, prot), len(known))


def forecast_table(frames, test_ids, n_boot: int = 1000) -> pd.DataFrame:
    """Per method, at its last recorded ok step: the AUC [interval over facts] for "forgotten" of the pre-edit risk
    and of each baseline (kis.forecast.step_table), facts forgotten / known, seconds per edit and its ratio to
    ROME's."""
    longs = [forecast.long_table(fr, test_ids) for fr in frames]
    tab = forecast.step_table(pd.concat(longs, ignore_index=True), n_boot=n_boot, seed=0)
    rows = []
    for method, g in tab.groupby("method", sort=False):
        g = g[g.step == g.step.max()]
        row = {"method": method, "step": int(g.step.iloc[0]),
               "forgotten": f"{g.n_forgotten.iloc[0]}/{g.n_known.iloc[0]}"}
        for r in g.itertuples():
            row[f"auc {r.score}"] = f"{r.auc:.2f} [{r.auc_lo:.2f}, {r.auc_hi:.2f}]"
        rows.append(row)
    summ = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["method", "step", "forgotten"])  # step 0 only
    sec = {fr.method.iloc[0]: float(fr.seconds.sum()) / max(1, int(fr.step.max())) for fr in frames}
    summ["seconds_per_edit"] = summ.method.map(sec)
    rome = sec.get("rome")
    summ["time_vs_rome"] = summ.seconds_per_edit / rome if rome else float("nan")
    return summ


def table(frame: pd.DataFrame, steps) -> pd.DataFrame:
    rows = frame[frame.step.isin(steps) | (frame.status != "ok")]
    return rows[["method", "step", *COLUMNS]].reset_index(drop=True)


def markdown(df: pd.DataFrame) -> str:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def hp_overrides(items, methods) -> dict:
    """{method: {key: value}} from --set METHOD.KEY=VALUE (VALUE read as YAML); an unknown method or key is an error."""
    import yaml

    known = set(yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["properties"]["editing"]["properties"]
                ["defaults"]["properties"]["rome"]["properties"])
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        method, dot, key = name.partition(".")
        if not (eq and dot and key):
            sys.exit(f"--set {item!r}: write METHOD.KEY=VALUE, e.g. kis.protect_weight=1")
        if method not in methods:
            sys.exit(f"--set {item!r}: {method!r} is not among --methods ({', '.join(methods)})")
        if key not in known:
            sys.exit(f"--set {item!r}: unknown hyperparameter {key!r} (config/schema.yaml editing.defaults)")
        value = yaml.safe_load(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e3 as a string
            try:
                value = float(value)
            except ValueError:
                pass
        out.setdefault(method, {})[key] = value
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="Markdown table (a CSV of every recorded row is written beside it)")
    ap.add_argument("--edits", type=int, default=50)
    ap.add_argument("--n-test", type=int, default=30, help="held-out known facts")
    ap.add_argument("--steps", default="0,10,25,50", help="steps shown in the table (comma separated)")
    ap.add_argument("--methods", default=",".join(editing.METHODS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    ap.add_argument("--facts", default=str(REPO / "resources" / "facts.json"), help="CounterFact records")
    ap.add_argument("--max-facts", type=int, default=500, help="records read for the known filter")
    ap.add_argument("--corpus-file", help="texts for C (JSON lines with 'text', or plain text); default: shared "
                                          "Wikipedia sample when present, else the CPython docs")
    ap.add_argument("--n-texts", type=int, default=300, help="texts for C")
    ap.add_argument("--max-length", type=int, default=128, help="tokens per text for C")
    ap.add_argument("--fluency-prompts", type=int, default=1, help="generation prompts per held-out fact")
    ap.add_argument("--fluency-max-len", type=int, default=100, help="tokens of prompt + greedy continuation (ROME's "
                    "max_out_len; the quickstart config halves it)")
    ap.add_argument("--all-facts", action="store_true", help="edit and hold out facts whether the model knows them "
                    "or not (no known filter; a tiny random model knows none, --tiny implies it)")
    ap.add_argument("--manifest", help="a prepared model's manifest.json (results/models/<key>/manifest.json, e.g. "
                    "Gemma-3-270M); its folder name is the model key for the hyperparameters (default: SmolLM2-135M)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", choices=["gpt2", "llama"], help="a tiny random model instead of SmolLM2 (timing only: "
                                                              "it knows no facts, so every fact is eligible)")
    ap.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                    help="override one hyperparameter after the config's rules (e.g. kis.protect_weight=1; repeat "
                         "for more); the header lists them")
    ap.add_argument("--log-every", type=int, default=10, help="log every n-th edit's line (and every failed one); "
                    "0: failed edits only")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the forecast AUC interval")
    ap.add_argument("--checkpoint-dir", help="where a killed run leaves what a rerun of the same command resumes "
                    "from: the methods finished and the current one's state after its last edit (default: "
                    "<out>.ckpt beside --out; removed when every method is done)")
    ap.add_argument("--no-checkpoint", action="store_true", help="keep no checkpoint (a kill loses the edits since "
                    "the last recorded row)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch {torch.__version__} sees no CUDA device on this machine")
    torch.set_num_threads(args.threads)
    steps = sorted({int(s) for s in args.steps.split(",") if s.strip()})
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in editing.METHODS:
            sys.exit(f"--methods: unknown method {m!r}; choose from {', '.join(editing.METHODS)}")
    import yaml

    settings = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["editing"]
    t0 = time.perf_counter()
    if args.tiny:
        sys.path.insert(0, str(REPO / "tests"))
        import tiny

        base, tok = tiny.model(args.tiny)
        base.to(args.device)
        model_key = f"tiny-{args.tiny}"
    else:
        base, tok, model_key = model_for(args.manifest, args.device)
    n_layers, (_, d_ff) = models.n_layers(base), models.dims(base)
    hps = {m: editing.resolve_hparams(settings, m, n_layers, [model_key], d_ff) for m in methods}
    overrides = hp_overrides(args.set, methods)
    for m, kv in overrides.items():
        hps[m].update(kv)
    layers = sorted({x for hp in hps.values() for x in ([hp["layer"]] if "layer" in hp else hp["layers"])})

    texts, corpus_id = corpus_texts(args.corpus_file, args.n_texts)
    sums, count = covariance.collect(base, tok, texts, max_length=args.max_length, token_budget=4096,
                                     device=args.device)
    covs_all = covariance.finalize(sums, count)
    covs = {layer: covs_all[layer] for layer in layers}
    log.info("C of layers %s from %d tokens (%.0f s)", layers, count, time.perf_counter() - t0)

    n_prot = int(hps["kis"]["n_protected"]) if "kis" in hps else 0
    edits, test, protected, n_known = stream_and_heldout(base, tok, Path(args.facts), args.max_facts, args.edits,
                                                         args.n_test, args.seed, 32, args.device, n_prot,
                                                         require_known=not (args.tiny or args.all_facts))
    log.info("%d eligible facts: %d edits, %d held out, %d protected (kis)", n_known, len(edits), len(test),
             len(protected))
    ckdir = None if args.no_checkpoint else Path(args.checkpoint_dir or Path(args.out).with_suffix(".ckpt"))
    if ckdir is not None:
        run_sig = {"model": model_key, "device": args.device, "corpus": corpus_id, "tokens": int(count),
                   "edits": [str(f["case_id"]) for f in edits], "test": [str(f["case_id"]) for f in test],
                   "protected": [str(f["case_id"]) for f in protected], "steps": steps,
                   "fluency": [args.fluency_prompts, args.fluency_max_len],
                   "hparams": {m: json.dumps(hps[m], sort_keys=True, default=str) for m in methods}}
        resume_check(ckdir / "run.json", run_sig)

    def write_tables(frames, done: bool):
        allrows = pd.concat(frames, ignore_index=True)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        lists = [c for c in allrows.columns if c.endswith(("_keys", "_facts")) or c == "edit_layers"]
        with kio.atomic_path(out.with_suffix(".csv")) as tmp:  # rewritten mid-run: a kill never leaves half a file
            allrows.drop(columns=lists).to_csv(tmp, index=False)
        fsum = forecast_table(frames, [f["case_id"] for f in test], args.n_boot)
        layer_note = "; ".join(f"{m}: layers {hp.get('layer', hp.get('layers'))}" for m, hp in hps.items())
        if overrides:
            layer_note += "; set " + ", ".join(f"{m}.{k}={v}" for m, kv in overrides.items() for k, v in kv.items())
        name = f"tiny random {args.tiny}" if args.tiny else model_key if args.manifest else "SmolLM2-135M-Instruct"
        known = "" if args.tiny or args.all_facts else "known "
        partial = "" if done else (f" (partial: {len(frames)} of {len(methods)} methods begun, "
                                   f"{frames[-1].method.iloc[0]} up to step {int(frames[-1].step.max())})")
        head = (f"{name} ({args.device}, {next(base.parameters()).dtype}), {len(edits)} sequential edits of "
                f"{known}facts from {Path(args.facts).name}, {len(test)} held-out {known}facts (seed {args.seed}); "
                f"C from {count} tokens of {corpus_id}; {layer_note}; edited layers in fp32. Wall time "
                f"{time.perf_counter() - t0:.0f} s{partial}.\n\n")
        text = head + markdown(table(allrows, steps))
        text += ("\nForecast of forgetting at the last recorded step (AUC for 'held-out fact forgotten', 95 % "
                 "bootstrap interval over facts, of the pre-edit risk, the unedited confidence, the key norm, a random "
                 "score, and the measured displacement after the edits) and seconds per edit (relative to ROME):\n\n"
                 + markdown(fsum))
        with kio.atomic_path(out) as tmp:
            tmp.write_text(text)
        if done:
            print(text)
        print(f"wrote {out} and {out.with_suffix('.csv')}")
        return allrows

    frames = []
    for method in methods:
        finished = ckdir / f"{method}.parquet" if ckdir is not None else None
        if finished is not None and finished.exists():
            frames.append(pd.read_parquet(finished))
            log.info("%s: finished before, rows from %s", method, finished)
            write_tables(frames, done=len(frames) == len(methods))
            continue
        hp = hps[method]
        model = copy.deepcopy(base)
        ed = editing.make_editor(method, model, tok, covs, hp, settings["context_templates"], settings["kl_prompt"],
                                 float(settings.get("cov_ridge", 0.0)),
                                 protected=protected if method == "kis" else None)
        t1 = time.perf_counter()
        fr = trajectory.run(model, tok, ed, edits, test, eval_every=max(1, args.edits), model_name=model_key,
                            max_neighborhood=settings.get("max_neighborhood", 10),
                            fluency_prompts=args.fluency_prompts,
                            fluency_max_len=args.fluency_max_len, record_steps=set(steps),
                            log_every=args.log_every,  # one line per edit is too much here
                            # every recorded row rewrites the tables: a kill keeps the steps done
                            progress=lambda rows: write_tables(frames + [rows], done=False),
                            checkpoint=ckdir / f"{method}.pt" if ckdir is not None else None,
                            checkpoint_every=1 if ckdir is not None else None)  # a state after every edit
        log.info("%s (layers %s) done in %.0f s: %s", method, ed.layers, time.perf_counter() - t1,
                 fr.status.iloc[-1])
        frames.append(fr)
        del model, ed
        if finished is not None:
            kio.write_parquet(fr, finished)
        allrows = write_tables(frames, done=len(frames) == len(methods))  # after every method: a kill keeps those done
    if ckdir is not None:
        shutil.rmtree(ckdir)
        log.info("every method done: checkpoint folder %s removed", ckdir)
    return allrows


def resume_check(path: Path, sig: dict) -> None:
    """Write this run's signature to `path`, or, when a killed run left one there, check that this is the same run
    (a resume) and say so; a different run is an error naming the field that differs."""
    if path.exists():
        diff = kio.first_difference(json.loads(path.read_text()), json.loads(json.dumps(sig)))  # tuples as lists
        if diff:
            sys.exit(f"{path}: a killed run with another {diff} left its checkpoint here; delete {path.parent} or "
                     "pass another --checkpoint-dir")
        log.info("resuming the killed run checkpointed in %s", path.parent)
        return
    with kio.atomic_path(path) as tmp:
        tmp.write_text(json.dumps(sig))


if __name__ == "__main__":
    main()
