"""A picture of one policy on its layout: cells, support, greedy arrows, dead ends, a route.

:func:`draw_policy` draws onto any matplotlib ``Axes``; :func:`save_policy_figure`
builds a standalone :class:`matplotlib.figure.Figure` and writes it as PNG,
SVG or PDF. Neither touches pyplot or the global backend, so both are safe to
call from library code, worker processes and tests.

Arrow directions come from action *names* (:data:`ARROWS` keyed by
:data:`lever.kernels.constants.ACTION_NAMES`), never from action numbers, so
the picture follows any renumbering of the actions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .worlds.env import KIND_COLOURS
from .errors import LeverError
from .worlds.grid import Layout
from .kernels import constants as K

#: Row and column offset of one step, by action name (rows grow downwards).
ARROWS = {"right": (0, 1), "down": (1, 0), "left": (0, -1), "up": (-1, 0)}

#: File suffixes :func:`save_policy_figure` writes, and the format each selects.
FIGURE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

_KIND_LABELS = {K.EMPTY: "empty", K.WALL: "wall", K.GOLD: "gold", K.HAZARD: "hazard",
                K.LEVER: "lever", K.EXIT: "exit"}
_KIND_LETTERS = {K.GOLD: "G", K.HAZARD: "H", K.LEVER: "L", K.EXIT: "E"}
_TERMINAL_KINDS = (K.HAZARD, K.EXIT)
_ARROW_COLOUR = "#111111"
_DEAD_END_COLOUR = "#d62020"
_ROUTE_COLOUR = "#ff7f0e"
_HEAT_ALPHA = 0.55
_HEAT_CMAP = "Blues"
_ARROW_LENGTH = 0.55  # in cells


@dataclass(frozen=True)
class PolicyArtists:
    """What :func:`draw_policy` drew, for callers that restyle or inspect it.

    ``cells``: the image of cell kinds; ``arrows``: the quiver of greedy
    arrows, whose U/V data are the unit column/row steps of each arrow (None
    when no cell has an arrow); ``heat`` and ``colorbar``: the support
    overlay and its colour bar (None without ``support``); ``dead_ends``:
    the red crosses (None when there are none); ``route``: the route's line
    (None without ``route``).
    """

    cells: Any
    arrows: Any | None
    heat: Any | None
    colorbar: Any | None
    dead_ends: Any | None
    route: Any | None


# -- input checks ------------------------------------------------------------------
def _check_layout(layout) -> Layout:
    if not isinstance(layout, Layout):
        raise LeverError(f"layout must be a lever.Layout, got {type(layout).__name__}")
    return layout


def _check_action_names(action_names) -> tuple[str, ...]:
    names = K.ACTION_NAMES if action_names is None else action_names
    if isinstance(names, str):
        raise LeverError(f"action_names must be a sequence of {K.N_ACTIONS} names, got the string {names!r}")
    try:
        names = tuple(names)
    except TypeError:
        raise LeverError(f"action_names must be a sequence of {K.N_ACTIONS} names, got {names!r}") from None
    if len(names) != K.N_ACTIONS or set(names) != set(ARROWS):
        raise LeverError(f"action_names must name each of {', '.join(ARROWS)} exactly once "
                         f"({K.N_ACTIONS} entries), got {names!r}")
    return names


def _check_actions(actions, n_states: int) -> np.ndarray:
    table = np.asarray(actions)
    if table.dtype == bool or not np.issubdtype(table.dtype, np.integer):
        raise LeverError(f"actions must be an integer array, got dtype {table.dtype}")
    if table.shape != (n_states,):
        raise LeverError(f"actions must have shape (S={n_states},), got {table.shape}")
    if table.size and (table.min() < -1 or table.max() >= K.N_ACTIONS):
        raise LeverError(f"actions entries must be -1 (dead end) or 0..{K.N_ACTIONS - 1}, "
                         f"got values in [{table.min()}, {table.max()}]")
    return table.astype(np.int64)


def _check_support(support, n_states: int) -> np.ndarray | None:
    if support is None:
        return None
    table = np.asarray(support)
    if not (table.dtype == bool or np.issubdtype(table.dtype, np.integer)
            or np.issubdtype(table.dtype, np.floating)):
        raise LeverError(f"support must be a bool, integer or float array, got dtype {table.dtype}")
    if table.shape != (n_states, K.N_ACTIONS):
        raise LeverError(f"support must have shape (S={n_states}, A={K.N_ACTIONS}), got {table.shape}")
    if table.dtype != bool and table.size:
        if not np.all(np.isfinite(table)):
            raise LeverError("support contains NaN or infinite counts")
        if table.min() < 0:
            raise LeverError(f"support counts must be >= 0, got a minimum of {table.min()}")
    return table


def _check_route(route, n_states: int) -> np.ndarray | None:
    if route is None:
        return None
    cells = np.asarray(route)
    if cells.dtype == bool or not np.issubdtype(cells.dtype, np.integer):
        raise LeverError(f"route must be a sequence of integer cell indices, got dtype {cells.dtype}")
    if cells.ndim != 1 or cells.size == 0:
        raise LeverError(f"route must be a non-empty 1-D sequence of cell indices, got shape {cells.shape}")
    if cells.min() < 0 or cells.max() >= n_states:
        raise LeverError(f"route cells must be in 0..{n_states - 1}, "
                         f"got values in [{cells.min()}, {cells.max()}]")
    return cells.astype(np.int64)


def _check_title(title) -> str | None:
    if title is not None and not isinstance(title, str):
        raise LeverError(f"title must be a string or None, got {type(title).__name__}")
    return title


def _check_all(layout, actions, support, route, title, action_names):
    layout = _check_layout(layout)
    return (layout, _check_actions(actions, layout.n_states), _check_support(support, layout.n_states),
            _check_route(route, layout.n_states), _check_title(title), _check_action_names(action_names))


# -- drawing -----------------------------------------------------------------------
def _cell_points(ax, layout: Layout) -> float:
    """Approximate side of one cell in points, for font and marker sizes."""
    fig = ax.get_figure()
    box = ax.get_position()
    width = box.width * fig.get_figwidth() * 72 / layout.width
    height = box.height * fig.get_figheight() * 72 / layout.height
    return max(min(width, height), 4.0)


def _reachable(open_cells: np.ndarray, start: int) -> np.ndarray:
    """bool (S,): cells joined to ``start`` by 4-neighbour steps through ``open_cells`` (H, W)."""
    height, width = open_cells.shape
    seen = np.zeros(open_cells.shape, dtype=bool)
    seen[divmod(start, width)] = True
    queue = deque([divmod(start, width)])
    while queue:
        row, col = queue.popleft()
        for drow, dcol in ARROWS.values():
            r, c = row + drow, col + dcol
            if 0 <= r < height and 0 <= c < width and open_cells[r, c] and not seen[r, c]:
                seen[r, c] = True
                queue.append((r, c))
    return seen.ravel()


def _support_per_cell(support: np.ndarray) -> np.ndarray:
    if support.dtype == bool:
        return support.sum(axis=1).astype(float)
    return support.sum(axis=1, dtype=float)


def _draw_heat(ax, layout: Layout, support: np.ndarray, shown: np.ndarray):
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm, LogNorm, Normalize

    per_cell = _support_per_cell(support)
    counted = support.dtype == bool
    masked = ~shown | (~counted & (per_cell <= 0))
    values = np.ma.masked_array(per_cell, mask=masked).reshape(layout.height, layout.width)
    if counted:
        cmap = colormaps[_HEAT_CMAP].resampled(K.N_ACTIONS + 1)
        norm = BoundaryNorm(np.arange(K.N_ACTIONS + 2) - 0.5, cmap.N)
        label = "supported actions per cell"
    else:
        cmap = colormaps[_HEAT_CMAP]
        positive = per_cell[shown & (per_cell > 0)]
        if positive.size and positive.max() > positive.min():
            norm, scale = LogNorm(vmin=positive.min(), vmax=positive.max()), "log scale; "
        else:
            norm, scale = Normalize(vmin=0.0, vmax=positive.max() if positive.size else 1.0), ""
        label = f"visits per cell, all actions ({scale}unshaded: 0)"
    cmap = cmap.with_extremes(bad=(0, 0, 0, 0))
    heat = ax.imshow(values, cmap=cmap, norm=norm, alpha=_HEAT_ALPHA, interpolation="nearest", zorder=1)
    colorbar = ax.get_figure().colorbar(heat, ax=ax, fraction=0.046, pad=0.03, shrink=0.9)
    colorbar.set_label(label)
    if counted:
        colorbar.set_ticks(range(K.N_ACTIONS + 1))
    return heat, colorbar


def draw_policy(ax, layout: Layout, actions, support=None, route=None, title: str | None = None,
                action_names: Sequence[str] | None = None) -> PolicyArtists:
    """Draw a policy on its layout onto the matplotlib ``ax``.

    layout: the :class:`Layout`; its cells are coloured by kind with the
    env's ``rgb_array`` colours (:data:`lever.worlds.env.KIND_COLOURS`), gold,
    hazards, lever and exit also lettered ``G H L E`` and the start ``S``.
    actions: int (S,), the action per cell, -1 where the policy has none:
    an arrow is drawn in every non-wall, non-terminal cell with an action,
    and a red ``x`` in every cell without one that the start reaches
    without crossing a wall, hazard or the exit (a dead end).
    support: optional (S, A) array shown as a semi-transparent heat map with
    a colour bar: bool means "visited" and each cell shows how many of its
    actions are supported (0..4); int or float means visit counts, summed
    over actions per cell on a log scale.
    route: optional sequence of cell indices (e.g. ``rollout(...,
    record_path=True).path``) drawn as a line, its first cell marked with a
    circle and its last with a square.
    action_names: the name of each action, indexed by action number
    (default :data:`lever.kernels.constants.ACTION_NAMES`); arrow
    directions are looked up by name in :data:`ARROWS`.

    Raises :class:`LeverError` naming the parameter for input of the wrong
    type, shape or range, before anything is drawn. Returns the
    :class:`PolicyArtists`.
    """
    layout, actions, support, route, title, names = _check_all(layout, actions, support, route, title,
                                                               action_names)
    from matplotlib import patheffects
    from matplotlib.patches import Rectangle

    height, width = layout.height, layout.width
    kinds = layout.cells.ravel()
    cell_pt = _cell_points(ax, layout)

    palette = np.zeros((K.N_KINDS, 3))
    for kind, colour in KIND_COLOURS.items():
        palette[kind] = np.asarray(colour) / 255.0
    cells = ax.imshow(palette[layout.cells], interpolation="nearest", zorder=0)

    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_xticks(np.arange(-0.5, width, 1.0), minor=True)
    ax.set_yticks(np.arange(-0.5, height, 1.0), minor=True)
    ax.grid(which="minor", color="white", linewidth=max(0.4, cell_pt / 40), zorder=2)
    ax.tick_params(which="minor", length=0)
    step = max(1, int(np.ceil(max(height, width) / 16)))
    ax.set_xticks(np.arange(0, width, step))
    ax.set_yticks(np.arange(0, height, step))
    ax.tick_params(which="major", labelsize=max(6.0, min(10.0, cell_pt * 0.3)), length=2)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    for side in ax.spines.values():
        side.set_visible(False)

    walls = kinds == K.WALL
    terminal = np.isin(kinds, _TERMINAL_KINDS)
    acting = ~walls & ~terminal

    heat = colorbar = None
    if support is not None:
        heat, colorbar = _draw_heat(ax, layout, support, acting)

        # Gold and lever cells keep a frame of their own colour above the tint.
        frame = 0.16
        for cell in np.flatnonzero(acting & (kinds != K.EMPTY)):
            row, col = divmod(int(cell), width)
            ax.add_patch(Rectangle((col - 0.5 + frame / 2, row - 0.5 + frame / 2), 1 - frame, 1 - frame,
                                   facecolor="none", edgecolor=palette[kinds[cell]],
                                   linewidth=frame * cell_pt, joinstyle="miter", zorder=1.5))

    letter_size = max(4.5, cell_pt * 0.3)
    outline = [patheffects.withStroke(linewidth=max(1.0, letter_size * 0.22), foreground="white")]
    corner = 0.44
    lettered = np.flatnonzero(np.isin(kinds, list(_KIND_LETTERS)))
    letters = [(int(c), _KIND_LETTERS[int(kinds[c])]) for c in lettered]
    for cell, letter in letters + [(layout.start, "S")]:
        row, col = divmod(cell, width)
        ax.text(col - corner, row - corner, letter, ha="left", va="top", fontsize=letter_size,
                fontweight="bold", color="black", path_effects=outline, zorder=5)

    route_line = None
    if route is not None:
        rows, cols = np.divmod(route, width)
        (route_line,) = ax.plot(cols, rows, color=_ROUTE_COLOUR, linewidth=max(1.2, cell_pt * 0.1),
                                alpha=0.85, solid_capstyle="round", solid_joinstyle="round", zorder=3,
                                label="route")
        ax.plot(cols[:1], rows[:1], "o", color=_ROUTE_COLOUR, markersize=cell_pt * 0.35,
                markerfacecolor="none", markeredgewidth=max(1.2, cell_pt * 0.07), zorder=3,
                label="route start")
        ax.plot(cols[-1:], rows[-1:], "s", color=_ROUTE_COLOUR, markersize=cell_pt * 0.22, zorder=3,
                label="route end")

    drow = np.array([ARROWS[name][0] for name in names], dtype=float)
    dcol = np.array([ARROWS[name][1] for name in names], dtype=float)
    with_arrow = np.flatnonzero(acting & (actions >= 0))
    arrows = None
    if with_arrow.size:
        rows, cols = np.divmod(with_arrow, width)
        chosen = actions[with_arrow]
        # angles/scale_units "xy": U, V are steps in data units (V = +1 is one row down).
        arrows = ax.quiver(cols, rows, dcol[chosen], drow[chosen], angles="xy", scale_units="xy",
                           scale=1.0 / _ARROW_LENGTH, units="xy", width=0.07, headwidth=3.2,
                           headlength=3.0, headaxislength=2.7, pivot="mid", color=_ARROW_COLOUR,
                           zorder=4)

    # Reachable without ending the episode: walls, hazards and the exit block the search.
    reachable = _reachable(acting.reshape(height, width), layout.start)
    dead = np.flatnonzero(reachable & acting & (actions < 0))
    dead_ends = None
    if dead.size:
        rows, cols = np.divmod(dead, width)
        dead_ends = ax.scatter(cols, rows, marker="x", s=(cell_pt * 0.55) ** 2, color=_DEAD_END_COLOUR,
                               linewidths=max(1.2, cell_pt * 0.08), zorder=4, label="dead end")

    if title is not None:
        ax.set_title(title)
    return PolicyArtists(cells, arrows, heat, colorbar, dead_ends, route_line)


def _legend_handles(layout: Layout, artists: PolicyArtists) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    present = set(np.unique(layout.cells).tolist())
    handles = [Patch(facecolor=np.asarray(KIND_COLOURS[k]) / 255.0, edgecolor="0.5",
                     label=_KIND_LABELS[k] + (f" ({_KIND_LETTERS[k]})" if k in _KIND_LETTERS else ""))
               for k in sorted(present)]
    handles.append(Line2D([], [], linestyle="none", marker=r"$\rightarrow$", markersize=10,
                          color=_ARROW_COLOUR, label="greedy action"))
    if artists.dead_ends is not None:
        handles.append(Line2D([], [], linestyle="none", marker="x", markersize=7,
                              color=_DEAD_END_COLOUR, markeredgewidth=1.8, label="dead end"))
    if artists.route is not None:
        handles.append(Line2D([], [], color=_ROUTE_COLOUR, linewidth=2, marker="o", markerfacecolor="none",
                              label="route (o start, \u25a0 end)"))
    return handles


def _default_figsize(layout: Layout, with_support: bool) -> tuple[float, float]:
    cell = float(np.clip(8.0 / max(layout.height, layout.width), 0.25, 0.6))
    width = layout.width * cell + (2.4 if with_support else 1.2)
    height = layout.height * cell + 1.9
    return max(width, 5.0), max(height, 4.0)


def save_policy_figure(path: str | Path, layout: Layout, actions, support=None, route=None,
                       title: str | None = None, *, action_names: Sequence[str] | None = None,
                       dpi: float = 150, figsize: tuple[float, float] | None = None) -> Path:
    """Draw a policy (see :func:`draw_policy`) in a figure of its own and save it to ``path``.

    The suffix picks the format: ``.png``, ``.svg`` or ``.pdf``. The figure
    is a :class:`matplotlib.figure.Figure` with a legend of the cell kinds
    and markers; no pyplot or global matplotlib state is involved. Missing
    parent directories are created. ``figsize`` (inches) defaults to about
    half an inch per cell for grids up to 16×16. Raises
    :class:`LeverError` for an unknown suffix or invalid arrays before
    drawing anything. Returns the path as a :class:`Path`.
    """
    path = Path(path)
    fmt = FIGURE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise LeverError(f"path must end in one of {', '.join(FIGURE_FORMATS)}, got {str(path)!r}")
    layout, actions, support, route, title, names = _check_all(layout, actions, support, route, title,
                                                               action_names)
    if not (isinstance(dpi, (int, float)) and not isinstance(dpi, bool) and dpi > 0):
        raise LeverError(f"dpi must be a positive number, got {dpi!r}")
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize or _default_figsize(layout, support is not None), dpi=dpi,
                 layout="constrained")
    ax = fig.add_subplot()
    artists = draw_policy(ax, layout, actions, support, route, title, action_names=names)
    handles = _legend_handles(layout, artists)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), frameon=False,
               fontsize="small", handlelength=1.5, columnspacing=1.2)
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt, dpi=dpi, metadata=metadata)
    return path
