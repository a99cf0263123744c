"""Does the covariance ratio hold on a shared machine? benchmarks/covariance.py run --quiet-runs times on a quiet
machine, then --loaded-runs times with a CPU-bound busy loop beside it; prints every run's ratio of minima, the
spread of the quiet ones and how far each loaded one lies from the quiet figure (their median).

    python benchmarks/load_check.py                          # 3 quiet runs, 2 beside one busy loop
    python benchmarks/load_check.py --loaded-runs 1 -- --texts 4   # arguments after -- go to covariance.py

A measurement, not a test. Before the quiet runs it waits (up to --wait minutes, checking every 30 s) for the 1-minute
load average to fall below --quiet-load, and runs anyway when it does not (the output says so). The busy loop is a
second Python process spinning on one core; the harness starts it before each loaded run and kills it right after,
and the loop also ends by itself after --busy-limit seconds, so it cannot outlive a hung harness for long. The load
average is sampled every 10 s during each run (mean and max recorded beside the figures the benchmark records at its
start and end).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import OUT  # noqa: E402

HERE = Path(__file__).resolve().parent
BUSY = "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"


def load1() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(threshold: float, wait_s: float, every: float = 30.0) -> dict:
    """Sleep in chunks until the 1-minute load average is below threshold or wait_s has passed."""
    t0, seen = time.monotonic(), [round(load1(), 2)]
    while seen[-1] >= threshold and time.monotonic() - t0 < wait_s:
        print(f"load average {seen[-1]:.2f} ≥ {threshold}: waiting ({time.monotonic() - t0:.0f} s of {wait_s:.0f})",
              flush=True)
        time.sleep(every)
        seen.append(round(load1(), 2))
    return {"waited_s": round(time.monotonic() - t0), "quiet": seen[-1] < threshold, "loadavg_seen": seen}


class LoadSampler:
    """The 1-minute load average every `every` seconds while a run lasts."""

    def __init__(self, every: float = 10.0):
        self.every, self.samples, self._stop = every, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            self.samples.append(round(load1(), 2))
            if self._stop.wait(self.every):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def busy_loop(limit_s: float) -> subprocess.Popen:
    """A CPU-bound Python process that spins on one core and ends by itself after limit_s seconds."""
    return subprocess.Popen([sys.executable, "-c", BUSY.format(limit=float(limit_s))])


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_covariance(extra: list[str], timeout_s: float, label: str, busy: int = 0, busy_limit: float = 0) -> dict:
    """One run of benchmarks/covariance.py (with `busy` busy loops beside it): its JSON's figures and the load."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "covariance.json"
        loops = [busy_loop(busy_limit) for _ in range(busy)]
        t0 = time.monotonic()
        try:
            with LoadSampler() as sampler:
                proc = subprocess.run([sys.executable, str(HERE / "covariance.py"), "--json", str(out), *extra],
                                      capture_output=True, text=True, timeout=timeout_s)
        finally:
            for loop in loops:
                stop(loop)
        wall = time.monotonic() - t0
        if proc.returncode:
            sys.exit(f"{label}: covariance.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        res = json.loads(out.read_text())
    t = res["timing"]
    row = {"run": label, "busy_loops": busy, "ratio": res["ratio"], "ratio_range": res["ratio_range"],
           "per_layer_min_s": t["methods"]["per_layer"]["min_s"], "one_pass_min_s": t["methods"]["one_pass"]["min_s"],
           "per_layer_median_s": t["methods"]["per_layer"]["median_s"],
           "one_pass_median_s": t["methods"]["one_pass"]["median_s"], "max_rel_diff": res["max_rel_diff"],
           "tokens": res["tokens"], "threads": [t["threads_start"], t["threads_end"]],
           "loadavg_start": t["loadavg_start"], "loadavg_end": t["loadavg_end"],
           "load1_during_mean": round(statistics.mean(sampler.samples), 2), "load1_during_max": max(sampler.samples),
           "wall_s": round(wall, 1)}
    print(f"{label}: ratio of minima {row['ratio']:.2f}x (per repetition {row['ratio_range'][0]:.2f}-"
          f"{row['ratio_range'][1]:.2f}x); per-layer min {row['per_layer_min_s']:.2f} s, one pass min "
          f"{row['one_pass_min_s']:.2f} s; load {t['loadavg_start'][0]:.2f} -> {t['loadavg_end'][0]:.2f} (during: mean "
          f"{row['load1_during_mean']:.2f}, max {row['load1_during_max']:.2f}); {wall:.0f} s", flush=True)
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quiet-runs", type=int, default=3)
    ap.add_argument("--loaded-runs", type=int, default=2)
    ap.add_argument("--busy", type=int, default=1, help="busy-loop processes beside each loaded run")
    ap.add_argument("--busy-limit", type=float, default=600, help="seconds after which a busy loop ends by itself")
    ap.add_argument("--quiet-load", type=float, default=0.5, help="1-minute load average that counts as quiet")
    ap.add_argument("--wait", type=float, default=30, help="minutes to wait for a quiet machine")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one covariance.py run may take")
    ap.add_argument("--json", default=str(OUT / "load_check.json"))
    ap.add_argument("extra", nargs="*", help="arguments for covariance.py (after --)")
    args = ap.parse_args(argv)

    quiet_wait = wait_for_quiet(args.quiet_load, args.wait * 60)
    print(f"quiet runs start at load {quiet_wait['loadavg_seen'][-1]:.2f} after {quiet_wait['waited_s']} s"
          f"{'' if quiet_wait['quiet'] else ' (NOT quiet: the wait ran out)'}", flush=True)
    quiet = [run_covariance(args.extra, args.timeout, f"quiet {i + 1}") for i in range(args.quiet_runs)]
    loaded = [run_covariance(args.extra, args.timeout, f"loaded {i + 1}", args.busy, args.busy_limit)
              for i in range(args.loaded_runs)]

    ratios = [r["ratio"] for r in quiet]
    figure = statistics.median(ratios)
    summary = {"quiet_ratios": ratios, "quiet_figure_median": round(figure, 3),
               "quiet_max_dev_from_median_pct": round(100 * max(abs(r / figure - 1) for r in ratios), 1),
               "quiet_max_over_min": round(max(ratios) / min(ratios), 3),
               "loaded_ratios": [r["ratio"] for r in loaded],
               "loaded_dev_from_quiet_pct": [round(100 * (r["ratio"] / figure - 1), 1) for r in loaded]}
    result = {"command": ["covariance.py", *args.extra], "quiet_wait": quiet_wait, "busy_loops": args.busy,
              "runs": quiet + loaded, "summary": summary}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"quiet ratios {', '.join(f'{r:.2f}' for r in ratios)} (median {figure:.2f}x; each within "
          f"±{summary['quiet_max_dev_from_median_pct']:.1f} % of it); beside {args.busy} busy loop(s): "
          + ", ".join(f"{r['ratio']:.2f}x ({d:+.1f} %)" for r, d in zip(loaded, summary["loaded_dev_from_quiet_pct"])))


if __name__ == "__main__":
    main()
