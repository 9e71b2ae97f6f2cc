"""The study's published numbers, the reference to set beside lever's, and its figures.

``lever/data/study_published.json`` holds the result tables of the LEVER
study's public code: per setting, budget and mode (and
per query) the mean return and time of scratch training and of the targeted,
hybrid and exhaustive reuse strategies, plus the hybrid-k sweep.

They come from the study's *first public release*: grid16-dense (16×16,
50 gold / 25 walls / 30 hazards), 30k/150k/300k episodes for X1/X5/X10 and
γ = 0.99, not the γ = 0 regime lever reproduces. Label them so wherever they
appear; :attr:`Published.provenance` carries the text.

How the study's headline times are composed (checked by the tests): a
reuse method's time is the mode mean of its composition time *plus* the
mode mean of the language-model decomposition time (``decomp_time``); the
scratch time is training alone. Targeted at X1 is 0.01 s + 17.27 s = 17.3 s.

The figure helpers draw on a fresh :class:`matplotlib.figure.Figure` and
never touch pyplot or the backend choice, so they are safe in libraries,
tests and worker processes.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .errors import FileFormatError, LeverError
from .protocol import METHODS

#: The format tag the data file must carry.
FORMAT = "lever-study-published/1"

#: Per method, the (return field, time field) of a table row.
METHOD_FIELDS: dict[str, tuple[str, str]] = {
    "scratch": ("scratch_reward", "scratch_time_s"),
    "targeted": ("targeted_reward", "targeted_time"),
    "hybrid": ("hybrid_reward", "hybrid_time"),
    "exhaustive": ("exhaustive_reward", "exhaustive_time"),
}

#: Numeric fields of a per-(budget, mode) row; ``n`` (runs averaged) is kept as int.
TABLE_FIELDS: tuple[str, ...] = tuple(f for pair in METHOD_FIELDS.values() for f in pair) \
    + ("decomp_time",)

#: How the study's numbers are labelled on every figure.
PUBLISHED_LABEL = "study (first release: grid16-dense, γ=0.99)"

#: Default footnote of :func:`figure_methods` when study numbers are drawn.
METHODS_NOTE = ("Study: means over seeds 0-4 and the 3 modes; its reuse-method times "
                "include the language-model decomposition time.")

_FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
_NO_DATES = {".svg": {"Date": None}, ".pdf": {"CreationDate": None, "ModDate": None}}


def _float(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise FileFormatError(f"study_published.json: {where} is not a number: {value!r}") from None


def _parse_rows(rows: Any, where: str, keys: Sequence[str]) -> tuple[dict, ...]:
    if not isinstance(rows, list) or not rows:
        raise FileFormatError(f"study_published.json: {where} must be a non-empty list")
    parsed = []
    for i, row in enumerate(rows):
        missing = [k for k in ("budget", "mode", "n", *keys) if k not in row]
        if missing:
            raise FileFormatError(f"study_published.json: {where}[{i}] lacks {missing}")
        out = {"budget": str(row["budget"]), "mode": str(row["mode"])}
        if "query" in row:
            out["query"] = str(row["query"])
        out["n"] = int(_float(row["n"], f"{where}[{i}].n"))
        out.update({k: _float(row[k], f"{where}[{i}].{k}") for k in keys})
        parsed.append(out)
    return tuple(parsed)


class Published:
    """The study's published tables, parsed once and handed out as fresh copies.

    Build it with :func:`load_published` (the shipped file) or
    :meth:`from_dict` (a document of the same format). Rewards are mean
    returns, times are in seconds, ``n`` is the number of runs averaged.
    """

    def __init__(self, provenance: str, tables: Mapping[str, tuple[dict, ...]],
                 per_query: Mapping[str, tuple[dict, ...]], k_sweep: tuple[dict, ...]):
        self._provenance = provenance
        self._tables = dict(tables)
        self._per_query = dict(per_query)
        self._k_sweep = k_sweep

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> "Published":
        """Parse a ``lever-study-published/1`` document; :class:`FileFormatError` if malformed."""
        if not isinstance(document, Mapping) or document.get("format") != FORMAT:
            raise FileFormatError(f"study_published.json: format must be {FORMAT!r}")
        for key in ("source", "config_16", "note", "tables", "hybrid_k_sweep"):
            if key not in document:
                raise FileFormatError(f"study_published.json: missing {key!r}")
        tables = {name: _parse_rows(rows, f"tables.{name}", TABLE_FIELDS)
                  for name, rows in document["tables"].items()}
        per_query = {name: _parse_rows(rows, f"per_query.{name}", TABLE_FIELDS[:-1])
                     for name, rows in document.get("per_query", {}).items()}
        sweep = []
        for i, row in enumerate(document["hybrid_k_sweep"]):
            where = f"hybrid_k_sweep[{i}]"
            parsed = {}
            for key, value in row.items():
                number = _float(value, f"{where}.{key}")
                is_count = key == "k" or key.startswith("runs_") or key.startswith("min_")
                parsed[key] = int(number) if is_count else number
            if not {"k", "avg_reward", "avg_time_s"} <= parsed.keys():
                raise FileFormatError(f"study_published.json: {where} lacks k/avg_reward/avg_time_s")
            sweep.append(parsed)
        return cls(_provenance_text(document), tables, per_query,
                   tuple(sorted(sweep, key=lambda r: r["k"])))

    @property
    def provenance(self) -> str:
        """Where these numbers come from and what they are (plain text, several sentences)."""
        return self._provenance

    @property
    def settings(self) -> tuple[str, ...]:
        """Names of the settings with a table, e.g. ``("grid16-dense", "grid32-first-release")``."""
        return tuple(self._tables)

    def _rows(self, source: Mapping[str, tuple[dict, ...]], setting: str) -> list[dict]:
        if setting not in source:
            raise LeverError(f"setting must be one of {sorted(source)}, got {setting!r}")
        return [dict(row) for row in source[setting]]

    def table(self, setting: str = "grid16-dense") -> list[dict]:
        """One row per (budget, mode): budget, mode, n (int) and float fields.

        Float fields: scratch_reward, targeted_reward, hybrid_reward,
        exhaustive_reward (mean returns); scratch_time_s, targeted_time,
        hybrid_time, exhaustive_time, decomp_time (seconds; the method times
        exclude decomposition). Rows are fresh dicts in file order.
        """
        return self._rows(self._tables, setting)

    def per_query(self, setting: str = "grid16-dense") -> list[dict]:
        """One row per (budget, mode, query), fields as :meth:`table` plus ``query``, no decomp_time."""
        return self._rows(self._per_query, setting)

    def method_means(self, setting: str = "grid16-dense", include_decomposition: bool = True
                     ) -> dict[str, dict[str, tuple[float, float]]]:
        """Per budget and method, (mean return, mean time in s), the study's figure pair.

        Each value is the unweighted mean over the three modes (not weighted
        by runs). With ``include_decomposition`` (the default, and how the
        study's figures count it) the mode mean of
        ``decomp_time`` is added to the time of targeted, hybrid and
        exhaustive; scratch time is training alone either way. Budgets and
        methods appear in file order and :data:`lever.protocol.METHODS` order.
        """
        rows = self.table(setting)
        budgets = list(dict.fromkeys(row["budget"] for row in rows))
        means: dict[str, dict[str, tuple[float, float]]] = {}
        for budget in budgets:
            group = [row for row in rows if row["budget"] == budget]
            decomp = float(np.mean([row["decomp_time"] for row in group]))
            means[budget] = {}
            for method in METHODS:
                reward_field, time_field = METHOD_FIELDS[method]
                reward = float(np.mean([row[reward_field] for row in group]))
                time_s = float(np.mean([row[time_field] for row in group]))
                if include_decomposition and method != "scratch":
                    time_s += decomp
                means[budget][method] = (reward, time_s)
        return means

    def k_sweep(self) -> list[dict]:
        """The study's hybrid-k sweep, one row per k, ascending (k = 2, 3, 4 are published).

        Keys: k, avg_reward, avg_time_s (decomposition included), and the
        file's other columns (avg_hybrid_time_s, avg_decomp_time_s,
        avg_search_time_s, avg_combo_time_s as floats; runs_used, runs_total,
        min_candidates as ints). Means over the sweep's runs (``runs_used`` of
        ``runs_total``), not over modes; a separate run from :meth:`table`'s hybrid.
        """
        return [dict(row) for row in self._k_sweep]


def _provenance_text(document: Mapping[str, Any]) -> str:
    return (
        "Published numbers of the LEVER study (Vitenko, Ibrahim, Amer-Yahia, 2026). "
        "They come from the study's first public release, not from the γ = 0 regime "
        "lever reproduces: grid16-dense = 16x16 with 50 gold / 25 walls / 30 hazards, "
        "30k/150k/300k episodes for X1/X5/X10, γ = 0.99. "
        "X10 path-gold-hazard-lever seed 3 reads -246.47 here and +246.47 in the release's "
        "results_16_exnonzero files: -246.47 is genuine (a greedy episode of 7 moves that then bumps to the "
        "256-step cap; no greedy episode on that layout returns +246.47), so the X10 scratch mean stands. "
        f"Source: {document['source']}. "
        f"Configuration: {document['config_16']}. "
        f"Note: {document['note']}."
    )


def read_shipped_json(name: str) -> Any:
    """The JSON document ``lever/data/<name>`` shipped with the package; FileFormatError if it does not parse."""
    text = resources.files("lever").joinpath("data", name).read_text("utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{name} is not valid JSON: {exc}") from None


@functools.lru_cache(maxsize=1)
def load_published() -> Published:
    """The shipped ``lever/data/study_published.json``, read and parsed once (cached)."""
    return Published.from_dict(read_shipped_json("study_published.json"))


# --------------------------------------------------------------------- figures

def _figure_path(path: str | os.PathLike) -> Path:
    target = Path(path)
    if target.suffix.lower() not in _FIGURE_SUFFIXES:
        raise LeverError(f"path must end in one of {_FIGURE_SUFFIXES}, got {str(path)!r}")
    if not target.parent.is_dir():
        raise LeverError(f"path: directory {str(target.parent)!r} does not exist")
    return target


def _save(fig: Figure, target: Path) -> Path:
    """Write ``fig`` to ``target`` without timestamps or random ids, so output is reproducible."""
    with matplotlib.rc_context({"svg.hashsalt": "lever"}):
        fig.savefig(target, metadata=_NO_DATES.get(target.suffix.lower()), dpi=120)
    return target


def _lever_label(setting: str, gamma: float) -> str:
    return f"lever, {setting}, γ={gamma:g}"


def _budget_order(budget: str) -> tuple[float, str]:
    match = re.search(r"\d+(\.\d+)?", budget)
    return (float(match.group()) if match else math.inf, budget)


def _check_means(name: str, means: Mapping | None) -> dict[str, dict[str, tuple[float, float]]]:
    if means is None:
        return {}
    if not isinstance(means, Mapping):
        raise LeverError(f"{name} must map budget -> method -> (return, time_s)")
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for budget, per_method in means.items():
        if not isinstance(per_method, Mapping):
            raise LeverError(f"{name}[{budget!r}] must map method -> (return, time_s)")
        out[str(budget)] = {}
        for method, pair in per_method.items():
            if method not in METHODS:
                raise LeverError(f"{name}[{budget!r}]: method must be one of {METHODS}, "
                                 f"got {method!r}")
            try:
                reward, time_s = (float(v) for v in pair)
            except (TypeError, ValueError):
                raise LeverError(f"{name}[{budget!r}][{method!r}] must be a pair "
                                 f"(return, time_s) of numbers, got {pair!r}") from None
            out[str(budget)][method] = (reward, time_s)
    return out


def _positive_or_nan(values: Sequence[float]) -> list[float]:
    return [v if v > 0 else math.nan for v in values]


def _set_time_scale(ax, values: Sequence[float]) -> None:
    if any(v > 0 for v in values if not math.isnan(v)):
        ax.set_yscale("log")


def figure_methods(lever_means: Mapping | None, published_means: Mapping | None,
                   path: str | os.PathLike, *, lever_setting: str = "grid16",
                   lever_gamma: float = 0.0, published_label: str = PUBLISHED_LABEL,
                   note: str | None = METHODS_NOTE) -> Path:
    """Draw the study's figure pair, lever's bars beside the published ones, and save it.

    ``lever_means`` and ``published_means`` map budget → method → (mean
    return, mean time in s), the shape of :meth:`Published.method_means`;
    either may be ``None`` (not both). Left panel: return per method per
    budget (budgets on x, per method a solid lever bar and a hatched study
    bar). Right panel: time per method per budget, log scale (times <= 0
    are not drawn). Legends read ``"lever, <lever_setting>, γ=<lever_gamma>"``
    and ``published_label``; ``note`` (if any, and study numbers are drawn)
    is printed under the panels. ``path``'s suffix (.png, .svg, .pdf) picks
    the format. Returns ``path`` as a :class:`pathlib.Path`.
    """
    target = _figure_path(path)
    sources = [(_lever_label(lever_setting, lever_gamma),
                _check_means("lever_means", lever_means), None),
               (published_label, _check_means("published_means", published_means), "//")]
    sources = [s for s in sources if s[1]]
    if not sources:
        raise LeverError("lever_means and published_means are both empty; nothing to draw")
    budgets = sorted({b for _, means, _ in sources for b in means}, key=_budget_order)
    methods = [m for m in METHODS
               if any(m in per for _, means, _ in sources for per in means.values())]
    colours = {m: f"C{i}" for i, m in enumerate(METHODS)}

    fig = Figure(figsize=(13, 5.2), layout="constrained")
    ax_return, ax_time = fig.subplots(1, 2)
    n_bars = len(methods) * len(sources)
    width = 0.8 / n_bars
    x = np.arange(len(budgets), dtype=float)
    all_times: list[float] = []
    for i, method in enumerate(methods):
        for j, (label, means, hatch) in enumerate(sources):
            offset = (i * len(sources) + j - (n_bars - 1) / 2) * width
            pairs = [means.get(b, {}).get(method, (math.nan, math.nan)) for b in budgets]
            style = dict(color=colours[method], hatch=hatch, edgecolor="black", linewidth=0.5,
                         alpha=0.55 if hatch else 0.95)
            ax_return.bar(x + offset, [p[0] for p in pairs], width, **style)
            times = _positive_or_nan([p[1] for p in pairs])
            all_times.extend(times)
            ax_time.bar(x + offset, times, width, **style)
    for ax, title, ylabel in ((ax_return, "Return per method per budget", "mean return"),
                              (ax_time, "Time per method per budget", "mean time (s, log scale)")):
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.set_xticks(x, budgets)
        ax.set_xlabel("training budget")
        ax.grid(axis="y", alpha=0.3)
    _set_time_scale(ax_time, all_times)
    handles = [Patch(facecolor=colours[m], label=m) for m in methods]
    handles += [Patch(facecolor="lightgrey", edgecolor="black", hatch=hatch, label=label)
                for label, _, hatch in sources]
    fig.legend(handles=handles, fontsize=8, loc="outside upper center", ncols=len(handles))
    if note and published_means:
        fig.supxlabel(note, fontsize=8)
    return _save(fig, target)


def _check_sweep(name: str, rows: Sequence[Mapping] | None) -> list[tuple[int, float, float]]:
    if rows is None:
        return []
    points = []
    for i, row in enumerate(rows):
        try:
            points.append((int(row["k"]), float(row["avg_reward"]), float(row["avg_time_s"])))
        except (KeyError, TypeError, ValueError):
            raise LeverError(f"{name}[{i}] must have numeric k, avg_reward and avg_time_s") from None
    return sorted(points)


def figure_k_sweep(lever_rows: Sequence[Mapping] | None, published_rows: Sequence[Mapping] | None,
                   path: str | os.PathLike, *, lever_setting: str = "grid16",
                   lever_gamma: float = 0.0, published_label: str = PUBLISHED_LABEL) -> Path:
    """Draw return and time against hybrid k (lever beside the study) and save it.

    ``lever_rows`` and ``published_rows`` are sequences of mappings with
    ``k``, ``avg_reward`` and ``avg_time_s`` (the shape of
    :meth:`Published.k_sweep`); either may be ``None`` (not both). Left: mean
    return vs k; right: mean time in s vs k, log scale. k = 1 is targeted and
    k = 5 exhaustive. ``path``'s suffix (.png, .svg, .pdf) picks the format.
    Returns ``path`` as a :class:`pathlib.Path`.
    """
    target = _figure_path(path)
    series = [(_lever_label(lever_setting, lever_gamma),
               _check_sweep("lever_rows", lever_rows), "-", "o"),
              (published_label, _check_sweep("published_rows", published_rows), "--", "s")]
    series = [s for s in series if s[1]]
    if not series:
        raise LeverError("lever_rows and published_rows are both empty; nothing to draw")
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    ax_return, ax_time = fig.subplots(1, 2)
    all_times: list[float] = []
    for label, points, linestyle, marker in series:
        ks = [p[0] for p in points]
        times = _positive_or_nan([p[2] for p in points])
        all_times.extend(times)
        ax_return.plot(ks, [p[1] for p in points], linestyle=linestyle, marker=marker, label=label)
        ax_time.plot(ks, times, linestyle=linestyle, marker=marker, label=label)
    ks_all = sorted({p[0] for _, points, _, _ in series for p in points})
    for ax, title, ylabel in ((ax_return, "Return vs hybrid k", "mean return"),
                              (ax_time, "Time vs hybrid k", "mean time (s, log scale)")):
        ax.set_title(title)
        ax.set_xlabel("k (candidates per sub-query; 1 = targeted, 5 = exhaustive)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(ks_all)
        ax.grid(alpha=0.3)
    _set_time_scale(ax_time, all_times)
    fig.legend(*ax_return.get_legend_handles_labels(), fontsize=8, loc="outside upper center",
               ncols=len(series))
    return _save(fig, target)
