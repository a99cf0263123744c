"""The editing study's summary, from the trajectory tables only (no model is loaded): one row per model × method ×
recorded step with the CounterFact metrics, held-out knowledge, fluency, ‖ΔW‖_F and the seconds per edit.

seconds_per_edit at a row = its `seconds` (wall seconds of the edits since the previous row) / (step − previous step);
NaN at step 0. A diverged trajectory's last row has status "diverged" and its reason.
"""
from __future__ import annotations

import logging
import math

import pandas as pd

from . import editing_figures, forecast, io
from .figures import FigureError

log = logging.getLogger(__name__)

# summary column: (trajectory column it copies, header of the Markdown table); seconds_per_edit is computed
COLUMNS = {"efficacy": ("efficacy", "efficacy"), "paraphrase": ("paraphrase", "paraphrase"),
           "neighborhood": ("neighborhood", "neighborhood"), "heldout_acc": ("heldout_acc", "held-out acc"),
           "heldout_p_true": ("heldout_p_true", "held-out P(true)"), "fluency": ("fluency", "fluency"),
           "delta_w_fro": ("delta_w_fro", "‖ΔW‖_F"), "seconds_per_edit": (None, "s / edit"),
           "status": ("status", "status")}
KEY = ("model", "method", "step")
NEEDED = (*KEY, "seconds", "reason", *(src for src, _ in COLUMNS.values() if src))


def summary(tables, labels: dict | None = None) -> pd.DataFrame:
    """The summary of the trajectory tables at `tables` (paths): columns model, label, method, step, then COLUMNS;
    rows sorted by model, method (the order of `tables` within a model), step. An error names a table that lacks a
    column, has no rows, repeats a step or holds another (model, method) than a table before it."""
    labels = labels or {}
    out, seen = [], set()
    for path in tables:
        t = editing_figures.read_one(path, NEEDED)  # the columns, rows and corpus id the figures check
        for col in ("model", "method"):
            if t[col].nunique() != 1:
                raise FigureError(f"{path}: column {col!r} holds {sorted(t[col].unique())}, not one value")
        model, method = str(t.model.iloc[0]), str(t.method.iloc[0])
        if (model, method) in seen:
            raise FigureError(f"{path}: a second table of model {model!r}, method {method!r}")
        seen.add((model, method))
        if t.step.duplicated().any():
            raise FigureError(f"{path}: step {int(t.step[t.step.duplicated()].iloc[0])} recorded twice")
        t = t.sort_values("step")
        steps = t.step.astype(int).tolist()
        per_edit = [float("nan")] + [float(s) / (b - a) if b > a else float("nan")
                                     for s, a, b in zip(t.seconds.iloc[1:], steps, steps[1:])]
        rows = pd.DataFrame({"model": model, "label": str(labels.get(model, model)), "method": method,
                             "step": steps})
        for name, (src, _) in COLUMNS.items():
            rows[name] = per_edit if src is None else t[src].to_numpy()
        rows["reason"] = t.reason.astype(str).to_numpy()
        out.append(rows)
    if not out:
        raise FigureError("no trajectory tables given")
    frame = pd.concat(out, ignore_index=True)
    order = {m: i for i, m in enumerate(dict.fromkeys(frame.method))}
    return (frame.assign(_m=frame.method.map(order)).sort_values(["model", "_m", "step"], kind="stable")
            .drop(columns="_m").reset_index(drop=True))


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def markdown(frame: pd.DataFrame) -> str:
    """The summary as a Markdown table (three significant digits; a diverged row's reason after its status)."""
    head = ["model", "method", "step", *(h for _, h in COLUMNS.values())]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in frame.itertuples(index=False):
        status = r.status if r.status == "ok" or not r.reason else f"{r.status}: {r.reason}"
        cells = [r.label, r.method, str(int(r.step)), *(_cell(getattr(r, c)) for c in COLUMNS if c != "status"),
                 status]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def run_summary(tables, csv, md, labels=None) -> None:
    """Rule study_summary: the trajectory tables → summary CSV (every value) and Markdown table."""
    frame = summary(tables, labels)
    with io.atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    with io.atomic_path(md) as tmp:
        tmp.write_text(markdown(frame))
    log.info("study summary: %d rows (%d models × %d methods), %d not ok", len(frame), frame.model.nunique(),
             frame.method.nunique(), int((frame.status != "ok").sum()))


# ── committed study tables (docs/study*/): a study longer than one machine's life is collected job by job ──────────
# layout of such a folder: trajectories/{model}/{method}.parquet and .forecast.parquet (copies of the workflow's
# tables), runs.csv (one row per copied job: commit, command, wall seconds of its benchmark file — the job's last
# attempt — and the edit after which that attempt resumed from a checkpoint, read from its log), and what `render`
# writes from them: summary.{csv,md}, summary_last.md (each job's last row: the README's table), last_step.md
# (forecast AUC and paper-P error at each job's last step: the README's), forecast_auc.{csv,md},
# interference_paper_p.{csv,md}, forgetting_paired.{csv,md}, figures/*.png.
RUN_COLUMNS = ["model", "method", "n_edits", "commit", "command", "wall_s", "cpu_s", "finished", "machine",
               "resumed_after"]
SCORE_HEADS = {"risk": "pre-edit risk", "confidence": "confidence", "key_norm": "key norm", "random": "random",
               "measured_displacement": "measured displacement (post-edit)"}


def resumed_after(logfile, bench) -> str:
    """The edit after which a finished job's last attempt resumed from its checkpoint: "0" when its log shows a
    fresh start, "" when unknown (no log, or a log newer than the benchmark file: a later, unfinished attempt's)."""
    from pathlib import Path
    logfile, bench = Path(logfile), Path(bench)
    if not logfile.exists() or logfile.stat().st_mtime > bench.stat().st_mtime:
        return ""
    found = io.RESUMED_EDIT.findall(logfile.read_text(errors="replace"))
    return found[-1] if found else "0"


def _rank(method: str) -> int:
    """A method's place in kis.editing's order (the summary's and the figures'); unknown methods last."""
    order = list(editing_figures.STYLES)
    return order.index(method) if method in order else len(order)


def _interval(a, lo, hi, forgotten: int, known: int) -> str:
    """An AUC cell: the AUC [95 % bootstrap]; where none is defined (one class empty) the reason, else ""."""
    if math.isfinite(a):
        return f"{a:.2f} [{lo:.2f}, {hi:.2f}]"
    return ("n/a: none known" if known == 0 else "n/a: all lost" if forgotten == known else
            "n/a: none lost" if forgotten == 0 else "")


def _forecast_rows(tab: pd.DataFrame, labels: dict, scores):
    """Per (model, method, step) of a kis.forecast.step_table, in the summary's order: the key and the Markdown cells
    model, method, step, forgotten / known, then the AUC [95 % bootstrap] of each of `scores` ("" where absent)."""
    tab = tab.assign(_m=tab.method.map(_rank)).sort_values(["model", "_m", "step"], kind="stable")
    for (model, method, step), g in tab.groupby(["model", "method", "step"], sort=False):
        by = g.set_index("score")
        lost, known = int(g.n_forgotten.iloc[0]), int(g.n_known.iloc[0])
        yield (model, method, step), [
            str(labels.get(model, model)), method, str(int(step)), f"{lost} / {known}",
            *(_interval(*by.loc[s, ["auc", "auc_lo", "auc_hi"]], lost, known) if s in by.index else ""
              for s in scores)]


def forecast_markdown(tab: pd.DataFrame, labels: dict | None = None) -> str:
    """kis.forecast.step_table as Markdown: per (model, method, step) the AUC [95 % bootstrap] of each score."""
    head = ["model", "method", "step", "forgotten / known", *SCORE_HEADS.values()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for _, cells in _forecast_rows(tab, labels or {}, SCORE_HEADS)]
    return "\n".join(lines) + "\n"


def last_step_markdown(steps: pd.DataFrame, inter: pd.DataFrame, labels: dict | None = None) -> str:
    """The README's short table: per (model, method) at its last recorded step, the held-out facts forgotten, the AUC
    [95 % bootstrap] of the pre-edit risk and of the three baselines that need no superposition, and the median
    error of the paper's P against the measured displacement (kis.forecast.step_table, interference_table)."""
    pre = [s for s in SCORE_HEADS if s != "measured_displacement"]
    head = ["model", "method", "step", "forgotten / known", *(f"AUC {SCORE_HEADS[s]}" for s in pre),
            "paper-P error (median)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    last = steps[steps.step == steps.groupby(["model", "method"]).step.transform("max")]
    err = inter.set_index(["model", "method", "step"]).rel_error_median
    for key, cells in _forecast_rows(last, labels or {}, pre):
        lines.append("| " + " | ".join([*cells, _cell(float(err.get(key, float("nan"))))]) + " |")
    return "\n".join(lines) + "\n"


def interference_markdown(tab: pd.DataFrame, labels: dict | None = None) -> str:
    """kis.editing_figures.interference_table as Markdown (the paper's P against the measured displacement)."""
    labels = labels or {}
    head = ["model", "method", "step", "median ‖pred − meas‖ / ‖meas‖", "max", "held-out keys"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in tab.itertuples(index=False):
        lines.append("| " + " | ".join([str(labels.get(r.model, r.model)), r.method, str(int(r.step)),
                                         _cell(float(r.rel_error_median)), _cell(float(r.rel_error_max)),
                                         str(int(r.n_keys))]) + " |")
    return "\n".join(lines) + "\n"


def paired_markdown(tab: pd.DataFrame, labels: dict | None = None) -> str:
    """kis.forecast.paired_forgetting as Markdown: per model and pair of methods, the held-out facts each forgot and
    those only one of them forgot, with the exact McNemar p-value and its Holm adjustment over the model's pairs."""
    labels = labels or {}
    head = ["model", "step", "method a", "method b", "forgotten a / b (of known)", "only a", "only b",
            "McNemar p", "Holm p"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in tab.itertuples(index=False):
        lines.append("| " + " | ".join([str(labels.get(r.model, r.model)), str(int(r.step)), r.method_a, r.method_b,
                                         f"{int(r.forgotten_a)} / {int(r.forgotten_b)} ({int(r.n_known)})",
                                         str(int(r.only_a)), str(int(r.only_b)), _cell(float(r.p_mcnemar)),
                                         _cell(float(r.p_holm))]) + " |")
    return "\n".join(lines) + "\n"


def folder_tables(folder) -> tuple[list, list]:
    """(trajectory tables, forecast tables) under folder/trajectories, models sorted, methods in kis.editing's order;
    an error names a trajectory table without its forecast table."""
    from pathlib import Path
    traj = sorted((p for p in (Path(folder) / "trajectories").glob("*/*.parquet")
                   if not p.name.endswith(".forecast.parquet")), key=lambda p: (p.parent.name, _rank(p.stem)))
    fc = [p.with_name(p.name[:-len(".parquet")] + ".forecast.parquet") for p in traj]
    for t, f in zip(traj, fc):
        if not f.exists():
            raise FigureError(f"{t}: no forecast table {f.name} beside it")
    return traj, fc


def render(folder, *, labels: dict | None = None, n_boot: int, seed: int, dpi: int = 120) -> pd.DataFrame:
    """Everything the findings show of a collected study, from its tables only (see the layout above) → summary."""
    from pathlib import Path
    import matplotlib.pyplot as plt
    folder = Path(folder)
    traj, fc = folder_tables(folder)
    frame = summary(traj, labels)
    last = frame[frame.step == frame.groupby(["model", "method"]).step.transform("max")]  # each job's last row
    outputs = {"summary.csv": lambda p: frame.to_csv(p, index=False), "summary.md": lambda p: p.write_text(markdown(frame)),
               "summary_last.md": lambda p: p.write_text(markdown(last))}
    stacked = editing_figures.read_tables(traj)
    # each figure function returns the table it draws (forecast: kis.forecast.step_table, its bootstrap run once)
    long = editing_figures.read_forecasts(fc)
    fig_f, steps = editing_figures.forecast_figure(long, labels, n_boot=n_boot, seed=seed)
    paired = forecast.paired_forgetting(long, order=list(editing_figures.STYLES))
    outputs["forgetting_paired.csv"] = lambda p: paired.to_csv(p, index=False)
    outputs["forgetting_paired.md"] = lambda p: p.write_text(paired_markdown(paired, labels))
    fig_i, _, inter = editing_figures.interference_figure(stacked, labels)
    outputs["forecast_auc.csv"] = lambda p: steps.to_csv(p, index=False)
    outputs["forecast_auc.md"] = lambda p: p.write_text(forecast_markdown(steps, labels))
    outputs["interference_paper_p.csv"] = lambda p: inter.to_csv(p, index=False)
    outputs["interference_paper_p.md"] = lambda p: p.write_text(interference_markdown(inter, labels))
    outputs["last_step.md"] = lambda p: p.write_text(last_step_markdown(steps, inter, labels))
    figs = {"trajectories.png": editing_figures.trajectory_figure(stacked, labels)[0], "interference.png": fig_i,
            "forecast.png": fig_f}
    for name, fig in figs.items():
        outputs[f"figures/{name}"] = lambda p, fig=fig: fig.savefig(p, dpi=dpi, format="png", bbox_inches="tight",
                                                                   pad_inches=0.05)
    for name, write in outputs.items():
        with io.atomic_path(folder / name) as tmp:
            write(tmp)
    for fig in figs.values():
        plt.close(fig)
    log.info("rendered %s: %d trajectory tables", folder, len(traj))
    return frame


def collect(results, folder, *, command: str, commit: str, machine: str, n_edits: int) -> list[tuple[str, str]]:
    """Copy every finished (model, method) of a study's results folder (both tables and the benchmark file the job
    writes when it ends) whose stream is `n_edits` long (a table of another config in the same folder is not this
    study's) into `folder`, recording its run in folder/runs.csv. A job collected before keeps its row (commit,
    command) while its tables are unchanged; one whose tables changed (run again) is copied and its row replaced.
    → the (model, method) pairs copied."""
    import filecmp
    import shutil
    from datetime import datetime, timezone
    from pathlib import Path
    results, folder = Path(results), Path(folder)
    runs_csv = folder / "runs.csv"
    runs = pd.read_csv(runs_csv, dtype=str, keep_default_na=False) if runs_csv.exists() else pd.DataFrame(
        columns=RUN_COLUMNS)
    runs = runs.reindex(columns=RUN_COLUMNS, fill_value="")  # a runs.csv written before a column existed: unknown
    copied = []
    for table in sorted((results / "trajectories").glob("*/*.parquet")):
        if table.name.endswith(".forecast.parquet"):
            continue
        model, method = table.parent.name, table.stem
        fc = table.with_name(f"{method}.forecast.parquet")
        bench = results / "benchmarks" / "trajectory" / model / f"{method}.tsv"
        if not (fc.exists() and bench.exists()) or bench.stat().st_mtime < table.stat().st_mtime:
            log.info("%s/%s: not finished (tables or benchmark file missing or older), not collected", model, method)
            continue
        last = int(pd.read_parquet(table, columns=["step"]).step.max())
        if last != int(n_edits):
            log.info("%s/%s: %d edits, not this study's %d: not collected", model, method, last, int(n_edits))
            continue
        dest = folder / "trajectories" / model
        mine = (runs.model == model) & (runs.method == method)
        resumed = resumed_after(results / "logs" / "trajectory" / model / f"{method}.log", bench)
        if mine.any() and all((dest / src.name).exists() and filecmp.cmp(src, dest / src.name, shallow=False)
                              for src in (table, fc)):
            log.info("%s/%s: collected before, tables unchanged: its row (commit, command) kept", model, method)
            if resumed and not runs.loc[mine, "resumed_after"].iloc[0]:
                runs.loc[mine, "resumed_after"] = resumed  # learnt now from the log of the attempt that finished
            continue
        b = pd.read_csv(bench, sep="\t")
        dest.mkdir(parents=True, exist_ok=True)
        for src in (table, fc):
            with io.atomic_path(dest / src.name) as tmp:
                shutil.copyfile(src, tmp)
        row = {"model": model, "method": method, "n_edits": last,
               "commit": commit, "command": command, "wall_s": f"{float(b.s.iloc[-1]):.0f}",
               "cpu_s": f"{float(b.cpu_time.iloc[-1]):.0f}" if "cpu_time" in b else "",
               "finished": datetime.fromtimestamp(bench.stat().st_mtime, timezone.utc).isoformat(timespec="minutes"),
               "machine": machine, "resumed_after": resumed}
        runs = runs[~((runs.model == model) & (runs.method == method))]
        runs = pd.concat([runs, pd.DataFrame([row]).astype(str)], ignore_index=True)
        copied.append((model, method))
    with io.atomic_path(runs_csv) as tmp:
        runs.sort_values(["model", "method"]).to_csv(tmp, index=False)
    return copied


LANDED = ("<!-- landed -->\n", "<!-- /landed -->\n")  # the block of a findings document that `paste` rewrites


def n_jobs(cfg: dict) -> int:
    """The study's job count: one trajectory job per (model, method) of its config."""
    return len(cfg["models"]) * len(cfg["editing"]["methods"])


def landed_block(folder, n_jobs: int, rel: str | None = None) -> str:
    """Markdown of a collected study for the findings document: which jobs landed (of n_jobs, with wall seconds and
    commit from runs.csv) and the rendered tables verbatim (summary, forecast AUC, paper-P error, paired forgetting);
    links go to `rel` (the folder as the document reaches it; default its name)."""
    from pathlib import Path
    folder = Path(folder)
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    jobs = ", ".join(f"{r.model}/{r.method} ({int(float(r.wall_s))} s"
                     f"{_resumed_note(getattr(r, 'resumed_after', ''))}, {r.commit})" for r in runs.itertuples())
    rel = rel or folder.name
    return (f"Landed so far ({len(runs)} of {n_jobs}; commit, command and wall seconds per job in "
            f"[{rel}/runs.csv]({rel}/runs.csv)):\n{jobs}. Tables and figures below are rendered from the committed "
            f"tables in [{rel}/]({rel}/)\n(`make study-findings`); figures: [trajectories]({rel}/figures/"
            f"trajectories.png),\n[interference]({rel}/figures/interference.png), [forecast]({rel}/figures/"
            f"forecast.png).\n\n{(folder / 'summary.md').read_text()}\n**Forecast of forgetting** per recorded step "
            f"(AUC for \"wrong at step s\", 95 % bootstrap over facts):\n\n{(folder / 'forecast_auc.md').read_text()}"
            f"\n**The paper's P against the measured displacement:**\n\n"
            f"{(folder / 'interference_paper_p.md').read_text()}\n**Which methods forget more, fact by fact** (exact "
            f"McNemar test on the held-out facts only one method forgot; Holm\nover a model's pairs):\n\n"
            f"{(folder / 'forgetting_paired.md').read_text()}\n")


def _resumed_note(resumed: str) -> str:
    """Said after a job's wall seconds when they are those of an attempt resumed from a checkpoint."""
    return f" from a resume after edit {resumed}" if resumed not in ("", "0") else ""


SHORT = ("<!-- study-short -->\n", "<!-- /study-short -->\n")  # the block of the README that `paste` rewrites


def short_block(folder, n_jobs: int, rel: str | None = None) -> str:
    """Markdown of a collected study for the README: the landed jobs (of n_jobs) with their commits and commands
    from runs.csv, each job's last row (summary_last.md) and its forecast AUC and paper-P error (last_step.md);
    links go to `rel` (the folder as the document reaches it; default its name)."""
    from pathlib import Path
    folder = Path(folder)
    rel = rel or folder.name
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    per_model = "; ".join(f"{m}: {', '.join(g.method)}" for m, g in runs.groupby("model", sort=True))
    commits = ", ".join(dict.fromkeys(runs.commit))
    commands = list(dict.fromkeys(c for c in runs.command if c))
    how = (f"command `{commands[0]}`" if len(commands) == 1 else
           f"the command of each job in [{rel}/runs.csv]({rel}/runs.csv)")
    return (f"Landed: {len(runs)} of {n_jobs} jobs ({per_model}); run from commit(s) {commits}, {how}. Each job's "
            f"last row:\n\n"
            f"{(folder / 'summary_last.md').read_text()}\nForgetting at that step, its pre-edit forecast (AUC for "
            f"\"wrong at the step\", 95 % bootstrap over facts) next to three baselines that need no superposition, "
            f"and how far the paper's P is from the measured displacement of the held-out keys:\n\n"
            f"{(folder / 'last_step.md').read_text()}")


def paste(folder, doc, n_jobs: int) -> list[str]:
    """Rewrite each block of `doc` between LANDED's markers (a findings document: landed_block) or SHORT's (the
    README: short_block) from `folder`; an error names the document when it has neither pair, or a broken one.
    → the names of the blocks rewritten."""
    import os
    from pathlib import Path
    doc = Path(doc)
    text = doc.read_text()
    rel = Path(os.path.relpath(Path(folder).resolve(), doc.resolve().parent)).as_posix()  # links from the document
    done = []
    for name, (start, end), block in (("landed", LANDED, landed_block), ("study-short", SHORT, short_block)):
        if start not in text and end not in text:
            continue
        if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
            raise ValueError(f"{doc}: needs one {start.strip()} line and, after it, one {end.strip()} line around the "
                             "block `paste` rewrites")
        a, b = text.index(start) + len(start), text.index(end)
        text = text[:a] + block(folder, n_jobs, rel) + text[b:]
        done.append(name)
    if not done:
        raise ValueError(f"{doc}: has neither {LANDED[0].strip()} … {LANDED[1].strip()} nor {SHORT[0].strip()} … "
                         f"{SHORT[1].strip()} around a block `paste` rewrites")
    with io.atomic_path(doc) as tmp:
        tmp.write_text(text)
    return done


def main(argv=None) -> None:
    """python -m kis.study collect RESULTS FOLDER --config CFG --command "…"  |  render FOLDER --config CFG  |
    paste FOLDER DOC.md --config CFG (the rendered tables into a findings document's landed block, or the short
    tables into the README's study-short block)"""
    import argparse
    import os
    import platform
    import subprocess
    from pathlib import Path

    import yaml

    from . import hparams, schema
    p = argparse.ArgumentParser(prog="python -m kis.study", description=main.__doc__)
    p.add_argument("action", choices=["collect", "render", "paste"])
    p.add_argument("paths", nargs="+", help="collect: the study's results folder and the docs folder; render: the "
                                            "folder; paste: the folder and the document (findings or README)")
    p.add_argument("--config", required=True, nargs="+",
                   help="the study's config file(s), later ones merged over earlier ones as Snakemake does (model "
                        "labels, figures settings, editing.n_edits)")
    p.add_argument("--command", default="", help="collect: the command that ran the jobs")
    p.add_argument("--commit", default="", help="collect: the commit that ran them (default: HEAD of the current folder)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = {}
    for path in a.config:
        cfg = hparams.merge(cfg, yaml.safe_load(Path(path).read_text()) or {})
    labels = {m: s.get("label", m) for m, s in cfg["models"].items()}
    fig = {**schema.defaults("figures"), **(cfg.get("figures") or {})}
    if a.action == "paste":
        if len(a.paths) != 2:
            p.error("paste takes FOLDER DOC.md")
        done = paste(a.paths[0], a.paths[1], n_jobs=n_jobs(cfg))
        log.info("pasted %s into %s (%s)", a.paths[0], a.paths[1], ", ".join(done))
        return
    if a.action == "collect":
        if len(a.paths) != 2:
            p.error("collect takes RESULTS FOLDER")
        commit = a.commit or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                            text=True).stdout.strip() or "unknown"
        machine = _cuda() or f"{platform.machine()}, {os.cpu_count()} cores, CPU"
        copied = collect(a.paths[0], a.paths[1], command=a.command, commit=commit, machine=machine,
                         n_edits=cfg["editing"]["n_edits"])
        log.info("collected %d job(s): %s", len(copied), ", ".join(f"{m}/{k}" for m, k in copied) or "none")
        folder = a.paths[1]
    else:
        folder = a.paths[0]
    render(folder, labels=labels, n_boot=fig["forecast_n_boot"], seed=fig["forecast_seed"])


def _cuda() -> str:
    try:
        import torch
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    except ImportError:
        return ""


if __name__ == "__main__":
    main()
