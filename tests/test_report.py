"""The sweep report: intervals, grouping, the printed table, the figures and the ``lever report`` command."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from lever.cli import main
from lever.errors import FileFormatError, LeverError
from lever.report import Interval, format_summary, summarize, write_figures
from lever.sweep import SweepRow, read_table, run_sweep, write_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
                    rows.append(make_row(layout_seed=seed, strategy=strategy, planning=planning,
                                         composite=composite, n_components=size,
                                         long_horizon="lever" in composite,
                                         return_ratio=ratio + 0.1 * seed + 0.05 * planning,
                                         speedup=10.0 ** (seed + 1), support_coverage=0.2 * (seed + 1)))
    rows.append(make_row(layout_seed=9, return_ratio=math.nan, scratch_return=-5.0, scratch_end="hazard",
                         true_end="hazard"))
    return rows


def test_interval_is_the_t_interval():
    values = [1.0, 2.0, 4.0, 7.0]
    interval = Interval.of(values + [math.nan])
    assert interval.n == 4
    assert interval.mean == pytest.approx(3.5)
    assert interval.half_width == pytest.approx(3.182 * np.std(values, ddof=1) / 2)
    assert interval.low < 3.5 < interval.high
    assert Interval.of([2.0]).n == 1 and math.isnan(Interval.of([2.0]).half_width)
    assert Interval.of([]).n == 0 and str(Interval.of([])) == "-"
    many = Interval.of(list(range(100)))
    assert many.half_width == pytest.approx(1.96 * np.std(range(100), ddof=1) / 10)


def test_summary_groups_and_counts_undefined_ratios():
    summary = summarize(synthetic_rows())
    keys = [(s.strategy, s.n_components, s.budget) for s in summary]
    assert keys == [("targeted", 2, "X1"), ("targeted", 3, "X1"), ("targeted+plan", 2, "X1"),
                    ("targeted+plan", 3, "X1"), ("exhaustive", 2, "X1"), ("exhaustive", 3, "X1"),
                    ("exhaustive+plan", 2, "X1"), ("exhaustive+plan", 3, "X1")]
    first = summary[0]
    assert (first.lines, first.undefined) == (5, 1)
    assert first.return_ratio.n == 4
    assert first.return_ratio.mean == pytest.approx(0.8 + 0.15)
    assert first.speedup.mean == pytest.approx(np.mean([10, 100, 1000, 10000, 10]))
    assert first.return_difference.n == 5 and first.return_difference.mean == pytest.approx(-10.0)
    assert first.exit_rate == pytest.approx(0.8) and first.scratch_exit_rate == pytest.approx(0.8)
    text = format_summary(summary)
    lines = text.splitlines()
    assert len(lines) == 2 + len(summary)
    assert "exhaustive+plan" in text and "return ratio (95% CI)" in lines[0]
    with pytest.raises(LeverError, match="empty"):
        summarize([])


def test_figures_are_written(tmp_path):
    paths = write_figures(synthetic_rows(), tmp_path / "figs")
    assert [p.name for p in paths] == ["ratio_speedup.png", "ratio_vs_coverage.png", "long_horizon.png"]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    # a sweep without planning and without the lever still draws every figure
    plain = [replace(r, planning=False, long_horizon=False) for r in synthetic_rows()]
    assert all(p.stat().st_size > 5000 for p in write_figures(plain, tmp_path / "plain"))
    with pytest.raises(LeverError, match="empty"):
        write_figures([], tmp_path / "none")


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
    assert sorted(p.name for p in (tmp_path / "sweep" / "figures").iterdir()) == [
        "long_horizon.png", "ratio_speedup.png", "ratio_vs_coverage.png"]
    assert main(["report", str(tmp_path / "sweep" / "results.csv"), "--figures", str(tmp_path / "f")]) == 0
    assert len(list((tmp_path / "f").glob("*.png"))) == 3
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such results file" in capsys.readouterr().err
