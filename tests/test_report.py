"""The sweep report: intervals, grouping, the printed table, the figures and the ``lever report`` command."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from lever.cli import main
from lever.errors import FileFormatError, LeverError
from lever.report import (Configuration, format_interval, format_summary, geometric_interval, load_results,
                          long_horizon_figure, mean_interval, ratio_speedup_figure, ratio_vs_coverage_figure,
                          summarize, summary_json, write_figures)
from lever.stats import MIN_N_FOR_INTERVAL, Interval, bootstrap_ci, geometric_mean_ci
from lever.sweep import SweepRow, read_table, run_sweep, write_table
from lever.version import __version__

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "svg": b"<?xml", "pdf": b"%PDF-"}
FIGURE_NAMES = [f"{stem}.{ext}" for stem in ("ratio_speedup", "ratio_vs_coverage", "long_horizon")
                for ext in ("png", "svg", "pdf")]


def make_row(**values) -> SweepRow:
    base = dict(setting="grid8", budget="X1", layout_seed=0, composite="path+gold", n_components=2,
                long_horizon=False, layout_id="abc", episodes=10, strategy="targeted", planning=False,
                planned=False, scratch_return=100.0, scratch_end="exit", scratch_s=0.01, score=90.0,
                offline_return=90.0, true_return=90.0, true_end="exit", true_steps=20, offline_end="exit",
                return_ratio=0.9, return_difference=-10.0, speedup=10.0, search_s=0.001, retrieval_s=0.0,
                composition_s=0.0, scoring_s=0.0, planning_s=0.0, combinations_tried=1, support_coverage=0.5,
                route_on_support=1.0,
                policy_ids="0;1")
    return SweepRow(**{**base, **values})


def synthetic_rows() -> list[SweepRow]:
    rows = []
    for seed in range(4):
        for strategy, ratio in (("targeted", 0.8), ("exhaustive", 1.1)):
            for planning in (False, True):
                for composite, size in (("path+gold", 2), ("path+hazard+lever", 3)):
                    value = ratio + 0.1 * seed + 0.05 * planning
                    rows.append(make_row(layout_seed=seed, strategy=strategy, planning=planning,
                                         composite=composite, n_components=size,
                                         long_horizon="lever" in composite,
                                         return_ratio=value, true_return=100.0 * value,
                                         return_difference=100.0 * value - 100.0,
                                         speedup=10.0 ** (seed + 1), support_coverage=0.2 * (seed + 1)))
    rows.append(make_row(layout_seed=9, return_ratio=math.nan, scratch_return=-5.0, scratch_end="hazard",
                         true_end="hazard", true_return=-15.0, return_difference=-10.0))
    return rows


def test_intervals_are_bootstrap_intervals_hidden_below_five_values():
    values = [1.0, 2.0, 4.0, 7.0]
    few = mean_interval(values + [math.nan, math.inf])  # undefined values are dropped, not averaged
    assert isinstance(few, Interval) and few.n == 4 and few.mean == pytest.approx(3.5)
    assert not few.has_interval and math.isnan(few.low) and math.isnan(few.high)
    assert format_interval(few) == f"3.50 (n=4, no interval below n={MIN_N_FOR_INTERVAL})"
    assert mean_interval([]) is None and mean_interval([math.nan]) is None and format_interval(None) == "-"
    enough = mean_interval(values + [11.0])
    assert enough.n == 5 and enough.has_interval and enough.low < enough.mean < enough.high
    assert enough == bootstrap_ci(values + [11.0], 0.95, 10_000, 0)  # the stats module's interval, seeded
    assert format_interval(enough).endswith("(n=5)") and "[" in format_interval(enough)
    many = mean_interval(list(range(100)))
    assert many.mean == pytest.approx(49.5) and many.low < 49.5 < many.high
    assert many.high - many.low == pytest.approx(2 * 1.96 * np.std(range(100), ddof=1) / 10, rel=0.15)
    # speedups: geometric mean, the interval on the log scale, never below zero; <= 0 and inf left out
    speedups = [1.0, 10.0, 100.0, 1000.0, 10000.0]
    geo = geometric_interval(speedups + [0.0, -1.0, math.inf, math.nan])
    assert geo.n == 5 and geo.mean == pytest.approx(100.0)
    assert 0 < geo.low < 100.0 < geo.high and geo == geometric_mean_ci(speedups, 0.95, 10_000, 0)
    assert not geometric_interval([2.0, 8.0]).has_interval
    assert geometric_interval([2.0, 8.0]).mean == pytest.approx(4.0)
    assert geometric_interval([0.0, math.inf]) is None


def test_summary_groups_and_counts_undefined_ratios():
    summary = summarize(synthetic_rows(), Configuration("study", "sum", 0.0))
    keys = [(s.strategy, s.n_components, s.budget) for s in summary]
    assert keys == [("targeted", 2, "X1"), ("targeted", 3, "X1"), ("targeted+plan", 2, "X1"),
                    ("targeted+plan", 3, "X1"), ("exhaustive", 2, "X1"), ("exhaustive", 3, "X1"),
                    ("exhaustive+plan", 2, "X1"), ("exhaustive+plan", 3, "X1")]
    first = summary[0]
    assert (first.lines, first.undefined) == (5, 1)
    assert first.return_ratio.n == 4 and not first.return_ratio.has_interval  # n < 5: mean only
    assert first.return_ratio.mean == pytest.approx(0.8 + 0.15)
    # the speedup is the geometric mean: (10 * 100 * 1000 * 10000 * 10) ** (1/5), not the arithmetic 2224
    assert first.speedup.mean == pytest.approx(10.0 ** (11 / 5))
    assert first.speedup.n == 5 and first.speedup.has_interval and 0 < first.speedup.low < first.speedup.high
    assert first.speedup_undefined == 0
    assert first.return_difference.n == 5 and first.return_difference.has_interval
    assert first.return_difference.mean == pytest.approx(np.mean([-20.0, -10.0, 0.0, 10.0, -10.0]))
    assert first.exit_rate == pytest.approx(0.8) and first.scratch_exit_rate == pytest.approx(0.8)
    assert first.configuration == Configuration("study", "sum", 0.0, __version__)
    assert summary[1].return_difference.n == 4 and not summary[1].return_difference.has_interval
    text = format_summary(summary)
    lines = text.splitlines()
    assert len(lines) == 2 + len(summary) + 2  # header, rule, groups, blank, legend
    assert "exhaustive+plan" in text and "return ratio (95% CI)" in lines[0]
    assert lines[0].split()[:4] == ["rules", "operator", "gamma", "lever"]
    assert all(line.split()[:4] == ["study", "sum", "0", __version__] for line in lines[2:2 + len(summary)])
    assert "no interval below n=5" in lines[2] and "± " not in text
    assert "?" in format_summary(summarize(synthetic_rows())).splitlines()[2]  # configuration unknown
    # budgets are never pooled: each is its own group, after the size, in the table's order
    mixed = summarize([*synthetic_rows()[:2], replace(synthetic_rows()[0], budget="X5")])
    assert [(s.n_components, s.budget, s.lines) for s in mixed] == [(2, "X1", 1), (2, "X5", 1), (3, "X1", 1)]
    with pytest.raises(LeverError, match="empty"):
        summarize([])


def test_summary_json_is_strict(tmp_path):
    rows = [*synthetic_rows(), make_row(layout_seed=7, strategy="beam:3", speedup=math.inf,
                                        scratch_return=0.0, return_ratio=math.nan)]
    text = summary_json(summarize(rows, Configuration("linear", "max", 0.5)), {"results": "x.csv"})
    document = json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in strict JSON"))
    assert document["lever_version"] == __version__ and document["results"] == "x.csv"
    beam = [g for g in document["groups"] if g["strategy"] == "beam:3"][0]
    assert (beam["rules"], beam["operator"], beam["gamma"], beam["lever_version"]) == (
        "linear", "max", 0.5, __version__)
    assert beam["return_ratio"] is None and beam["speedup"] is None and beam["speedup_undefined"] == 1
    first = document["groups"][0]
    assert first["return_ratio"]["n"] == 4 and first["return_ratio"]["low"] is None
    assert first["speedup"]["low"] > 0 and first["speedup"]["mean"] == pytest.approx(10.0 ** (11 / 5))


def test_figures_are_written(tmp_path):
    paths = write_figures(synthetic_rows(), tmp_path / "figs")
    assert [p.name for p in paths] == FIGURE_NAMES
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(MAGIC[path.suffix[1:]]) and len(data) > 5000
    # a sweep without planning and without the lever still draws every figure
    plain = [replace(r, planning=False, long_horizon=False) for r in synthetic_rows()]
    assert all(p.stat().st_size > 5000 for p in write_figures(plain, tmp_path / "plain"))
    with pytest.raises(LeverError, match="empty"):
        write_figures([], tmp_path / "none")


def test_figures_have_one_panel_per_budget():
    rows = [replace(r, budget=budget) for budget in ("X1", "X5", "X10") for r in synthetic_rows()]
    figure = ratio_speedup_figure(rows)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["Return ratio, X1", "Return ratio, X5", "Return ratio, X10",
                      "Speedup, X1", "Speedup, X5", "Speedup, X10"]
    assert [len(ratio_vs_coverage_figure(rows).axes), len(long_horizon_figure(rows).axes)] == [3, 3]
    assert len(ratio_speedup_figure(synthetic_rows()).axes) == 2  # one budget: one column
    for ax in figure.axes:
        if ax.get_title().startswith("Speedup"):
            assert ax.get_yscale() == "log"
            # whiskers come from the log-scale bootstrap interval: every drawn bound is above zero
            for collection in ax.collections:
                for segment in collection.get_segments():
                    assert (np.asarray(segment)[:, 1] > 0).all()
    # n = 4 per (strategy, size) for ratios: no whiskers; speedups n = 4 or 5: whiskers only where n >= 5
    ratio_axes = [ax for ax in figure.axes if ax.get_title().startswith("Return ratio")]
    assert all(not ax.collections for ax in ratio_axes)
    dense = [replace(r, layout_seed=r.layout_seed + 10 * k) for k in range(2) for r in synthetic_rows()]
    dense_ratio = [ax for ax in ratio_speedup_figure(dense).axes if ax.get_title().startswith("Return ratio")]
    assert all(ax.collections for ax in dense_ratio)  # n = 8 per bar: whiskers shown


def test_table_round_trip_and_bad_files(tmp_path):
    rows = synthetic_rows()
    write_table(rows, tmp_path)
    back = read_table(tmp_path / "results.csv")
    assert len(back) == len(rows)
    assert all(a == b for a, b in zip(back[:-1], rows[:-1]))
    assert math.isnan(back[-1].return_ratio)
    with pytest.raises(FileFormatError, match="no such results file"):
        read_table(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(FileFormatError, match="not a lever sweep table"):
        read_table(bad)
    text = (tmp_path / "results.csv").read_text().splitlines()
    truncated = tmp_path / "trunc.csv"
    truncated.write_text("\n".join(text[:2] + [text[2][:30]]) + "\n")
    with pytest.raises(FileFormatError, match="line 3"):
        read_table(truncated)


def test_report_command_on_a_real_sweep(tmp_path, capsys):
    from lever.sweep import SweepConfig

    config = SweepConfig.preset("quick", layout_seeds=(1,), composites=("path+gold", "gold+lever"),
                                episodes=300, timing_repeats=1)
    run_sweep(config, tmp_path / "sweep", jobs=1, progress=False)
    assert main(["report", str(tmp_path / "sweep")]) == 0
    printed = capsys.readouterr().out
    assert "beam:3+plan" in printed and "figure:" in printed
    header = printed.splitlines()[0].split()
    assert header[:4] == ["rules", "operator", "gamma", "lever"]
    assert printed.splitlines()[2].split()[:4] == ["study", config.operator, f"{config.gamma:g}", __version__]
    assert sorted(p.name for p in (tmp_path / "sweep" / "figures").iterdir()) == sorted(FIGURE_NAMES)
    assert main(["report", str(tmp_path / "sweep" / "results.csv"), "--out", str(tmp_path / "f")]) == 0
    capsys.readouterr()
    for ext in ("png", "svg", "pdf"):
        files = list((tmp_path / "f").glob(f"*.{ext}"))
        assert len(files) == 3 and all(f.stat().st_size > 0 for f in files)
    # --json: the summary alone on stdout, strict JSON with the configuration fields
    assert main(["report", str(tmp_path / "sweep"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out,
                          parse_constant=lambda token: pytest.fail(f"{token} in strict JSON"))
    assert document["lever_version"] == __version__ and document["figures"] == []
    assert document["groups"] and all(
        (g["rules"], g["operator"], g["gamma"], g["lever_version"]) == (
            config.rules, config.operator, config.gamma, __version__) for g in document["groups"])
    assert main(["report", str(tmp_path / "sweep"), "--json", "--out", str(tmp_path / "j")]) == 0
    assert len(json.loads(capsys.readouterr().out)["figures"]) == 9
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such results file" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe\x00\x01binary\x89PNG", "not UTF-8"),
    (b"setting,budget\x00\x00\n", "not a lever sweep table"),
    (None, "no results.csv"),
    ("missing", "no such results file"),
])
def test_report_refuses_bad_results_in_one_line(tmp_path, capsys, content, message):
    if content is None:
        target = tmp_path / "empty_sweep"
        target.mkdir()
    elif content == "missing":
        target = tmp_path / "missing.csv"
    else:
        target = tmp_path / "results.csv"
        target.write_bytes(content)
    with pytest.raises(FileFormatError, match=message):
        load_results(target)
    for extra in ([], ["--json"]):
        assert main(["report", str(target), *extra]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and message in captured.err and len(captured.err.strip().splitlines()) == 1
