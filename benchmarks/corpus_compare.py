"""P kurtosis per layer with C from another corpus, for the items and keys of a finished run (issue 11).

    python benchmarks/corpus_compare.py --run /tmp/qs --corpus-path ../shared/data/wikipedia/enwiki_2015_sample.jsonl.gz \
        --n-texts 64 --max-length 512 --out /tmp/corpus_compare

For every model of the run: the `corpus`, `covariance` and `superposition` stages (kis.corpus / kis.covariance /
kis.superposition, the workflow's own run_rule functions) with C from the given local corpus, on the run's keys
(same items, same positions), then excess kurtosis of the off-diagonal P entries per layer (kis.superposition.
statistics). Prints one row per (model, corpus) with both C's token counts, and the ratio to the run's own C.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import pandas as pd
import torch

from kis import corpus, covariance, schema, superposition


def p_kurtosis(table: str | Path) -> pd.Series:
    """Layer → kurtosis of the off-diagonal P entries over all N items."""
    mats, items, _ = superposition.read(table, kinds=["P"])
    n_layers = 1 + max(layer for _, layer in mats)
    stats = superposition.statistics(mats, n_layers)
    full = stats[(stats.kind == "P") & (stats.n == len(items))]
    return full.set_index("layer")["kurtosis"]  # not .kurtosis: that is the DataFrame method


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="the workflow directory of a finished run (has results/)")
    ap.add_argument("--corpus-path", required=True, help="local JSONL(.gz) / JSON / Parquet corpus (id, text)")
    ap.add_argument("--n-texts", type=int, required=True)
    ap.add_argument("--max-length", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="a directory for the corpus sample, the caches and the table")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--covariance-only", action="store_true",
                    help="stop after the caches (needs only the run's prepared models; a later call reuses them)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    run, out = Path(args.run) / "results", Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    texts = out / "texts.parquet"
    if not texts.exists():
        corpus.run_rule(corpus=schema.filled("corpus", {"source": "local", "path": args.corpus_path,
                                                        "n_texts": args.n_texts,
                                "max_length": args.max_length, "min_chars": 200, "seed": args.seed,
                                "id_field": "id", "text_field": "text"}), texts=texts)
    rows = []
    for manifest in sorted((run / "models").glob("*/manifest.json")):
        model = manifest.parent.name
        cov = out / f"{model}.safetensors"
        t0 = time.perf_counter()
        if not cov.exists():  # a cache of an earlier call (same texts) is reused
            covariance.run_rule(manifest=manifest, texts=texts, cov=cov, max_length=args.max_length,
                                store_dtype="float64", checkpoint=out / f"{model}.checkpoint", checkpoint_every=0,
                                checkpoint_minutes=30, device_memory_mib=0, token_budget=4096,
                                batch_tokens=4096 if args.max_length is None else None)  # as rules/covariance.smk
        secs = time.perf_counter() - t0
        if args.covariance_only:
            continue
        table = out / f"{model}.superposition.parquet"
        superposition.run_rule(model=model, key_table=run / "keys" / f"{model}.parquet", cov=cov, table=table,
                               ridge=0.0, condition_warn=1e8)
        ours, theirs = p_kurtosis(table), p_kurtosis(run / "superposition" / f"{model}.parquet")
        meta_run = covariance.load(run / "covariance" / f"{model}.safetensors", layers=[])[1]
        meta_new = covariance.load(cov, layers=[])[1]
        for name, k, meta in (("run", theirs, meta_run), ("other", ours, meta_new)):
            rows.append({"model": model, "C": name, "corpus_id": meta.get("corpus_id"),
                         "n_tokens": int(meta.get("n_tokens", 0)), "seconds": secs if name == "other" else None,
                         **{f"L{layer}": float(v) for layer, v in k.items()}})
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "kurtosis.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 60):
        print(frame.round(1).to_string(index=False))
    print(json.dumps({"csv": str(out / "kurtosis.csv")}))


if __name__ == "__main__":
    main()
