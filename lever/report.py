"""Summaries and figures of a sweep's results table.

:func:`summarize` groups the table by strategy (with or without planning on
the support), composite size and budget, and gives the mean and a 95%
Student-t interval of the return ratio and of the speedup per group;
:func:`format_summary` prints it; :func:`write_figures` draws the study's
views as PNG files (figures are drawn on their own canvas; matplotlib's
global backend and pyplot are left alone).

Lines whose return ratio is undefined (from-scratch return <= 0, see
:mod:`lever.sweep.table`) are left out of the ratio statistics and counted in the
``undefined`` column, so a reader sees how many there were.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from .errors import LeverError
from .sweep.table import SweepRow, read_table

# Two-sided 95% Student-t quantiles for 1..30 degrees of freedom; beyond 30 the normal 1.96 is within 2%.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values and the half-width of its 95% t interval (nan for fewer than two values)."""

    mean: float
    half_width: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Interval":
        """The interval of ``values``, ignoring NaN and infinite ones."""
        values = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
        n = values.size
        if n == 0:
            return cls(math.nan, math.nan, 0)
        if n == 1:
            return cls(float(values[0]), math.nan, 1)
        t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
        return cls(float(values.mean()), float(t * values.std(ddof=1) / math.sqrt(n)), n)

    @property
    def low(self) -> float:
        """Lower end of the interval, mean − half-width."""
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        """Upper end of the interval, mean + half-width."""
        return self.mean + self.half_width

    def __str__(self) -> str:
        if self.n == 0:
            return "-"
        if self.n == 1 or math.isnan(self.half_width):
            return f"{self.mean:.3g}"
        return f"{self.mean:.3g} ± {self.half_width:.2g}"


def strategy_label(row: SweepRow) -> str:
    """``"hybrid:3"``, or ``"hybrid:3+plan"`` for the line with planning on the support."""
    return f"{row.strategy}+plan" if row.planning else row.strategy


@dataclass(frozen=True)
class SummaryRow:
    """One group of the summary: a strategy on composites of one size at one budget.

    ``lines`` table lines in the group; ``undefined`` of them without a
    return ratio; ``return_ratio``, ``return_difference`` (composed minus
    from-scratch return, defined on every line) and ``speedup`` their
    intervals; ``exit_rate``
    the fraction whose true rollout reached the exit (scratch for comparison).
    """

    strategy: str
    n_components: int
    budget: str
    lines: int
    undefined: int
    return_ratio: Interval
    return_difference: Interval
    speedup: Interval
    exit_rate: float
    scratch_exit_rate: float


def _strategy_order(rows: Sequence[SweepRow]) -> list[str]:
    return list(dict.fromkeys(strategy_label(r) for r in rows))


def summarize(rows: Sequence[SweepRow]) -> list[SummaryRow]:
    """Group ``rows`` by (strategy, composite size, budget); strategies and budgets keep the table's order."""
    if not rows:
        raise LeverError("the results table is empty")
    groups: dict[tuple, list[SweepRow]] = {}
    order = {label: i for i, label in enumerate(_strategy_order(rows))}
    budgets = {budget: i for i, budget in enumerate(dict.fromkeys(r.budget for r in rows))}
    for row in rows:
        groups.setdefault((strategy_label(row), row.n_components, row.budget), []).append(row)
    summary = []
    for (label, size, budget), members in sorted(
            groups.items(), key=lambda item: (order[item[0][0]], item[0][1], budgets[item[0][2]])):
        ratios = [r.return_ratio for r in members]
        summary.append(SummaryRow(
            strategy=label, n_components=size, budget=budget, lines=len(members),
            undefined=sum(not math.isfinite(v) for v in ratios),
            return_ratio=Interval.of(ratios),
            return_difference=Interval.of([r.return_difference for r in members]),
            speedup=Interval.of([r.speedup for r in members]),
            exit_rate=float(np.mean([r.true_end == "exit" for r in members])),
            scratch_exit_rate=float(np.mean([r.scratch_end == "exit" for r in members]))))
    return summary


def format_summary(summary: Sequence[SummaryRow]) -> str:
    """A plain-text table of :func:`summarize`'s groups, one line per group."""
    header = ("strategy", "size", "budget", "lines", "undef", "return ratio (95% CI)", "return diff (95% CI)",
              "speedup (95% CI)", "exit", "scratch exit")
    lines = [(s.strategy, str(s.n_components), s.budget, str(s.lines), str(s.undefined), str(s.return_ratio),
              str(s.return_difference), str(s.speedup), f"{s.exit_rate:.0%}", f"{s.scratch_exit_rate:.0%}")
             for s in summary]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    def fmt(cells):
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def load_results(path: str | os.PathLike) -> list[SweepRow]:
    """The table of a sweep directory or of a ``results.csv`` file."""
    return read_table(path)


def _half_widths(intervals: Sequence[Interval]) -> np.ndarray:
    """Error-bar lengths: each interval's half-width, 0 where it has none."""
    return np.array([0.0 if math.isnan(iv.half_width) else iv.half_width for iv in intervals])


def _bar_panel(ax, rows: Sequence[SweepRow], value: str, log: bool) -> None:
    """Grouped bars: one group per strategy, one bar per composite size, with 95% intervals."""
    labels = _strategy_order(rows)
    sizes = sorted({r.n_components for r in rows})
    width = 0.8 / len(sizes)
    for j, size in enumerate(sizes):
        intervals = [Interval.of([getattr(r, value) for r in rows
                                  if strategy_label(r) == label and r.n_components == size]) for label in labels]
        means = np.array([iv.mean for iv in intervals])
        errors = _half_widths(intervals)
        if log:  # a symmetric interval can reach below zero; clip its lower arm on a log axis
            lower = np.minimum(errors, np.where(means > 0, means * 0.999, 0))
            errors = np.vstack([lower, errors])
        x = np.arange(len(labels)) + (j - (len(sizes) - 1) / 2) * width
        ax.bar(x, means, width, yerr=errors, capsize=3, label=f"{size} component{'s' * (size > 1)}")
    ax.set_xticks(np.arange(len(labels)), labels, rotation=20, ha="right")
    if log:
        ax.set_yscale("log")


def write_figures(rows: Sequence[SweepRow], directory: str | os.PathLike) -> list[Path]:
    """Draw the report's figures as PNG files under ``directory``; returns their paths.

    ``ratio_speedup.png`` mean return ratio and speedup per strategy and
    composite size (the study's average-results figure);
    ``ratio_vs_coverage.png`` return ratio against the support coverage of
    the chosen combination; ``long_horizon.png`` return ratio on composites
    with the lever, each strategy with and without planning on the support.
    """
    if not rows:
        raise LeverError("the results table is empty: nothing to draw")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in (("ratio_speedup.png", _ratio_speedup), ("ratio_vs_coverage.png", _ratio_vs_coverage),
                       ("long_horizon.png", _long_horizon)):
        fig = draw(rows)
        fig.tight_layout()
        paths.append(directory / name)
        fig.savefig(paths[-1], dpi=120)
    return paths


def _ratio_speedup(rows: Sequence[SweepRow]) -> Figure:
    fig = Figure(figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    _bar_panel(left, rows, "return_ratio", log=False)
    left.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    left.set_ylabel("return ratio (composed / from scratch)")
    left.set_title("Return ratio")
    left.legend(fontsize=8)
    _bar_panel(right, rows, "speedup", log=True)
    right.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    right.set_ylabel("speedup (scratch time / strategy time)")
    right.set_title("Speedup")
    fig.suptitle("Composition against training from scratch (mean, 95% interval)")
    return fig


def _ratio_vs_coverage(rows: Sequence[SweepRow]) -> Figure:
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    for label in _strategy_order(rows):
        chosen = [r for r in rows if strategy_label(r) == label and math.isfinite(r.return_ratio)]
        ax.scatter([r.support_coverage for r in chosen], [r.return_ratio for r in chosen], s=14, alpha=0.7,
                   label=label)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("support coverage of the chosen combination (fraction of (s, a) pairs)")
    ax.set_ylabel("return ratio")
    ax.set_title("Reuse depends on coverage")
    ax.legend(fontsize=8)
    return fig


def _long_horizon(rows: Sequence[SweepRow]) -> Figure:
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    long_rows = [r for r in rows if r.long_horizon]
    strategies = list(dict.fromkeys(r.strategy for r in rows))
    x = np.arange(len(strategies))
    for offset, planning, name in ((-0.2, False, "composition only"), (0.2, True, "with planning on the support")):
        intervals = [Interval.of([r.return_ratio for r in long_rows if r.strategy == s and r.planning == planning])
                     for s in strategies]
        if all(iv.n == 0 for iv in intervals):
            continue
        errors = _half_widths(intervals)
        ax.bar(x + offset, [iv.mean for iv in intervals], 0.4, yerr=errors, capsize=3, label=name)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(x, strategies)
    ax.set_ylabel("return ratio")
    ax.set_title("Long-horizon composites (with the lever)" if long_rows else
                 "Long-horizon composites: none in this sweep")
    if long_rows:
        ax.legend(fontsize=8, loc="lower right")
    return fig
