"""Summaries and figures of a sweep's results table.

:func:`summarize` groups the table by configuration (rules, operator, γ),
strategy (with or without planning on the support), composite size and
budget, and gives per group:

* the **speedup** (from-scratch time / strategy time, a ratio of times) as a
  geometric mean with a percentile-bootstrap interval taken on the log
  scale (:func:`lever.stats.geometric_mean_ci`), so it never crosses zero;
* the **return difference** (composed minus from-scratch return, in reward
  units) as a mean with a bootstrap interval
  (:func:`lever.stats.bootstrap_ci`);
* the **return ratio** (composed / from-scratch return) only over lines
  where training from scratch earned more than zero
  (:func:`lever.stats.safe_ratio`); the lines left out are counted in the
  ``undefined`` column, so a reader sees how many there were.

Every interval is a :class:`lever.stats.Interval`; below
:data:`lever.stats.MIN_N_FOR_INTERVAL` values only the mean is given and the
table says ``n=…, no interval below n=5``. Resampling is seeded, so the same
table gives the same report.

:func:`format_summary` prints the groups as a plain-text table (with the
configuration columns rules, operator, γ and the lever version);
:func:`summary_json` gives them as strict JSON; :func:`write_figures` draws
the study's views with one panel per budget, as PNG, SVG and PDF (figures are
drawn on their own :class:`matplotlib.figure.Figure`; matplotlib's global
backend and pyplot are left alone).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .errors import FileFormatError, LeverError
from .fileio import read_json
from .stats import MIN_N_FOR_INTERVAL, Interval, bootstrap_ci, geometric_mean_ci, safe_ratio
from .sweep.table import SweepRow, read_table
from .version import __version__

#: Formats every figure is written in, in this order.
FIGURE_FORMATS = ("png", "svg", "pdf")
#: Confidence level of every interval in the report.
CONFIDENCE = 0.95
#: Bootstrap resamples per interval, and the seed they are drawn with.
N_RESAMPLES = 10_000
SEED = 0

#: The sweep configuration fields shown beside every group (the lever version is added to them).
CONFIGURATION_FIELDS = ("rules", "operator", "gamma")


@dataclass(frozen=True)
class Configuration:
    """The settings a group of lines was computed under.

    ``rules`` the reward rules (``"study"``/``"linear"``), ``operator`` the
    composition operator (``"sum"``/``"max"``), ``gamma`` the discount of the
    library and the baseline (dimensionless, in [0, 1]); each ``None`` when
    neither the table nor the sweep's ``sweep.json`` records it.
    ``lever_version`` the lever that computed this report.
    """

    rules: str | None = None
    operator: str | None = None
    gamma: float | None = None
    lever_version: str = __version__

    def cells(self) -> tuple[str, str, str, str]:
        """The four table cells (unknown values as ``"?"``)."""
        return (self.rules or "?", self.operator or "?", "?" if self.gamma is None else f"{self.gamma:g}",
                self.lever_version)


def strategy_label(row: SweepRow) -> str:
    """``"hybrid:3"``, or ``"hybrid:3+plan"`` for the line with planning on the support."""
    return f"{row.strategy}+plan" if row.planning else row.strategy


@dataclass(frozen=True)
class SummaryRow:
    """One group of the summary: a strategy on composites of one size at one budget, under one configuration.

    ``lines`` table lines in the group. ``return_ratio`` the mean return
    ratio (dimensionless) over the lines whose from-scratch return is > 0,
    ``None`` when there is none; ``undefined`` the lines left out of it.
    ``return_difference`` the mean of composed minus from-scratch return
    (reward units) over every line with a finite difference. ``speedup`` the
    geometric mean of from-scratch time / strategy time (dimensionless) over
    the lines with a finite positive speedup, ``None`` when there is none;
    ``speedup_undefined`` the lines left out of it. ``exit_rate`` the
    fraction of lines whose true rollout reached the exit
    (``scratch_exit_rate`` the same for training from scratch), in [0, 1].
    """

    strategy: str
    n_components: int
    budget: str
    configuration: Configuration
    lines: int
    undefined: int
    return_ratio: Interval | None
    return_difference: Interval | None
    speedup: Interval | None
    speedup_undefined: int
    exit_rate: float
    scratch_exit_rate: float


def mean_interval(values: Sequence[float] | np.ndarray) -> Interval | None:
    """Mean and 95% bootstrap interval of the finite entries of ``values`` (shape (n,)); ``None`` if none.

    NaN and infinite entries are dropped first (the caller counts them). The
    interval is hidden (NaN bounds) below :data:`~lever.stats.MIN_N_FOR_INTERVAL` values.
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None
    return bootstrap_ci(finite, CONFIDENCE, N_RESAMPLES, SEED)


def geometric_interval(values: Sequence[float] | np.ndarray) -> Interval | None:
    """Geometric mean and 95% log-scale bootstrap interval of the finite, positive entries of ``values``.

    ``values`` shape (n,), e.g. speedups; NaN, infinite and non-positive
    entries are dropped first (the caller counts them); ``None`` if none is
    left. The interval is hidden below :data:`~lever.stats.MIN_N_FOR_INTERVAL` values.
    """
    kept = np.asarray(values, dtype=np.float64)
    kept = kept[np.isfinite(kept) & (kept > 0)]
    if kept.size == 0:
        return None
    return geometric_mean_ci(kept, CONFIDENCE, N_RESAMPLES, SEED)


def _ratios(rows: Sequence[SweepRow]) -> np.ndarray:
    """Return ratios recomputed from the returns, NaN where the from-scratch return is <= 0; shape (len(rows),)."""
    return np.asarray(safe_ratio(np.array([r.true_return for r in rows], dtype=np.float64),
                                 np.array([r.scratch_return for r in rows], dtype=np.float64)), dtype=np.float64)


def _configuration(row: SweepRow, sweep: Configuration) -> Configuration:
    """The row's own configuration fields where the table has them, else the sweep's."""
    gamma = getattr(row, "gamma", sweep.gamma)
    return Configuration(rules=getattr(row, "rules", sweep.rules), operator=getattr(row, "operator", sweep.operator),
                         gamma=None if gamma is None else float(gamma), lever_version=sweep.lever_version)


def _strategy_order(rows: Sequence[SweepRow]) -> list[str]:
    return list(dict.fromkeys(strategy_label(r) for r in rows))


def _budget_order(rows: Sequence[SweepRow]) -> list[str]:
    return list(dict.fromkeys(r.budget for r in rows))


def summarize(rows: Sequence[SweepRow], configuration: Configuration | None = None) -> list[SummaryRow]:
    """Group ``rows`` by (configuration, strategy, composite size, budget), in the table's order.

    ``configuration`` the sweep's settings (:func:`load_configuration`) for
    the fields the table itself does not carry; unknown when omitted.
    Raises :class:`LeverError` on an empty table.
    """
    if not rows:
        raise LeverError("the results table is empty")
    sweep = configuration or Configuration()
    order = {label: i for i, label in enumerate(_strategy_order(rows))}
    budgets = {budget: i for i, budget in enumerate(_budget_order(rows))}
    groups: dict[tuple, list[SweepRow]] = {}
    for row in rows:
        groups.setdefault((_configuration(row, sweep), strategy_label(row), row.n_components, row.budget),
                          []).append(row)
    configs = {config: i for i, config in enumerate(dict.fromkeys(key[0] for key in groups))}
    summary = []
    for (config, label, size, budget), members in sorted(
            groups.items(), key=lambda item: (configs[item[0][0]], order[item[0][1]], item[0][2],
                                              budgets[item[0][3]])):
        ratios = _ratios(members)
        speedups = np.array([r.speedup for r in members], dtype=np.float64)
        summary.append(SummaryRow(
            strategy=label, n_components=size, budget=budget, configuration=config, lines=len(members),
            undefined=int(np.isnan(ratios).sum()), return_ratio=mean_interval(ratios),
            return_difference=mean_interval([r.return_difference for r in members]),
            speedup=geometric_interval(speedups),
            speedup_undefined=int((~(np.isfinite(speedups) & (speedups > 0))).sum()),
            exit_rate=float(np.mean([r.true_end == "exit" for r in members])),
            scratch_exit_rate=float(np.mean([r.scratch_end == "exit" for r in members]))))
    return summary


def _number(value: float) -> str:
    """Three significant digits, without an exponent from 0.001 on (``0.953``, ``12.3``, ``12346``)."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) < 1e-3:
        return f"{value:.3g}"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def format_interval(interval: Interval | None) -> str:
    """``"0.953 [0.871, 1.04] (n=5)"``, ``"0.953 (n=4, no interval below n=5)"``, or ``"-"`` for ``None``.

    The same form as ``str(Interval)`` with three significant digits, so
    ratios near 1 and large speedups both keep their precision.
    """
    if interval is None:
        return "-"
    if interval.has_interval:
        return (f"{_number(interval.mean)} [{_number(interval.low)}, {_number(interval.high)}] "
                f"(n={interval.n})")
    return f"{_number(interval.mean)} (n={interval.n}, no interval below n={MIN_N_FOR_INTERVAL})"


def format_summary(summary: Sequence[SummaryRow]) -> str:
    """A plain-text table of :func:`summarize`'s groups, one line per group, configuration columns first."""
    header = ("rules", "operator", "gamma", "lever", "strategy", "size", "budget", "lines", "undef",
              "return ratio (95% CI)", "return diff (95% CI)", "speedup, geometric (95% CI)", "exit",
              "scratch exit")
    lines = []
    for s in summary:
        speedup = format_interval(s.speedup)
        if s.speedup_undefined:
            speedup += f", {s.speedup_undefined} left out"
        lines.append((*s.configuration.cells(), s.strategy, str(s.n_components), s.budget, str(s.lines),
                      str(s.undefined), format_interval(s.return_ratio), format_interval(s.return_difference),
                      speedup, f"{s.exit_rate:.0%}", f"{s.scratch_exit_rate:.0%}"))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    text_columns = 7

    def fmt(cells):
        return "  ".join(c.ljust(w) if i < text_columns else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    legend = (f"means with 95% percentile-bootstrap intervals ({N_RESAMPLES} resamples, seed {SEED}); speedup is "
              f"a geometric mean, its interval on the log scale; return ratio only where scratch return > 0 "
              f"(undef: lines left out); no interval below n={MIN_N_FOR_INTERVAL}")
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines), "", legend])


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _interval_json(interval: Interval | None) -> dict | None:
    if interval is None:
        return None
    return {"mean": _finite_or_none(interval.mean), "low": _finite_or_none(interval.low),
            "high": _finite_or_none(interval.high), "n": interval.n}


def summary_json(summary: Sequence[SummaryRow], extra: Mapping[str, Any] | None = None) -> str:
    """:func:`summarize`'s groups as strict JSON text (no NaN or infinity: undefined values are ``null``).

    Top level: ``lever_version``, ``confidence``, ``n_resamples``, ``seed``,
    ``min_n_for_interval``, the entries of ``extra`` (e.g. the results path),
    and ``groups``: one object per group with the configuration fields
    (``rules``, ``operator``, ``gamma``, ``lever_version``), ``strategy``,
    ``n_components``, ``budget``, ``lines``, ``undefined``,
    ``speedup_undefined``, the intervals ``return_ratio``,
    ``return_difference`` and ``speedup`` (each ``{mean, low, high, n}`` or
    ``null``; ``low``/``high`` ``null`` where the interval is hidden) and the
    exit rates.
    """
    groups = [{"rules": s.configuration.rules, "operator": s.configuration.operator,
               "gamma": _finite_or_none(s.configuration.gamma), "lever_version": s.configuration.lever_version,
               "strategy": s.strategy, "n_components": s.n_components, "budget": s.budget, "lines": s.lines,
               "undefined": s.undefined, "speedup_undefined": s.speedup_undefined,
               "return_ratio": _interval_json(s.return_ratio),
               "return_difference": _interval_json(s.return_difference), "speedup": _interval_json(s.speedup),
               "exit_rate": _finite_or_none(s.exit_rate), "scratch_exit_rate": _finite_or_none(s.scratch_exit_rate)}
              for s in summary]
    document = {"lever_version": __version__, "confidence": CONFIDENCE, "n_resamples": N_RESAMPLES, "seed": SEED,
                "min_n_for_interval": MIN_N_FOR_INTERVAL, **(extra or {}), "groups": groups}
    return json.dumps(document, indent=1, allow_nan=False)


def results_file(path: str | os.PathLike) -> Path:
    """The ``results.csv`` that ``path`` (a sweep directory or the file itself) names.

    Raises :class:`FileFormatError` if it does not exist, or if ``path`` is a
    directory without a ``results.csv``.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "results.csv").is_file():
            raise FileFormatError(f"{path}: directory holds no results.csv (not a finished lever sweep)")
        return path / "results.csv"
    if not path.exists():
        raise FileFormatError(f"{path}: no such results file")
    return path


def load_results(path: str | os.PathLike) -> list[SweepRow]:
    """The table of a sweep directory or of a ``results.csv`` file.

    Raises :class:`FileFormatError` naming the file when it is missing, a
    directory without ``results.csv``, binary or not UTF-8 text, unreadable,
    or not a lever sweep table.
    """
    path = results_file(path)
    try:
        return read_table(path)
    except UnicodeDecodeError:
        raise FileFormatError(f"{path}: not a lever sweep table (not UTF-8 text)") from None
    except csv.Error as exc:  # e.g. a binary file that decodes: "line contains NUL"
        raise FileFormatError(f"{path}: not a lever sweep table ({exc})") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None


def load_configuration(path: str | os.PathLike) -> Configuration:
    """The sweep's settings from the ``sweep.json`` beside the results (a sweep directory or its results.csv).

    Fields the manifest lacks (or all, when there is no ``sweep.json``) are
    ``None``; a ``sweep.json`` that is present but corrupt raises
    :class:`FileFormatError`.
    """
    path = Path(path)
    manifest = (path if path.is_dir() else path.parent) / "sweep.json"
    if not manifest.is_file():
        return Configuration()
    from .sweep.runner import FORMAT_VERSION, SWEEP_FORMAT

    config = read_json(manifest, SWEEP_FORMAT, FORMAT_VERSION).get("config")
    config = config if isinstance(config, dict) else {}
    gamma = config.get("gamma")
    rules, operator = config.get("rules"), config.get("operator")
    return Configuration(rules=rules if isinstance(rules, str) else None,
                         operator=operator if isinstance(operator, str) else None,
                         gamma=float(gamma) if isinstance(gamma, (int, float)) and not isinstance(gamma, bool)
                         else None)


# ----------------------------------------------------------------------------------------------- figures


def _error_bars(ax, x: np.ndarray, intervals: Sequence[Interval | None]) -> None:
    """Whiskers from each shown interval's bounds; none where the interval is hidden or missing."""
    shown = [(xi, iv) for xi, iv in zip(x, intervals) if iv is not None and iv.has_interval]
    if not shown:
        return
    xs = np.array([xi for xi, _ in shown])
    means = np.array([iv.mean for _, iv in shown])
    arms = np.vstack([[max(0.0, iv.mean - iv.low) for _, iv in shown],
                      [max(0.0, iv.high - iv.mean) for _, iv in shown]])
    ax.errorbar(xs, means, yerr=arms, fmt="none", ecolor="black", elinewidth=1, capsize=3)


def _bar_panel(ax, rows: Sequence[SweepRow], labels: Sequence[str], sizes: Sequence[int],
               statistic: Callable[[list[SweepRow]], Interval | None], log: bool) -> None:
    """Grouped bars: one group per strategy label, one bar per composite size, with bootstrap whiskers."""
    width = 0.8 / len(sizes)
    for j, size in enumerate(sizes):
        intervals = [statistic([r for r in rows if strategy_label(r) == label and r.n_components == size])
                     for label in labels]
        x = np.arange(len(labels)) + (j - (len(sizes) - 1) / 2) * width
        means = np.array([math.nan if iv is None else iv.mean for iv in intervals])
        ax.bar(x, means, width, color=f"C{j}",  # no bar (NaN) where a group has no value
               label=f"{size} component{'s' * (size > 1)}")
        _error_bars(ax, x, intervals)
    ax.set_xticks(np.arange(len(labels)), labels, rotation=20, ha="right")
    if log:
        ax.set_yscale("log")


def _ratio_statistic(rows: list[SweepRow]) -> Interval | None:
    return mean_interval(_ratios(rows)) if rows else None


def _speedup_statistic(rows: list[SweepRow]) -> Interval | None:
    return geometric_interval([r.speedup for r in rows]) if rows else None


def ratio_speedup_figure(rows: Sequence[SweepRow]) -> Figure:
    """Return ratio (top row) and speedup (bottom row) per strategy and composite size, one column per budget.

    Bars: mean return ratio over lines with a from-scratch return > 0
    (linear axis) and geometric-mean speedup (log axis); whiskers: the 95%
    bootstrap intervals, drawn only where there are at least
    :data:`~lever.stats.MIN_N_FOR_INTERVAL` values. Budgets are never pooled.
    """
    budgets, labels = _budget_order(rows), _strategy_order(rows)
    sizes = sorted({r.n_components for r in rows})
    fig = Figure(figsize=(4.2 * len(budgets) + 1.5, 7.6))
    axes = fig.subplots(2, len(budgets), squeeze=False, sharey="row")
    for column, budget in enumerate(budgets):
        members = [r for r in rows if r.budget == budget]
        top, bottom = axes[0, column], axes[1, column]
        _bar_panel(top, members, labels, sizes, _ratio_statistic, log=False)
        top.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        top.set_title(f"Return ratio, {budget}")
        _bar_panel(bottom, members, labels, sizes, _speedup_statistic, log=True)
        bottom.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        bottom.set_title(f"Speedup, {budget}")
    axes[0, 0].set_ylabel("return ratio (composed / scratch)")
    axes[1, 0].set_ylabel("speedup (scratch time / strategy time)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Composition against training from scratch (mean ratio, geometric-mean speedup; "
                 f"95% bootstrap interval, none below n={MIN_N_FOR_INTERVAL})", fontsize=10)
    return fig


def ratio_vs_coverage_figure(rows: Sequence[SweepRow]) -> Figure:
    """Return ratio of each line against the support coverage of its chosen combination, one panel per budget.

    x: fraction of (s, a) pairs on the support, in [0, 1]; y: return ratio
    (lines whose from-scratch return is <= 0 are left out, their count in the title).
    """
    budgets, labels = _budget_order(rows), _strategy_order(rows)
    fig = Figure(figsize=(5.0 * len(budgets) + 1.0, 4.5))
    axes = fig.subplots(1, len(budgets), squeeze=False, sharey="row")[0]
    for ax, budget in zip(axes, budgets):
        members = [r for r in rows if r.budget == budget]
        ratios = _ratios(members)
        for k, label in enumerate(labels):
            chosen = [(r.support_coverage, v) for r, v in zip(members, ratios)
                      if strategy_label(r) == label and math.isfinite(v)]
            ax.scatter([c for c, _ in chosen], [v for _, v in chosen], s=14, alpha=0.7, color=f"C{k}", label=label)
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlabel("support coverage of the chosen combination")
        left_out = int(np.isnan(ratios).sum())
        ax.set_title(f"{budget}" + (f" ({left_out} lines with scratch return <= 0 left out)" if left_out else ""),
                     fontsize=9)
    axes[0].set_ylabel("return ratio")
    axes[0].legend(fontsize=8)
    fig.suptitle("Reuse depends on coverage")
    return fig


def long_horizon_figure(rows: Sequence[SweepRow]) -> Figure:
    """Mean return ratio on composites with the lever, each strategy with and without planning, one panel per budget.

    Whiskers: 95% bootstrap intervals, drawn only from
    :data:`~lever.stats.MIN_N_FOR_INTERVAL` values on.
    """
    budgets = _budget_order(rows)
    strategies = list(dict.fromkeys(r.strategy for r in rows))
    fig = Figure(figsize=(4.5 * len(budgets) + 1.5, 4.2))
    axes = fig.subplots(1, len(budgets), squeeze=False, sharey="row")[0]
    x = np.arange(len(strategies))
    for ax, budget in zip(axes, budgets):
        long_rows = [r for r in rows if r.long_horizon and r.budget == budget]
        drawn = False
        for k, (offset, planning, name) in enumerate(((-0.2, False, "composition only"),
                                                      (0.2, True, "with planning on the support"))):
            intervals = [_ratio_statistic([r for r in long_rows if r.strategy == s and r.planning == planning])
                         for s in strategies]
            if all(iv is None for iv in intervals):
                continue
            drawn = True
            ax.bar(x + offset, [math.nan if iv is None else iv.mean for iv in intervals], 0.4, color=f"C{k}",
                   label=name)
            _error_bars(ax, x + offset, intervals)
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xticks(x, strategies, rotation=20, ha="right")
        ax.set_title(f"Long-horizon composites, {budget}" if long_rows else
                     f"{budget}: no long-horizon composites", fontsize=10)
        if drawn:
            ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("return ratio")
    return fig


#: The report's figures: file stem and builder.
FIGURES: tuple[tuple[str, Callable[[Sequence[SweepRow]], Figure]], ...] = (
    ("ratio_speedup", ratio_speedup_figure), ("ratio_vs_coverage", ratio_vs_coverage_figure),
    ("long_horizon", long_horizon_figure))

# No creation dates in the vector files, so the same table gives the same bytes.
_METADATA = {"png": None, "svg": {"Date": None}, "pdf": {"CreationDate": None}}


def write_figures(rows: Sequence[SweepRow], directory: str | os.PathLike) -> list[Path]:
    """Draw the report's figures under ``directory`` in every :data:`FIGURE_FORMATS`; returns their paths.

    ``ratio_speedup.*`` mean return ratio and geometric-mean speedup per
    strategy and composite size (the study's average-results figure);
    ``ratio_vs_coverage.*`` return ratio against the support coverage of the
    chosen combination; ``long_horizon.*`` return ratio on composites with
    the lever, each strategy with and without planning on the support. Each
    figure has one panel per budget. Paths are ordered figure by figure, each
    as ``.png``, ``.svg``, ``.pdf``.
    """
    if not rows:
        raise LeverError("the results table is empty: nothing to draw")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, draw in FIGURES:
        fig = draw(rows)
        fig.tight_layout()
        for extension in FIGURE_FORMATS:
            path = directory / f"{stem}.{extension}"
            fig.savefig(path, dpi=120, format=extension, metadata=_METADATA[extension])
            paths.append(path)
    return paths
