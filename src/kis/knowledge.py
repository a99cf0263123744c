"""Known facts: CounterFact loading + validation, the per-model "known" filter, the analysis-set selection.

A fact (s, r, o) is a prompt template with one `{}` (filled with the subject s) and a true target o.
A model KNOWS it iff, teacher-forced on prompt.format(s) + " " + o, the argmax at every target position is
the target token (exact match):  known = ∀t: argmax_v p(v | x, o_<t) = o_t.  We also record
P(o | x) = Π_t p(o_t | x, o_<t) and the greedy continuation of as many tokens as o has.

Tokenization: the prompt is encoded WITH the tokenizer's special tokens (a BOS where the tokenizer adds one); the
target ids are the suffix of tokenize(prompt + " " + o) after the prompt's ids (kis.probe.target_ids: " " + o
tokenised alone gets a spurious "▁" from a SentencePiece dummy prefix). Where the joint tokenisation merges across
the boundary, target_ids falls back to " " + o alone (logged) and the count of such facts is logged.

The analysis set is the first N facts (file order, as in the paper) or a seeded random sample of the facts
that EVERY configured model knows.
"""
from __future__ import annotations

import json
import logging
import random
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import models, probe
from .io import jsonl_records, utf8_problem

log = logging.getLogger(__name__)

FACT_COLUMNS = ["case_id", "prompt", "subject", "target_true", "target_new", "relation_id", "paraphrase_prompts",
                "neighborhood_prompts", "generation_prompts"]
KNOWN_COLUMNS = ["case_id", "known", "p_target_true", "n_target_tokens", "greedy"]
ITEM_COLUMNS = ["item", "case_id", "prompt", "subject", "target_true", "target_new", "relation_id", "text",
                "paraphrase_prompts", "neighborhood_prompts"]


class FactsError(ValueError):
    """A bad fact file or record; the message names the file, the case id and the field."""


class SelectionError(ValueError):
    """Too few facts for the analysis set, or known tables that do not match the facts."""


# ---------------------------------------------------------------- reading

def read_records(path: str | Path) -> list:
    """Raw records from a local JSON list, JSONL or Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise FactsError(f"facts file {path} does not exist")
    name = path.name.lower()
    if name.endswith(".parquet"):
        return pd.read_parquet(path).to_dict("records")
    try:
        with open(path, encoding="utf-8") as fh:
            if name.endswith(".jsonl"):
                return jsonl_records(fh, path, FactsError)
            try:
                data = json.load(fh)
            except json.JSONDecodeError as e:
                raise FactsError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); "
                                 "expected a JSON list of CounterFact records (or use a .jsonl file)") from None
    except UnicodeDecodeError:
        raise FactsError(f"{path}: not UTF-8 text at {utf8_problem(path)}") from None
    if not isinstance(data, list):
        raise FactsError(f"{path}: expected a JSON list of CounterFact records, got {type(data).__name__}")
    return data


def fetch_url(url: str, cache: str | Path) -> Path:
    """Download `url` once to `cache` (atomically: a killed download leaves no file); reuse it afterwards."""
    from .io import atomic_path

    cache = Path(cache)
    if cache.is_file():
        log.info("facts: using the cached download %s of %s", cache, url)
        return cache
    log.info("facts: downloading %s to %s", url, cache)
    with atomic_path(cache) as tmp, urllib.request.urlopen(url, timeout=120) as resp, open(tmp, "wb") as out:
        while chunk := resp.read(1 << 20):
            out.write(chunk)
    return cache


def hf_records(dataset: str, split: str = "train", name: str | None = None, revision: str | None = None,
               data_files=None, cache_dir: str | None = None) -> list[dict]:
    """Records of a Hugging Face dataset (e.g. azhx/counterfact, or "json" with data_files for a local file)."""
    from datasets import load_dataset

    ds = load_dataset(dataset, name, split=split, revision=revision, data_files=data_files, cache_dir=cache_dir)
    return [dict(r) for r in ds]


# ---------------------------------------------------------------- validation

def _plain(x):
    """numpy arrays (Parquet list columns) → lists, numpy scalars → Python scalars."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


class _Bad(Exception):
    def __init__(self, field: str, why: str):
        super().__init__(field, why)
        self.field, self.why = field, why


def _text(value, field: str) -> str:
    if not isinstance(value, str):
        raise _Bad(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise _Bad(field, "is empty")
    return value


def _target(rewrite: dict, key: str) -> str:
    t = rewrite.get(key)
    if not isinstance(t, dict) or "str" not in t:
        raise _Bad(f"requested_rewrite.{key}.str", "is missing (expected {'str': ..., 'id': ...})")
    return _text(t["str"], f"requested_rewrite.{key}.str")


def _prompt_list(rec: dict, key: str) -> list[str]:
    value = _plain(rec.get(key))
    if not isinstance(value, list):
        raise _Bad(key, f"must be a list of strings, got {type(value).__name__}")
    for i, p in enumerate(value):
        if not isinstance(p, str):
            raise _Bad(f"{key}[{i}]", f"must be a string, got {type(p).__name__}")
    return value


def check_record(rec) -> dict:
    """One CounterFact record → one flat row of facts.parquet; raises _Bad(field, why) on the first problem."""
    if not isinstance(rec, dict):
        raise _Bad("<record>", f"must be an object, got {type(rec).__name__}")
    cid = _plain(rec.get("case_id"))
    if isinstance(cid, bool) or not isinstance(cid, int):
        raise _Bad("case_id", f"must be an integer, got {cid!r}")
    rw = rec.get("requested_rewrite")
    if not isinstance(rw, dict):
        raise _Bad("requested_rewrite", f"must be an object, got {type(rw).__name__}")
    prompt = _text(rw.get("prompt"), "requested_rewrite.prompt")
    probe.check_template(prompt, "", lambda why: _Bad("requested_rewrite.prompt", why))
    try:
        prompt.format("x")
    except (IndexError, KeyError, ValueError) as e:
        raise _Bad("requested_rewrite.prompt", f"is not a format template with one '{{}}' ({e}): {prompt!r}") from None
    subject = _text(rw.get("subject"), "requested_rewrite.subject")
    if subject not in prompt.format(subject):  # e.g. '{{}}': a literal '{}', the subject never appears
        raise _Bad("requested_rewrite.prompt", f"must contain the subject once formatted; {prompt!r} formats to "
                                               f"{prompt.format(subject)!r} (a '{{{{}}}}' is a literal brace pair)")
    return {"case_id": cid, "prompt": prompt, "subject": subject,
            "target_true": _target(rw, "target_true"), "target_new": _target(rw, "target_new"),
            "relation_id": _text(rw.get("relation_id"), "requested_rewrite.relation_id"),
            "paraphrase_prompts": _prompt_list(rec, "paraphrase_prompts"),
            "neighborhood_prompts": _prompt_list(rec, "neighborhood_prompts"),
            # optional (fluency): [] when the record has none, and fluency then uses the rewrite prompt
            "generation_prompts": _prompt_list(rec, "generation_prompts") if rec.get("generation_prompts") is not None
            else []}


def validate(records: list, where: str, on_bad_record: str = "error") -> tuple[pd.DataFrame, int]:
    """Check every record → (facts frame in file order, number skipped). on_bad_record: error | skip."""
    if on_bad_record not in ("error", "skip"):
        raise ValueError(f"on_bad_record must be 'error' or 'skip', got {on_bad_record!r}")
    rows, seen, skipped = [], {}, 0
    for i, rec in enumerate(records):
        cid = _plain(rec.get("case_id")) if isinstance(rec, dict) else None
        try:
            row = check_record(rec)
            if row["case_id"] in seen:
                raise _Bad("case_id", f"duplicate: {row['case_id']} is also record {seen[row['case_id']]}")
        except _Bad as bad:
            msg = f"{where}: record {i} (case_id {cid!r}): field {bad.field!r} {bad.why}"
            if on_bad_record == "error":
                raise FactsError(msg + " (set facts.on_bad_record: skip to drop bad records)") from None
            log.warning("skipping bad record: %s", msg)
            skipped += 1
            continue
        seen[row["case_id"]] = i
        rows.append(row)
    if not rows:
        raise FactsError(f"{where}: no valid fact among {len(records)} records")
    frame = pd.DataFrame(rows, columns=FACT_COLUMNS)
    frame["case_id"] = frame.case_id.astype("int64")
    return frame, skipped


def load_facts(source: str | dict, on_bad_record: str | None = None, cache_dir: str | Path = "resources/cache"
               ) -> tuple[pd.DataFrame, dict]:
    """Validated CounterFact facts → (frame with FACT_COLUMNS, metadata {source, n_records, n_skipped}).

    `source` is the `facts:` config section ({source: local|url|hf, path, url, cache, hf: {...}, on_bad_record})
    or a string: a local path, an http(s):// or file:// URL, or "hf:<dataset id>".
    """
    cfg = dict(source) if isinstance(source, dict) else _parse_source(source)
    if on_bad_record is None:
        on_bad_record = cfg.get("on_bad_record", "error")
    kind = cfg.get("source", "local")
    if kind == "local":
        where = str(cfg.get("path", "resources/facts.json"))
        records = read_records(where)
    elif kind == "url":
        if not cfg.get("url"):  # the canonical URL is the schema's default (config/schema.yaml facts.url)
            raise FactsError("facts.source is url but facts.url is not set")
        url = cfg["url"]
        cache = cfg.get("cache") or Path(cache_dir) / Path(url.rstrip("/")).name
        path = fetch_url(url, cache)
        where = f"{url} (cached as {path})"
        records = read_records(path)
    elif kind == "hf":
        hf = cfg.get("hf") or {}
        if not hf.get("dataset"):
            raise FactsError("facts.source is hf but facts.hf.dataset is not set (e.g. azhx/counterfact)")
        where = f"hf:{hf['dataset']}/{hf.get('name')}/{hf.get('split', 'train')}"
        records = hf_records(hf["dataset"], hf.get("split", "train"), hf.get("name"), hf.get("revision"),
                             hf.get("data_files"), hf.get("cache_dir"))
    else:
        raise FactsError(f"unknown facts.source {kind!r}; use local, url or hf")
    frame, skipped = validate(records, where, on_bad_record)
    if skipped:
        log.warning("facts from %s: %d of %d records skipped as bad (see the warnings above)", where, skipped,
                    len(records))
    limit = cfg.get("max_records")
    if limit is not None and len(frame) > limit:
        log.info("facts from %s: keeping the first %d of %d valid records (facts.max_records)", where, limit,
                 len(frame))
        frame = frame.iloc[:limit].reset_index(drop=True)
    return frame, {"source": where, "n_records": len(records), "n_skipped": skipped, "max_records": limit}


def _parse_source(s: str) -> dict:
    if s.startswith("hf:"):
        return {"source": "hf", "hf": {"dataset": s[3:]}}
    if s.startswith(("http://", "https://", "file://")):
        return {"source": "url", "url": s}
    return {"source": "local", "path": s}


# ---------------------------------------------------------------- the known filter

@torch.no_grad()
def score_batch(model, pad_id: int, prompts: list[list[int]], targets: list[list[int]], device="cpu"
                ) -> list[dict]:
    """Teacher-forced exact match, log P(target) and greedy continuation ids for a batch of facts."""
    scored = probe.teacher_forced(model, pad_id, prompts, targets, batch_size=max(len(prompts), 1),
                                  order=np.arange(len(prompts)), device=device)
    out, greedy = [], []
    for (lp, arg), t in zip(scored, targets):
        hit = (arg == torch.tensor(t, device=arg.device)).cpu().numpy()
        # greedy agrees with teacher forcing up to and including the first miss
        first_miss = int(np.argmin(hit)) if not hit.all() else len(t) - 1
        greedy.append(arg[:first_miss + 1].tolist())
        out.append({"known": bool(hit.all()), "logp": float(lp.sum()), "n_target_tokens": len(t)})
    # finish the greedy continuations that diverged from the target: one forward per further token
    while True:
        todo = [b for b in range(len(prompts)) if len(greedy[b]) < len(targets[b])]
        if not todo:
            break
        rows = [prompts[b] + greedy[b] for b in todo]
        logits = probe.logits(model, rows, pad_id, device, positions=[[len(r) - 1] for r in rows])
        for r, b in enumerate(todo):
            greedy[b].append(int(logits[r, 0].argmax()))
    for o, g in zip(out, greedy):
        o["greedy_ids"] = g
    return out


EVALUATION_PROMPTS = ("paraphrase_prompts", "neighborhood_prompts", "generation_prompts")


def check_evaluation_prompts(tokenizer, fact: dict, context: int) -> None:
    """FactsError, naming the case id, the field and the prompt's index, when an evaluation prompt does not fit the
    model's context: a paraphrase or neighbourhood prompt with the longer of its two targets (lifelong editing scores
    both, kis.trajectory.evaluate), a generation prompt with at least one generated token. Checked when the facts
    are first read with the model (the `known` rule), not after hours of editing (GPT-2 would fail with an
    IndexError, a rotary model would score beyond its context without a word)."""
    for field in EVALUATION_PROMPTS:
        prompts = fact.get(field)
        if prompts is None or (isinstance(prompts, float) and np.isnan(prompts)):
            continue
        prompts = [str(q) for q in prompts]
        if not prompts:
            continue
        lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=True)["input_ids"]]
        for i, (q, n) in enumerate(zip(prompts, lengths)):
            if field == "generation_prompts":
                need, what = n + 1, "one generated token"
            else:
                rough = max(len(tokenizer(" " + fact[t], add_special_tokens=False)["input_ids"])
                            for t in ("target_true", "target_new"))
                if n + rough + 2 <= context:  # far from the limit: no exact count needed
                    continue
                m, which = max((len(probe.target_ids(tokenizer, q, fact[t])), t) for t in ("target_true", "target_new"))
                need, what = n + m, f"{which} ({m} tokens)"
            if need > context:
                raise FactsError(f"fact case_id {fact['case_id']}: {field}[{i}] ({n} tokens: {q[:60]!r}...) + {what} "
                                 f"is longer than the model's context ({context} tokens); shorten or drop that "
                                 "prompt or record")


def known_table(model, tokenizer, facts: pd.DataFrame, batch_size: int = 32, device="cpu", progress=None
                ) -> pd.DataFrame:
    """The known filter over a facts frame → frame with KNOWN_COLUMNS (same order as facts)."""
    model.eval()
    pad_id = probe.pad_id(tokenizer)
    enc, joint_differs = [], 0
    try:
        context = models.context_length(model)
    except ValueError:
        context = None
    for row in facts.itertuples():
        text = row.prompt.format(row.subject)
        p, t = probe.prompt_ids(tokenizer, text), probe.target_ids(tokenizer, text, row.target_true)
        if context is not None and len(p) + len(t) > context:
            raise FactsError(f"fact case_id {row.case_id}: prompt ({len(p)} tokens, subject {len(row.subject)} "
                             f"characters) + target_true ({len(t)} tokens) is longer than the model's context "
                             f"({context} tokens); shorten or drop that record")
        if context is not None:
            check_evaluation_prompts(tokenizer, row._asdict(), context)
        joint_differs += tokenizer(text + " " + row.target_true, add_special_tokens=True)["input_ids"] != p + t
        enc.append((p, t))
    if joint_differs:
        log.info("%d of %d facts: the joint tokenisation merges across the prompt boundary (target tokenised alone, "
                 "see kis.probe.target_ids)", joint_differs, len(enc))
    rows = []
    for start in range(0, len(enc), batch_size):
        chunk = enc[start:start + batch_size]
        rows += score_batch(model, pad_id, [c[0] for c in chunk], [c[1] for c in chunk], device)
        if progress is not None:
            progress(len(rows), len(enc))
    return pd.DataFrame({
        "case_id": facts.case_id.to_numpy(dtype="int64"),
        "known": [r["known"] for r in rows],
        "p_target_true": [float(np.exp(r["logp"])) for r in rows],
        "n_target_tokens": [r["n_target_tokens"] for r in rows],
        "greedy": [tokenizer.decode(r["greedy_ids"]) for r in rows],
    }, columns=KNOWN_COLUMNS)


def run_known(*, manifest, facts, known, model: str, batch_size: int, device="cpu", logger=None
               ) -> tuple[pd.DataFrame, dict]:
    """Rule `known`: a prepared model + facts.parquet → the known table at `known`; returns (table, metadata)."""
    from .io import write_parquet

    logger = logger or log
    model_name = model
    net, tok, man = models.load_prepared(manifest, device=device)
    frame = pd.read_parquet(facts)
    step = max(1, len(frame) // 10)

    def progress(done, total):
        if done % step < batch_size or done == total:
            logger.info("known filter: %d / %d facts", done, total)

    table = known_table(net, tok, frame, batch_size=batch_size, device=device, progress=progress)
    meta = {"model": model_name, "n_known": int(table.known.sum()), "n_total": len(table),
            "source": man["source"], "revision": man.get("revision"), "dtype": man["dtype"]}
    logger.info("%s knows %d of %d facts (%.1f%%)", model_name, meta["n_known"], meta["n_total"],
                100 * meta["n_known"] / max(meta["n_total"], 1))
    write_parquet(table, known, metadata=meta)
    return table, meta


# ---------------------------------------------------------------- the analysis set

def known_by_all(facts: pd.DataFrame, known: dict[str, pd.DataFrame]) -> pd.Series:
    """Boolean mask over facts: known by every model. Each table must cover exactly the facts' case ids."""
    mask = pd.Series(True, index=facts.index)
    ids = set(facts.case_id.tolist())
    for name, table in known.items():
        if set(table.case_id.tolist()) != ids or len(table) != len(facts):
            missing, extra = ids - set(table.case_id), set(table.case_id) - ids
            raise SelectionError(f"known table of model {name!r} does not match the facts ({len(table)} rows vs "
                                 f"{len(facts)} facts; {len(missing)} case ids missing, {len(extra)} extra): "
                                 "rerun rule known")
        k = dict(zip(table.case_id.tolist(), table.known.astype(bool).tolist()))
        mask &= facts.case_id.map(k).astype(bool)
    return mask


def select_items(facts: pd.DataFrame, known: dict[str, pd.DataFrame], n_items: int = 128,
                 selection: str = "first", seed: int = 0, require_known: bool = True
                 ) -> tuple[pd.DataFrame, dict]:
    """The analysis set: N facts known by all models, first in file order or a seeded random sample."""
    if selection not in ("first", "random"):
        raise SelectionError(f"analysis.selection must be 'first' or 'random', got {selection!r}")
    mask = known_by_all(facts, known)
    n_all = int(mask.sum())
    counts = ", ".join(f"{m}: {int(t.known.sum())}" for m, t in known.items())
    log.info("facts known by every model (%s): %d of %d (per model %s)", ", ".join(known), n_all, len(facts),
             counts or "none")
    if require_known:
        pool = facts[mask.to_numpy()]
        if len(pool) < n_items:
            raise SelectionError(f"only {len(pool)} of {len(facts)} facts are known by all {len(known)} models "
                                 f"(per model: {counts}); analysis.n_items is {n_items}. Use more facts, fewer "
                                 "items, or analysis.require_known: false (selects unknown facts too)")
    else:
        log.warning("analysis.require_known is false: selecting from all %d valid facts, known or not "
                    "(%d are known by every model)", len(facts), n_all)
        pool = facts
        if len(pool) < n_items:
            raise SelectionError(f"only {len(pool)} valid facts; analysis.n_items is {n_items}")
    if selection == "first":
        chosen = pool.iloc[:n_items]
    else:
        idx = sorted(random.Random(seed).sample(range(len(pool)), n_items))  # kept in file order
        chosen = pool.iloc[idx]
    items = chosen.reset_index(drop=True).copy()
    items.insert(0, "item", np.arange(len(items), dtype="int64"))
    items["text"] = [p.format(s) for p, s in zip(items.prompt, items.subject)]
    meta = {"n_items": int(n_items), "selection": selection, "seed": int(seed), "models": list(known),
            "require_known": bool(require_known), "n_known_by_all": n_all, "n_facts": len(facts)}
    return items[ITEM_COLUMNS], meta


# ---------------------------------------------------------------- the workflow's rules facts and select_items

def run_facts(*, source, facts, logger=None) -> None:
    """Rule `facts`: the `facts:` settings of the chosen source → validated facts.parquet (`facts`)."""
    from .io import write_parquet

    logger = logger or log
    frame, meta = load_facts(source)
    write_parquet(frame, facts, metadata=meta)
    logger.info("facts from %s: %d valid of %d records (%d skipped)", meta["source"], len(frame), meta["n_records"],
                meta["n_skipped"])


def run_select_items(*, facts, known, table, models, analysis, logger=None) -> None:
    """Rule `select_items`: facts + every model's known table (`known`, in the order of `models`) → the analysis set."""
    from .io import write_parquet

    logger = logger or log
    frames = {m: pd.read_parquet(p) for m, p in zip(models, known)}
    items, meta = select_items(pd.read_parquet(facts), frames, n_items=analysis["n_items"],
                               selection=analysis["selection"], seed=analysis["seed"],
                               require_known=analysis["require_known"])
    write_parquet(items, table, metadata=meta)
    logger.info("analysis set: %d items (%s, seed %d) from %d facts, %d known by all of %s", len(items),
                meta["selection"], meta["seed"], meta["n_facts"], meta["n_known_by_all"], ", ".join(meta["models"]))
