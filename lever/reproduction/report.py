"""The reproduction's report: the study's tables and figures with lever's numbers beside them,
and one section per finding.

Everything here reads result rows (dicts with :data:`lever.reproduction.cell.COLUMNS`)
and writes text or figures; nothing is recomputed. Means are over seeds
(and queries where a table pools them); intervals are bootstrap 95% over
seeds and are shown from 5 seeds on; speedups are geometric means.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..worlds.grid import setting_rules
from ..protocol import MODES
from ..published import figure_k_sweep, figure_methods, load_published
from ..stats import bootstrap_ci, geometric_mean, paired_difference_ci
from ..version import __version__
from .cell import LONG_QUERY
from .first_release_report import write_first_release_report, write_report_md

#: The study's reported methods, in table order, and the k each is in the hybrid-k sweep.
METHOD_K = {"targeted": 1, "hybrid": 3, "exhaustive": 5}
#: The published setting set beside lever's numbers.
PUBLISHED_SETTING = "grid16-dense"


def _select(rows, **match) -> list[dict]:
    return [r for r in rows if all(r[key] == value for key, value in match.items())]


def _protocol(rows, method: str, **match) -> list[dict]:
    # The study's three methods are k = 1, 3, 5 of the sweep; scratch has no k.
    if method == "scratch":
        return _select(rows, experiment="protocol", method="scratch", **match)
    return _select(rows, experiment="protocol", k=METHOD_K[method], **match)


def _mean(rows, column: str) -> float:
    values = [float(r[column]) for r in rows]
    return float(np.mean(values)) if values else float("nan")


def budgets_of(rows) -> list[str]:
    """The budgets present, in X1, X5, X10 order."""
    return sorted({r["budget"] for r in rows}, key=lambda b: int(b[1:]))


def method_means(rows) -> dict:
    """budget → method → (mean return, mean time s): each the unweighted mean over the modes present."""
    out = {}
    for budget in budgets_of(rows):
        out[budget] = {}
        for method in ("scratch", *METHOD_K):
            per_mode = [(_mean(group, "true_return"), _mean(group, "time_s"))
                        for mode in MODES if (group := _protocol(rows, method, budget=budget, mode=mode))]
            out[budget][method] = tuple(float(np.mean(v)) for v in zip(*per_mode))
    return out


def k_sweep(rows) -> list[dict]:
    """Mean return and time of hybrid(k) per k over every protocol row (k = 1 targeted, 5 exhaustive)."""
    ks = sorted({r["k"] for r in rows if r["experiment"] == "protocol" and r["k"] is not None})
    return [{"k": k, "avg_reward": _mean(group, "true_return"), "avg_time_s": _mean(group, "time_s"),
             "avg_combinations": _mean(group, "combinations_tried")}
            for k in ks if (group := _select(rows, experiment="protocol", k=k))]


def _fmt(value: float, digits: int = 1) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def _time(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "—"
    return f"{seconds * 1e3:,.2f} ms" if seconds < 1 else f"{seconds:,.1f} s"


def protocol_table(rows) -> str:
    """Markdown: per budget and mode, lever's mean return / time per method beside the study's."""
    published = {(r["budget"], r["mode"]): r for r in load_published().table(PUBLISHED_SETTING)}
    lines = ["| budget | mode | | scratch | targeted | hybrid (k=3) | exhaustive |",
             "|---|---|---|---|---|---|---|"]
    for budget in budgets_of(rows):
        for mode in MODES:
            if not _protocol(rows, "scratch", budget=budget, mode=mode):
                continue
            ours = [f"{_fmt(_mean(g, 'true_return'))} / {_time(_mean(g, 'time_s'))}"
                    for g in (_protocol(rows, m, budget=budget, mode=mode) for m in ("scratch", *METHOD_K))]
            lines.append(f"| {budget} | {mode} | lever | " + " | ".join(ours) + " |")
            study = published.get((budget, mode))
            if study:
                cells = [f"{study[f'{m}_reward']:.1f} / {study['scratch_time_s' if m == 'scratch' else f'{m}_time']:.2f} s"
                         for m in ("scratch", *METHOD_K)]
                lines.append("| | | study† | " + " | ".join(cells) + " |")
    lines.append("\n† the study's published means (first public release: grid16-dense, 30k/150k/300k "
                 "episodes, γ = 0.99; reuse times exclude its language-model decomposition).")
    return "\n".join(lines)


def _per_seed(rows, column: str) -> dict:
    by_seed = defaultdict(list)
    for r in rows:
        by_seed[r["seed"]].append(float(r[column]))
    return {seed: float(np.mean(v)) for seed, v in by_seed.items()}


def finding_1(rows) -> str:
    """Markdown: composed − scratch return with a bootstrap interval over seeds, and the speedup."""
    lines = ["| budget | mode | method | return − scratch, mean [95% CI over seeds] | speedup (geo. mean) |",
             "|---|---|---|---|---|"]
    for budget in budgets_of(rows):
        for mode in MODES:
            scratch = _protocol(rows, "scratch", budget=budget, mode=mode)
            if not scratch:
                continue
            base = _per_seed(scratch, "true_return")
            scratch_time = {(r["seed"], r["query"]): r["time_s"] for r in scratch}
            for method in METHOD_K:
                group = _protocol(rows, method, budget=budget, mode=mode)
                ours = _per_seed(group, "true_return")
                seeds = sorted(base)
                diff = paired_difference_ci([ours[s] for s in seeds], [base[s] for s in seeds])
                speedups = [scratch_time[(r["seed"], r["query"])] / r["time_s"] for r in group if r["time_s"] > 0]
                lines.append(f"| {budget} | {mode} | {method} | {diff} | "
                             f"{_fmt(geometric_mean(speedups), 0)}× |")
    return "\n".join(lines)


def coverage_table(rows, experiment: str, column: str) -> str:
    """Markdown: per ablation level, union coverage, true return [CI] and dead-end rate."""
    group = _select(rows, experiment=experiment)
    levels = sorted({r[column] for r in group})
    lines = [f"| {column} | union coverage | true return, mean [95% CI over seeds] | reached exit | dead end |",
             "|---|---|---|---|---|"]
    for level in levels:
        sub = [r for r in group if r[column] == level]
        seeds = _per_seed(sub, "true_return")
        lines.append(f"| {level:g} | {_mean(sub, 'union_coverage'):.2f} | {bootstrap_ci(list(seeds.values()))} | "
                     f"{_mean(sub, 'reached_exit'):.0%} | {_mean(sub, 'dead_end'):.0%} |")
    return "\n".join(lines)


def long_horizon_table(rows) -> str:
    """Markdown: the lever query per mode and method: lever-pull, exit rate, return and median time per query."""
    lines = ["| mode | method | γ | pulled the lever | reached exit | true return (mean over seeds and budgets) "
             "| time per query (median) |",
             "|---|---|---|---|---|---|---|"]
    for mode in MODES:
        base = [r for r in rows if r["query"] == LONG_QUERY and r["mode"] == mode and (
            (r["experiment"] == "protocol" and (r["method"] == "scratch" or r["k"] in METHOD_K.values()))
            or r["experiment"] == "long_horizon")]
        methods = list(dict.fromkeys((r["experiment"], r["method"]) for r in base))
        for experiment, method in methods:
            sub = [r for r in base if (r["experiment"], r["method"]) == (experiment, method)]
            gamma = "0.99" if experiment == "long_horizon" else "0"
            median = float(np.median([float(r["time_s"]) for r in sub])) if sub else float("nan")
            lines.append(f"| {mode} | {method} | {gamma} | {_mean(sub, 'pulled_lever'):.0%} | "
                         f"{_mean(sub, 'reached_exit'):.0%} | {_fmt(_mean(sub, 'true_return'))} | {_time(median)} |")
    return "\n".join(lines)


def long_horizon_summary(rows) -> str:
    """Plain sentences: what hybrid planning by cell and by (cell, lever phase) give the lever query against
    scratch at γ = 0.99 (every mode, seed and budget pooled), and what each costs per query."""
    group = _select(rows, experiment="long_horizon", query=LONG_QUERY)
    scratch = _select(group, method="scratch")
    parts = []
    for method, name in (("hybrid+plan", "Planning by cell"), ("hybrid+phase-plan", "Planning by (cell, lever phase)")):
        sub = _select(group, method=method)
        if not sub:
            continue
        median = float(np.median([float(r["time_s"]) for r in sub]))
        parts.append(f"{name} (hybrid, k = 3) pulls the lever in {_mean(sub, 'pulled_lever'):.0%} of episodes, "
                     f"reaches the exit in {_mean(sub, 'reached_exit'):.0%} and returns "
                     f"{_fmt(_mean(sub, 'true_return'))} on average, at {_time(median)} per query (median, the "
                     f"search included).")
    if scratch and parts:
        training = float(np.median([float(r["time_s"]) for r in scratch]))
        parts.append(f"Training from scratch at γ = 0.99 pulls it in {_mean(scratch, 'pulled_lever'):.0%}, reaches "
                     f"the exit in {_mean(scratch, 'reached_exit'):.0%} and returns "
                     f"{_fmt(_mean(scratch, 'true_return'))}, in {_time(training)} of training per query (median).")
    return " ".join(parts)


def _thinned_long_horizon(rows) -> dict:
    """method → [(thin fraction, mean union coverage, exit rate, lever-pull rate, mean return)] of the
    lever query on thinned libraries, fractions ascending."""
    group = _select(rows, experiment="long_horizon_thinning")
    out = {}
    for method in dict.fromkeys(r["method"] for r in group):
        sub = [r for r in group if r["method"] == method]
        out[method] = [(level, _mean(level_rows, "union_coverage"), _mean(level_rows, "reached_exit"),
                        _mean(level_rows, "pulled_lever"), _mean(level_rows, "true_return"))
                       for level in sorted({r["thin_fraction"] for r in sub})
                       if (level_rows := [r for r in sub if r["thin_fraction"] == level])]
    return out


def long_horizon_thinning_table(rows) -> str:
    """Markdown: the lever query on thinned libraries, per thin fraction and method (every mode pooled)."""
    lines = ["| thin fraction | union coverage | method | pulled the lever | reached exit | true return |",
             "|---|---|---|---|---|---|"]
    per_method = _thinned_long_horizon(rows)
    levels = sorted({level for points in per_method.values() for level, *_ in points})
    for level in levels:
        for method, points in per_method.items():
            for point_level, coverage, exits, pulls, ret in points:
                if point_level == level:
                    lines.append(f"| {level:g} | {coverage:.2f} | {method} | {pulls:.0%} | {exits:.0%} | "
                                 f"{_fmt(ret)} |")
    return "\n".join(lines)


def figure_long_horizon_coverage(rows, path) -> Path:
    """Exit and lever-pull rates of the lever query against union coverage on thinned libraries, per method."""
    fig = Figure(figsize=(11, 4.2))
    per_method = _thinned_long_horizon(rows)
    for ax, (index, title) in zip(fig.subplots(1, 2), ((2, "reached the exit"), (3, "pulled the lever"))):
        for method, points in per_method.items():
            xs = [p[1] for p in points]
            ax.plot(xs, [p[index] for p in points], marker="o", label=method)
            for point in points:
                ax.annotate(f"f={point[0]:g}", (point[1], point[index]), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
        ax.set_xlabel("union coverage of the chosen combination")
        ax.set_ylabel(f"fraction of episodes that {title}")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{LONG_QUERY}: {title}, support thinned by f", fontsize=10)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
    return path


def figure_coverage(rows, path) -> Path:
    """True return and dead-end rate against union coverage, for both coverage ablations."""
    fig = Figure(figsize=(11, 4.2))
    for ax, (experiment, column, title) in zip(fig.subplots(1, 2), (
            ("snapshot_cap", "snapshot_cap", "library cut at snapshot episode e"),
            ("thinning", "thin_fraction", "logged support thinned by fraction f"))):
        group = _select(rows, experiment=experiment)
        levels = sorted({r[column] for r in group})
        xs, ys, lows, highs, dead = [], [], [], [], []
        for level in levels:
            sub = [r for r in group if r[column] == level]
            interval = bootstrap_ci(list(_per_seed(sub, "true_return").values()))
            xs.append(_mean(sub, "union_coverage"))
            ys.append(interval.mean)
            lows.append(interval.mean - interval.low if interval.has_interval else 0)
            highs.append(interval.high - interval.mean if interval.has_interval else 0)
            dead.append(_mean(sub, "dead_end"))
        # Thinning levels are ordered along coverage, snapshot caps (pooled over budgets) are not: no line there.
        ax.errorbar(xs, ys, yerr=[lows, highs], marker="o", capsize=3, label="true return (hybrid k=3)",
                    linestyle="-" if experiment == "thinning" else "none")
        for x, y, level in zip(xs, ys, levels):
            ax.annotate(f"{level:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel("union coverage of the chosen combination")
        ax.set_ylabel("mean true return")
        ax.set_title(title, fontsize=10)
        twin = ax.twinx()
        twin.plot(xs, dead, color="tab:red", linestyle="--" if experiment == "thinning" else "none", marker="x",
                  label="dead-end rate")
        twin.set_ylim(0, 1)
        twin.set_ylabel("dead-end rate", color="tab:red")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
    return path


def write_report(rows, out: Path, setting: str, wall_time_s: float | None = None) -> Path:
    """Write ``out/report.md`` and ``out/figures/`` (PNG and SVG) from result rows; returns report.md.

    A first-release set's rows get their own report, beside the release's published rows.
    """
    if setting_rules(setting) == "first-release":
        return write_first_release_report(rows, out, setting, wall_time_s)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    gamma = 0.0
    for suffix in (".png", ".svg"):
        figure_methods(method_means(rows), load_published().method_means(PUBLISHED_SETTING),
                       figures / f"methods{suffix}", lever_setting=setting, lever_gamma=gamma)
        figure_k_sweep(k_sweep(rows), load_published().k_sweep(), figures / f"k_sweep{suffix}",
                       lever_setting=setting, lever_gamma=gamma)
        if _select(rows, experiment="thinning"):
            figure_coverage(rows, figures / f"coverage{suffix}")
        if _select(rows, experiment="long_horizon_thinning"):
            figure_long_horizon_coverage(rows, figures / f"long_horizon_coverage{suffix}")
    seeds = sorted({r["seed"] for r in rows})
    config = rows[0]
    parts = [f"# lever reproduction: {setting}, seeds {', '.join(map(str, seeds))}, "
             f"budgets {', '.join(budgets_of(rows))}",
             "", f"Configuration: rules {config['rules']}, snapshot selection {config['selection']}, operator "
             f"{config['operator']}, training γ 0 (long-horizon rows: 0.99), lever {__version__}.",
             "", load_published().provenance, "",
             "## The study's table, lever beside it (mean true return / time per method)", "",
             protocol_table(rows), "",
             "lever's times are the search alone (ranking, composition, offline scoring); the study's "
             "reuse times exclude its language-model decomposition (9–23 s per query).", "",
             "![methods](figures/methods.png)", "", "![k sweep](figures/k_sweep.png)", "",
             "## Finding 1: composition against training from scratch", "", finding_1(rows), ""]
    if _select(rows, experiment="thinning"):
        parts += ["## Finding 2: reuse depends on coverage", "",
                  "Hybrid (k = 3) on libraries cut at snapshot episode e, and with each entry's logged "
                  "support thinned by a seeded fraction f:", "",
                  coverage_table(rows, "snapshot_cap", "snapshot_cap"), "",
                  coverage_table(rows, "thinning", "thin_fraction"), "",
                  "![coverage](figures/coverage.png)", ""]
    parts += ["## Finding 3: long horizons need value propagation", "",
              f"The query {LONG_QUERY} in every mode: composition (γ = 0 libraries), planning on the "
              "chosen combination's union support (value iteration, γ = 0.99, rewards relabelled from "
              "the log) by cell (`+plan`) and by (cell, lever pulled) with every logged step relabelled "
              "per phase (`+phase-plan`, lever's remedy), and training from scratch at γ = 0 and γ = 0.99. "
              "Times are per query: the search, plus the planning where there is one.", "",
              long_horizon_table(rows), "", long_horizon_summary(rows), ""]
    if _select(rows, experiment="long_horizon_thinning"):
        parts += [f"The same query on libraries whose logged supports are thinned by a seeded fraction f "
                  f"(hybrid k = 3, every mode pooled): where the phase plan stops reaching the exit.", "",
                  long_horizon_thinning_table(rows), "",
                  "![long-horizon coverage](figures/long_horizon_coverage.png)", ""]
    return write_report_md(out, parts, wall_time_s)
