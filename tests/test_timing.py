"""benchmarks/timing.py: the interleaved timing helper every speed benchmark uses."""
import json

import pytest
import torch

import wf

timing = wf.bench_module("timing")  # benchmarks/timing.py, from its path


def test_two_sleeps_of_known_length_give_their_ratio():
    """0.2 s against 0.1 s of time.sleep: the ratio of minima is 2 within 10 %, and each minimum is the sleep."""
    import time

    run = timing.compare([("slow", lambda: time.sleep(0.2)), ("fast", lambda: time.sleep(0.1))], reps=3, warmup=1)
    assert run.ratio == pytest.approx(2.0, rel=0.10)
    assert run.report["methods"]["slow"]["min_s"] == pytest.approx(0.2, rel=0.10)
    assert run.report["methods"]["fast"]["min_s"] == pytest.approx(0.1, rel=0.10)


class FakeClock:
    """A clock that moves only when a method 'runs': each call of a method advances it by that call's duration."""

    def __init__(self):
        self.now, self.log = 0.0, []

    def __call__(self):
        return self.now

    def method(self, name, durations):
        it = iter(durations)

        def run():
            self.log.append(name)
            self.now += next(it)
            return f"{name}{len(self.log)}"
        return run


def test_calls_run_warmup_then_interleaved():
    """The recorded order: warm-up (A then B, untimed, through warmup_calls when given), then A B A B A B."""
    clock = FakeClock()
    a = clock.method("A", [5, 4, 6])
    b = clock.method("B", [1, 2, 1])
    warm = {"A": clock.method("wA", [100]), "B": clock.method("wB", [100])}
    run = timing.compare([("A", a), ("B", b)], reps=3, warmup=1, warmup_calls=warm, clock=clock)
    assert clock.log == ["wA", "wB", "A", "B", "A", "B", "A", "B"]
    assert run.calls == [("warmup", "A"), ("warmup", "B")] + [("timed", "A"), ("timed", "B")] * 3
    assert run.report["order"] == "interleaved A B A B A B"
    assert run.results == {"A": "A7", "B": "B8"}   # the last repetition's return values
    # the warm-up's 100 s are not in any timing
    assert run.report["methods"]["A"]["seconds"] == [5, 4, 6]
    assert run.report["methods"]["B"]["seconds"] == [1, 2, 1]


def test_reported_fields_are_present_and_consistent(one_thread):
    """min, median, ratio of minima, per-repetition ratios and their range, load average and threads (set by
    `threads` for both methods) at start and end."""
    clock = FakeClock()
    run = timing.compare([("ref", clock.method("ref", [0, 9, 12, 10])), ("ours", clock.method("ours", [0, 3, 2, 5]))],
                         reps=3, warmup=1, threads=2, clock=clock)
    r = run.report
    for key in ("reps", "warmup", "order", "loadavg_start", "loadavg_end", "threads_start", "threads_end",
                "ratio_of", "ratio_of_minima", "ratio_range", "ratios", "methods"):
        assert key in r, key
    assert r["threads_start"] == r["threads_end"] == 2 == torch.get_num_threads()
    assert len(r["loadavg_start"]) == 3 and len(r["loadavg_end"]) == 3
    ref, ours = r["methods"]["ref"], r["methods"]["ours"]
    assert (ref["min_s"], ref["median_s"], ours["min_s"], ours["median_s"]) == (9, 10, 2, 3)
    assert r["ratio_of"] == "ref / ours"
    assert r["ratio_of_minima"] == pytest.approx(9 / 2)
    assert r["ratios"] == pytest.approx([3.0, 6.0, 2.0])
    assert r["ratio_range"] == pytest.approx([2.0, 6.0])
    assert r["ratio_range"][0] <= r["ratio_of_minima"] <= r["ratio_range"][1]   # always so: see timing.compare
    assert "ratio of minima 4.50x (per repetition 2.00-6.00x, 3 reps" in run.summary()
    json.dumps(r)   # JSON-ready


def test_scale_extrapolates_one_method_and_a_lone_method_has_no_ratio():
    clock = FakeClock()
    run = timing.compare([("ref", clock.method("ref", [1, 2, 3])), ("ours", clock.method("ours", [1, 1, 1]))],
                         reps=2, warmup=1, scale={"ref": lambda t: 10 * t + 1}, clock=clock)
    assert run.report["methods"]["ref"]["seconds"] == [21, 31]
    assert run.report["methods"]["ref"]["measured_seconds"] == [2, 3]
    assert run.ratio == pytest.approx(21)
    lone = timing.compare([("edit", clock.method("edit", [7, 5, 6]))], reps=2, warmup=1, clock=clock)
    assert lone.ratio is None and "ratio_range" not in lone.report
    assert lone.report["methods"]["edit"]["min_s"] == 5
    assert "edit: min 5.00 s" in lone.summary()


def test_bad_arguments():
    with pytest.raises(ValueError, match="one or two"):
        timing.compare([], reps=1)
    with pytest.raises(ValueError, match="differ"):
        timing.compare([("a", lambda: 0), ("a", lambda: 0)], reps=1)
    with pytest.raises(ValueError, match="reps"):
        timing.compare([("a", lambda: 0)], reps=0)


def test_finish_adds_the_figures_prints_and_writes_the_json(tmp_path, capsys):
    clock = FakeClock()
    run = timing.compare([("ref", clock.method("ref", [0, 8, 6])), ("ours", clock.method("ours", [0, 2, 2]))],
                         reps=2, warmup=1, clock=clock)
    assert run.ratio_text(".1f") == "ratio of minima 3.0x (per repetition 3.0-4.0x, 2 reps interleaved)"
    out = tmp_path / "sub" / "bench.json"
    result = timing.finish({"model": "m"}, run, out, "the script's line")
    written = json.loads(out.read_text())
    assert written == result
    assert written["ratio"] == 3.0 and written["ratio_range"] == [3.0, 4.0]
    assert written["timing"]["methods"]["ours"]["min_s"] == 2 and written["torch"] == torch.__version__
    printed = capsys.readouterr().out
    assert "the script's line\n" in printed and run.summary() in printed
