"""The timing helper every speed benchmark uses: a warm-up, then the methods interleaved (A B A B A B), each call
timed as a whole; per method the minimum and the median, the ratio of the minima (the figure a goal is judged by)
with the range of the per-repetition ratios, the load average and the torch thread count at start and end.

Why: run one after the other, once each, the two halves of a ratio see different loads on a shared machine (the
covariance ratio read 5.5×, 35.2× and 9.8× on one day). Interleaving spreads slow load changes over both methods,
the minimum of the repetitions drops transient ones, and both methods run at the same, recorded torch thread count.

    from timing import compare
    run = compare([("per_layer", lambda: ref(x)), ("one_pass", lambda: ours(x))], reps=3, warmup=1, threads=1)
    run.results["one_pass"]      # what the last repetition of each method returned (for the correctness check)
    run.report                   # the figures, for the script's JSON
    run.summary()                # "ratio 9.81× (per repetition 9.52–10.10×, 3 reps)"
"""
from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

Method = tuple[str, Callable[[], Any]]


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine_state() -> dict:
    """Load average and torch thread count now."""
    return {"loadavg": loadavg(), "threads": torch.get_num_threads()}


@dataclass
class Comparison:
    """What compare() measured: `report` (JSON-ready), `results` (each method's return value, last repetition),
    `calls` (the order the calls ran in: ("warmup"|"timed", name))."""
    report: dict
    results: dict[str, Any]
    calls: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        return self.report.get("ratio_of_minima")

    def ratio_text(self, fmt: str = ".2f") -> str:
        """'ratio of minima 9.81x (per repetition 9.52-10.10x, 3 reps interleaved)'."""
        r = self.report
        lo, hi = r["ratio_range"]
        return (f"ratio of minima {r['ratio_of_minima']:{fmt}}x (per repetition {lo:{fmt}}-{hi:{fmt}}x, {r['reps']} "
                f"reps interleaved)")

    def summary(self) -> str:
        """The ratio of minima with the per-repetition range (or the minimum and median of a lone method)."""
        r = self.report
        if "ratio_of_minima" not in r:
            (name, m), = r["methods"].items()
            return (f"{name}: min {m['min_s']:.2f} s, median {m['median_s']:.2f} s ({r['reps']} reps, "
                    f"{r['threads_start']} thread(s), load {_load(r)})")
        a, b = r["ratio_of"].split(" / ")
        ma, mb = r["methods"][a], r["methods"][b]
        return (f"{a} min {ma['min_s']:.2f} s (median {ma['median_s']:.2f}), {b} min {mb['min_s']:.2f} s (median "
                f"{mb['median_s']:.2f}); {self.ratio_text()[:-1]}, {r['threads_start']} thread(s), load {_load(r)})")


def _load(r: dict) -> str:
    s, e = r["loadavg_start"], r["loadavg_end"]
    return f"{s[0]:.2f} -> {e[0]:.2f}" if s and e else "n/a"


def compare(methods: Sequence[Method], *, reps: int = 3, warmup: int = 1,
            warmup_calls: dict[str, Callable[[], Any]] | None = None, threads: int | None = None,
            sync: Callable[[], None] | None = None, scale: dict[str, Callable[[float], float]] | None = None,
            clock: Callable[[], float] = time.perf_counter) -> Comparison:
    """Time one or two methods: `warmup` untimed rounds (each method once a round, in the given order; a method's
    warm-up call is warmup_calls[name] when given, e.g. the same work on a small input), then `reps` rounds of
    timed calls interleaved A B A B …, each call timed as a whole (`sync` runs before the clock is read, e.g.
    torch.cuda.synchronize).

    With two methods the ratio is A / B (how many times faster B is): the ratio of the two minima, and the range of
    the per-repetition ratios A_i / B_i. `scale[name]` maps a measured time to the time reported for that method
    (an extrapolation; monotone, so the minimum maps to the minimum). `threads` sets torch's thread count for both
    methods (None: keep the current one); the count and the load average are recorded at start and end.
    """
    if not 1 <= len(methods) <= 2:
        raise ValueError(f"compare times one or two methods, not {len(methods)}")
    names = [n for n, _ in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"method names must differ: {names}")
    if reps < 1 or warmup < 0:
        raise ValueError(f"reps must be ≥ 1 and warmup ≥ 0 (got {reps}, {warmup})")
    if threads is not None:
        torch.set_num_threads(int(threads))
    scale = scale or {}
    warmup_calls = warmup_calls or {}
    start = machine_state()
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    t_all = clock()
    calls: list[tuple[str, str]] = []
    for _ in range(warmup):
        for name, fn in methods:
            calls.append(("warmup", name))
            warmup_calls.get(name, fn)()
            if sync:
                sync()
    seconds: dict[str, list[float]] = {n: [] for n in names}
    results: dict[str, Any] = {}
    for _ in range(reps):
        for name, fn in methods:
            calls.append(("timed", name))
            if sync:
                sync()
            t0 = clock()
            results[name] = fn()
            if sync:
                sync()
            seconds[name].append(clock() - t0)
    end = machine_state()
    report: dict = {"reps": reps, "warmup": warmup, "order": "interleaved " + " ".join(
                        n for kind, n in calls if kind == "timed"),
                    "started": started, "wall_s": round(clock() - t_all, 2),
                    "loadavg_start": start["loadavg"], "loadavg_end": end["loadavg"],
                    "threads_start": start["threads"], "threads_end": end["threads"],
                    "cpu_count": os.cpu_count(), "methods": {}}
    reported = {}
    for name in names:
        measured = seconds[name]
        f = scale.get(name)
        reported[name] = [f(t) for t in measured] if f else list(measured)
        entry = {"seconds": [round(t, 4) for t in reported[name]], "min_s": round(min(reported[name]), 4),
                 "median_s": round(statistics.median(reported[name]), 4)}
        if f:
            entry["measured_seconds"] = [round(t, 4) for t in measured]
        report["methods"][name] = entry
    if len(names) == 2:
        a, b = names
        per_rep = [ta / tb for ta, tb in zip(reported[a], reported[b])]
        report.update(ratio_of=f"{a} / {b}", ratio_of_minima=round(min(reported[a]) / min(reported[b]), 4),
                      ratio_range=[round(min(per_rep), 4), round(max(per_rep), 4)],
                      ratios=[round(r, 4) for r in per_rep],
                      ratio_of_medians=round(statistics.median(reported[a]) / statistics.median(reported[b]), 4))
    return Comparison(report, results, calls)


def add_arguments(ap, *, reps: int = 3, warmup: int = 1, threads: int | None = 1, out: str | None = None) -> None:
    """The flags every speed script shares: --reps, --warmup, --threads, --json."""
    ap.add_argument("--reps", type=int, default=reps, help="timed repetitions of each method, interleaved (A B A B)")
    ap.add_argument("--warmup", type=int, default=warmup, help="untimed warm-up rounds before them")
    ap.add_argument("--threads", type=int, default=threads,
                    help="torch threads, the same for both methods (recorded in the JSON)")
    ap.add_argument("--json", default=out, help="write the result as JSON here (default: %(default)s)")


def finish(result: dict, run: Comparison, path: str | Path | None, line: str | None = None) -> dict:
    """A speed script's ending: the run's figures added to its result (torch version and threads; with two methods
    the ratio of minima and the per-repetition range; the whole timing report), the result printed as JSON and
    written to `path`, then the script's own `line` and the run's summary printed."""
    result.update(threads=run.report["threads_end"], torch=torch.__version__)
    if run.ratio is not None:
        result.update(ratio=round(run.ratio, 3), ratio_range=[round(x, 3) for x in run.report["ratio_range"]])
    result["timing"] = run.report
    write_json(result, path)
    if line:
        print(line)
    print(run.summary())
    return result


def write_json(result: dict, path: str | Path | None) -> None:
    """Print the result as JSON and write it to `path` (its folder created) when one is given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
