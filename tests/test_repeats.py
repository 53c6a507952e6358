"""``--repeat N``: the statistics across repeats (pure), then real sweeps of the simulator."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from qpsweep.analysis.repeat_diff import compare_repeats, mean_difference
from qpsweep.analysis.repeats import (
    LEVEL_FIGURES,
    VERDICT_FIGURES,
    Repeat,
    spread,
    summarize_repeats,
)
from qpsweep.analysis.summary import LevelInfo, latency_samples, summarize_levels
from qpsweep.analysis.verdict import assess
from qpsweep.cli.main import main
from qpsweep.output.repeats import repeat_dir_name, repeat_seeds
from qpsweep.output.repeats_text import format_repeats
from qpsweep.records.record import RequestRecord
from qpsweep.sim.server import SimConfig

from conftest import REPO, sim_process

# -- the statistics ---------------------------------------------------------------------------


def test_spread_is_the_mean_and_a_student_t_interval() -> None:
    sp = spread([1.0, 2.0, 3.0, 4.0, 5.0])
    sd = math.sqrt(2.5)
    half = 2.7764451 * sd / math.sqrt(5)  # t(0.975, 4)
    assert sp.n == 5 and sp.mean == 3.0 and sp.sd == pytest.approx(sd)
    assert (sp.low, sp.high) == pytest.approx((3.0 - half, 3.0 + half))
    assert sp.cv == pytest.approx(sd / 3.0)
    assert spread([1.0, 2.0, 3.0, 4.0, 5.0], confidence=0.99).high == pytest.approx(
        3.0 + 4.6040949 * sd / math.sqrt(5)
    )


def test_one_value_cannot_tell_and_missing_values_are_counted() -> None:
    one = spread([7.5, None, None])
    assert (one.n, one.n_missing, one.mean) == (1, 2, 7.5)
    assert one.sd is None and one.low is None and one.high is None and one.cv is None
    none = spread([None, float("nan")])
    assert none.mean is None and none.n_missing == 2
    flat = spread([2.0, 2.0, 2.0])
    assert (flat.low, flat.high, flat.cv) == (2.0, 2.0, 0.0)
    assert spread([-1.0, 1.0]).cv is None  # a zero mean has no relative spread


def test_the_interval_covers_the_true_mean_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(18)
    covered = 0
    for _ in range(800):
        sp = spread(list(rng.normal(10.0, 2.0, 5)))
        assert sp.low is not None and sp.high is not None
        covered += sp.low <= 10.0 <= sp.high
    assert 0.925 <= covered / 800 <= 0.975  # about 3 standard errors of a binomial share


def test_welch_matches_scipy_and_one_run_uses_the_repeats_spread() -> None:
    a, b = [1.0, 1.2, 0.9, 1.1], [1.5, 1.7, 1.4]
    test = mean_difference(spread(a), spread(b))
    assert test is not None and test.method == "welch"
    assert test.p_value == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)
    assert test.delta == pytest.approx(np.mean(b) - np.mean(a)) and test.low < test.delta

    single = mean_difference(spread(a), spread([1.6]))
    assert single is not None and single.method == "one run vs repeats" and single.dof == 3
    se = float(np.std(a, ddof=1)) * math.sqrt(1 + 1 / 4)
    t_score = (1.6 - float(np.mean(a))) / se
    assert single.p_value == pytest.approx(2 * stats.t.sf(t_score, 3))
    reverse = mean_difference(spread([1.6]), spread(a))
    assert reverse is not None and reverse.p_value == pytest.approx(single.p_value)

    assert mean_difference(spread([1.0]), spread([2.0])) is None  # one run each: cannot tell
    same = mean_difference(spread([100.0, 100.0]), spread([100.0, 100.0, 100.0]))
    assert same is not None and same.p_value == 1.0
    assert mean_difference(spread([100.0, 100.0]), spread([90.0, 90.0])) is None


def _records(level: int, qps: float, ttft_s: np.ndarray) -> list[RequestRecord]:
    out = []
    for seq, ttft in enumerate(ttft_s):
        t0 = seq / qps
        chunks = tuple(t0 + ttft + 0.01 * k for k in range(8))
        out.append(
            RequestRecord(level, qps, seq, seq, t0, t0, chunks[-1], ttft + t0, 200, None, None, 5,
                          8, "usage", chunks)
        )  # fmt: skip
    return out


def _repeat(seed: int, levels: dict[float, float], slow: float = 1.0) -> Repeat:
    """A repeat with one level per target QPS, TTFTs around ``levels[qps]`` x ``slow``."""
    rng = np.random.default_rng(seed)
    records: list[RequestRecord] = []
    infos = []
    for i, (qps, ttft) in enumerate(levels.items()):
        records += _records(i, qps, rng.lognormal(np.log(ttft * slow), 0.2, 60))
        infos.append(LevelInfo(i, qps, 60 / qps, 60))
    summaries = summarize_levels(infos, records, (50, 95, 99))
    return Repeat(f"r{seed}", seed, summaries, assess(summaries, latency_samples(records)))


def test_levels_every_repeat_ran_are_summarized_and_the_others_listed() -> None:
    repeats = [_repeat(1, {2.0: 0.05, 4.0: 0.06}), _repeat(2, {2.0: 0.05, 6.0: 0.07})]
    summary = summarize_repeats(repeats)
    assert [lv.qps_target for lv in summary.levels] == [2.0]
    assert summary.partial_levels == (4.0, 6.0) and summary.seeds == (1, 2)
    level = summary.levels[0]
    assert [name for name, _ in level.figures] == [name for name, _ in LEVEL_FIGURES]
    assert [name for name, _ in summary.verdict] == [name for name, _ in VERDICT_FIGURES]
    ttft = level.figure("ttft_p50_s")
    firsts = [r.summaries[0].ttft_s.get(50.0) for r in repeats]
    assert ttft.values == tuple(firsts) and ttft.mean == pytest.approx(np.mean(firsts))
    assert level.figure("success_pct").mean == 100.0
    text = format_repeats(summary, auto=True)
    assert "levels not run by every repeat (not summarized): 4, 6" in text
    assert "--qps auto: each repeat searched its own levels" in text
    one = format_repeats(summarize_repeats(repeats[:1]), auto=False)
    assert "cannot tell (1 run)" in one and "use --repeat 2 or more" in one


def test_a_client_limited_rerun_does_not_stand_for_its_level() -> None:
    rep = _repeat(3, {2.0: 0.05, 2.000000001: 0.5})  # the same target twice (a rerun)
    states = ["ok", "client_limited"]
    levels = tuple(replace(st, state=s) for st, s in zip(rep.verdict.levels, states, strict=True))
    rep = replace(rep, verdict=replace(rep.verdict, levels=levels))
    level = summarize_repeats([rep]).levels[0]
    assert level.states == ("ok",) and level.figure("ttft_p50_s").mean == pytest.approx(
        rep.summaries[0].ttft_s.get(50.0)
    )


def test_repeats_find_a_slowdown_and_not_noise() -> None:
    levels = {2.0: 0.05, 4.0: 0.06}
    base = summarize_repeats([_repeat(s, levels) for s in range(4)])
    same = summarize_repeats([_repeat(s, levels) for s in range(10, 14)])
    slow = summarize_repeats([_repeat(s, levels, slow=1.6) for s in range(20, 24)])
    quiet = compare_repeats(base, same, alpha=0.01, threshold_pct=10.0)
    assert quiet.regressions == [] and len(quiet.levels) == 2
    found = compare_repeats(base, slow, alpha=0.01, threshold_pct=10.0)
    assert {(q, f) for q, f in found.regressions} >= {(2.0, "ttft_p50_s"), (4.0, "ttft_p50_s")}
    assert all(f.startswith(("ttft", "e2e")) for _, f in found.regressions)
    assert compare_repeats(slow, base, alpha=0.01, threshold_pct=10.0).regressions == []
    assert compare_repeats(base, slow, alpha=0.01, threshold_pct=100.0).regressions == []


def test_saturated_repeats_are_not_judged_but_a_lost_level_is_a_regression() -> None:
    def with_state(rep: Repeat, state: str) -> Repeat:
        levels = tuple(replace(st, state=state) for st in rep.verdict.levels)
        return replace(rep, verdict=replace(rep.verdict, levels=levels))

    levels = {2.0: 0.05}
    base = summarize_repeats([with_state(_repeat(s, levels), "ok") for s in range(3)])
    slow = [_repeat(s, levels, slow=1.6) for s in range(10, 13)]
    sat = summarize_repeats([with_state(r, "saturated") for r in slow])
    mixed = zip(slow, ["saturated", "ok", "ok"], strict=True)
    some = summarize_repeats([with_state(r, st) for r, st in mixed])
    assert compare_repeats(base, sat, 0.01, 10.0).regressions == [(2.0, "state")]
    diff = compare_repeats(base, some, 0.01, 10.0)
    assert not diff.levels[0].judged and diff.regressions == []


def test_seeds_and_directory_names() -> None:
    assert repeat_seeds(7, 3) == (7, 8, 9)
    assert repeat_dir_name(2, 3) == "repeat_2" and repeat_dir_name(2, 12) == "repeat_02"


# -- the command line -------------------------------------------------------------------------

FAST_SIM = SimConfig(max_num_seqs=4, decode_ms=5.0, decode_ms_per_seq=0.0, prefill_ms_per_token=0.0)
SLOW_SIM = replace(FAST_SIM, decode_ms=10.0)
DATASET = REPO / "datasets" / "short_prompts.jsonl"


def _sweep_args(url: str, results: Path, *more: str) -> list[str]:
    return [
        "--endpoint", url, "--model", "sim", "--max-tokens", "20", "--qps", "5,10",
        "--duration", "1.5", "--dataset", str(DATASET), "--results-dir", str(results),
        "--no-plot", *more,
    ]  # fmt: skip


def _repeats(results: Path, config: SimConfig, count: int, seed: int) -> Path:
    with sim_process(config) as url:
        cmd = [sys.executable, "-m", "qpsweep", *_sweep_args(url, results)]
        cmd += ["--repeat", str(count), "--seed", str(seed)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1].removeprefix("Results: "))


@pytest.fixture(scope="module")
def parents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three repeats of the fast simulator and three of the slow one, made at once."""
    results = tmp_path_factory.mktemp("results")
    plans = {"fast": (FAST_SIM, 7), "slow": (SLOW_SIM, 7)}
    with ThreadPoolExecutor(len(plans)) as pool:
        made = {
            k: pool.submit(_repeats, results / k, cfg, 3, seed) for k, (cfg, seed) in plans.items()
        }
        return {name: future.result() for name, future in made.items()}


@pytest.mark.slow
def test_repeat_writes_a_run_per_repeat_and_the_summary(
    parents: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    parent = parents["fast"]
    assert sorted(p.name for p in parent.iterdir() if p.is_dir()) == [
        "repeat_1",
        "repeat_2",
        "repeat_3",
    ]
    data = json.loads((parent / "repeats.json").read_text())
    assert data["count"] == 3 and data["seed"] == 7 and data["auto"] is False
    assert [(e["seed"], e["status"]) for e in data["repeats"]] == [
        (7, "complete"),
        (8, "complete"),
        (9, "complete"),
    ]
    for e in data["repeats"]:
        meta = json.loads((parent / e["dir"] / "metadata.json").read_text())
        assert meta["seed"] == e["seed"]
        assert meta["repeat"] == {"index": e["index"], "count": 3, "seed": e["seed"]}
    assert [lv["qps_target"] for lv in data["levels"]] == [5.0, 10.0]
    ttft = data["levels"][0]["figures"]["ttft_p99_s"]
    assert ttft["n"] == 3 and ttft["low"] <= ttft["mean"] <= ttft["high"]
    # 20 tokens of 5 ms steps: E2E p50 about 0.1 s in every repeat
    e2e = data["levels"][0]["figures"]["e2e_p50_s"]
    assert all(0.09 < v < 0.3 for v in e2e["values"])
    assert set(data["verdict"]) == {
        "saturation_qps",
        "capacity_qps",
        "max_sustainable_qps",
        "recommended_qps",
    }
    text = (parent / "report.txt").read_text()
    assert text.startswith("Repeats: 3 run(s) of the same sweep (seeds 7, 8, 9)")

    # each repeat is an ordinary run; the parent rebuilds to the same summary
    assert main(["report", str(parent / "repeat_2")]) == 0
    assert "SATURATION VERDICT" in capsys.readouterr().out
    assert main(["report", str(parent)]) == 0
    assert capsys.readouterr().out == text


@pytest.mark.slow
def test_diff_of_repeats_finds_the_slower_simulator(
    parents: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["diff", str(parents["fast"]), str(parents["slow"]), "--fail-on-regression", "10"]
    assert main([*argv, "--output-dir", str(tmp_path / "d")]) == 1
    out = capsys.readouterr().out
    assert "(3 repeat(s))" in out and "REGRESSION" in out
    data = json.loads((tmp_path / "d" / "diff.json").read_text())
    assert data["result"] == "regression" and data["base_repeats"] == 3
    e2e = [
        next(f for f in lv["figures"] if f["figure"] == "e2e_p50_s") for lv in data["levels"]
    ]  # 10 ms decode steps instead of 5: E2E about 2x at both levels
    assert all(f["significant"] and f["method"] == "welch" and f["change_pct"] > 60 for f in e2e), (
        e2e
    )
    png = (tmp_path / "d" / "diff.png").read_bytes()
    assert png.startswith(b"\x89PNG") and int.from_bytes(png[16:20], "big") == 1600
    judged = [f["regression"] for f, lv in zip(e2e, data["levels"], strict=True) if lv["judged"]]
    assert judged and all(judged)  # a stall of the shared VM may leave one level unjudged

    # a parent against one of its own repeats: one run vs repeats, nothing found
    one = parents["fast"] / "repeat_1"
    argv = ["diff", str(parents["fast"]), str(one), "--fail-on-regression", "10"]
    assert main([*argv, "--output-dir", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert "(1 repeat(s))" in out and "no significant regression beyond 10%" in out
    data = json.loads((tmp_path / "e" / "diff.json").read_text())
    methods = {f["method"] for lv in data["levels"] for f in lv["figures"]}
    assert methods <= {"one run vs repeats", None} and "one run vs repeats" in methods


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "many"])
def test_a_bad_repeat_count_is_one_line_and_exit_2(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--endpoint", "http://127.0.0.1:9", "--model", "m", "--dataset", str(DATASET)]
    assert main([*argv, f"--repeat={value}"]) == 2
    err = capsys.readouterr().err
    assert "--repeat" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_repeat_does_not_go_with_all_models_or_shards(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--endpoint", "http://127.0.0.1:9", "--model", "m", "--dataset", str(DATASET)]
    assert main([*argv, "--repeat", "2", "--all-models"]) == 2
    assert "--repeat: not with --all-models" in capsys.readouterr().err
    shard = ["--shard", "1/2", "--start-at", "2030-01-01T00:00:00+00:00"]
    assert main([*argv, "--repeat", "2", *shard]) == 2
    assert "--repeat: not with --shard" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "repeats.json: unreadable"),
        ('{"repeats": 3}', "not a qpsweep repeats file"),
        ('{"repeats": []}', "a repeats directory with no complete run in it"),
        ('{"repeats": [{"index": 1, "seed": 0, "dir": null, "status": "not_run"}]}', "no complete"),
    ],
)
def test_a_bad_repeats_directory_is_one_line_and_exit_2(
    content: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "repeats.json").write_text(content)
    assert main(["diff", str(parent), str(parent), "--output-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(parent) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_one_repeat_says_it_cannot_tell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with sim_process(FAST_SIM) as url:
        argv = _sweep_args(url, tmp_path, "--repeat", "1", "--no-check")
        code = main([a if a != "5,10" else "5" for a in argv])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "cannot tell (1 run)" in out and "use --repeat 2 or more" in out
    parent = Path(out.strip().splitlines()[-1].removeprefix("Results: "))
    assert (parent / "repeat_1" / "requests.jsonl").is_file()
