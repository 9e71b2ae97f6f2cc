"""lever.show: the policy picture, its input checks, and arrows that follow action names."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from matplotlib.figure import Figure

import lever
from lever.errors import LeverError
from lever import Layout
from lever.kernels import constants as K
from lever.show import ARROWS, PolicyArtists, draw_policy, save_policy_figure

#: 3×3 hand layout: start top-left, a wall in the middle, the exit bottom-right.
SMALL_TEXT = "S..\n.#.\n..E\n"
STUDY_ORDER = ("right", "down", "left", "up")


@pytest.fixture(scope="module")
def trained():
    """A grid8 layout, a briefly trained path policy on it and its greedy route."""
    layout = lever.Layout.generate("grid8", seed=0)
    policy = lever.train(layout, "path", lever.TrainConfig(episodes=300))
    route = lever.rollout(layout, policy, "path", record_path=True).path
    return layout, policy, route


@pytest.fixture
def small():
    """The 3×3 hand layout."""
    return lever.Layout.from_text(SMALL_TEXT)


def _axes():
    return Figure(figsize=(4, 4)).add_subplot()


def _arrow_table(artists: PolicyArtists) -> dict:
    """{(row, col): (drow, dcol)} of the arrows drawn, read back from the quiver."""
    quiver = artists.arrows
    return {(int(y), int(x)): (int(v), int(u))
            for x, y, u, v in zip(quiver.X, quiver.Y, quiver.U, quiver.V)}


# -- files ----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_trained_policy_figure_is_written(trained, tmp_path, suffix, magic):
    layout, policy, route = trained
    path = save_policy_figure(tmp_path / f"policy{suffix}", layout, policy.greedy_actions,
                              policy.visits, route, title="grid8 seed 0, path")
    assert path == tmp_path / f"policy{suffix}"
    assert path.stat().st_size > 1000
    assert path.read_bytes().startswith(magic)


def test_bool_support_and_bare_figures(trained, tmp_path):
    layout, policy, route = trained
    with_support = save_policy_figure(str(tmp_path / "support.png"), layout, policy.greedy_actions,
                                      policy.support)
    bare = save_policy_figure(tmp_path / "nested" / "dir" / "bare.SVG", layout, policy.greedy_actions)
    assert with_support.stat().st_size > 1000 and bare.stat().st_size > 1000


def test_unknown_suffix_is_refused_before_drawing(trained, tmp_path):
    layout, policy, _ = trained
    for name in ("policy.jpg", "policy", "policy.png.txt"):
        with pytest.raises(LeverError, match="path"):
            save_policy_figure(tmp_path / name, layout, policy.greedy_actions)
    assert list(tmp_path.iterdir()) == []


def test_bad_arrays_are_refused_before_anything_is_written(trained, tmp_path):
    layout, policy, _ = trained
    with pytest.raises(LeverError, match="support"):
        save_policy_figure(tmp_path / "sub" / "p.png", layout, policy.greedy_actions, policy.visits[:, :3])
    assert list(tmp_path.iterdir()) == []


def test_figure_leaves_pyplot_and_the_backend_alone(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import matplotlib
        backend = matplotlib.rcParams._get_backend_or_none()
        import lever
        from lever.show import save_policy_figure
        layout = lever.Layout.from_text({SMALL_TEXT!r})
        save_policy_figure({str(tmp_path / "p.png")!r}, layout, [1, 2, 2, 2, 0, 2, 1, 1, 0])
        assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
        assert matplotlib.rcParams._get_backend_or_none() == backend, "backend changed"
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "p.png").stat().st_size > 0


# -- input checks ---------------------------------------------------------------------------
def _bad_inputs(n):
    good = np.zeros(n, dtype=np.int32)
    return [
        ("actions", dict(actions=good.astype(float))),
        ("actions", dict(actions=good.astype(bool))),
        ("actions", dict(actions=good[:-1])),
        ("actions", dict(actions=good.reshape(1, -1))),
        ("actions", dict(actions=np.full(n, K.N_ACTIONS))),
        ("actions", dict(actions=np.full(n, -2))),
        ("support", dict(support=np.zeros((n, 3)))),
        ("support", dict(support=np.zeros((n + 1, 4)))),
        ("support", dict(support=np.zeros(n))),
        ("support", dict(support=np.full((n, 4), -1))),
        ("support", dict(support=np.full((n, 4), np.nan))),
        ("support", dict(support=np.full((n, 4), "x"))),
        ("route", dict(route=[0, n])),
        ("route", dict(route=[-1, 0])),
        ("route", dict(route=[0.0, 1.0])),
        ("route", dict(route=[[0, 1]])),
        ("route", dict(route=[])),
        ("title", dict(title=3)),
        ("action_names", dict(action_names=("up", "up", "down", "left"))),
        ("action_names", dict(action_names=("up", "right", "down"))),
        ("action_names", dict(action_names="urdl")),
        ("action_names", dict(action_names=("north", "east", "south", "west"))),
    ]


@pytest.mark.parametrize("case", range(len(_bad_inputs(9))))
def test_bad_input_names_the_parameter(small, tmp_path, case):
    name, override = _bad_inputs(small.n_states)[case]
    kwargs = dict(actions=np.zeros(small.n_states, dtype=np.int32)) | override
    with pytest.raises(LeverError, match=name):
        draw_policy(_axes(), small, **kwargs)
    with pytest.raises(LeverError, match=name):
        save_policy_figure(tmp_path / "p.png", small, **kwargs)
    assert not (tmp_path / "p.png").exists()


def test_layout_must_be_a_layout(small):
    with pytest.raises(LeverError, match="layout"):
        draw_policy(_axes(), small.to_text(), np.zeros(small.n_states, dtype=np.int32))


# -- what is drawn -------------------------------------------------------------------------
def test_action_names_agree_with_the_kernel_moves():
    assert len(K.ACTION_NAMES) == K.N_ACTIONS and set(K.ACTION_NAMES) == set(ARROWS)
    layout = Layout.from_text("...\n.S.\n..E\n")
    for action, name in enumerate(K.ACTION_NAMES):
        row, col = divmod(int(layout.world.moves[layout.start, action]), layout.width)
        assert ARROWS[name] == (row - 1, col - 1)


@pytest.mark.parametrize("names", [K.ACTION_NAMES, STUDY_ORDER, ("left", "up", "right", "down")])
def test_arrows_follow_action_names(small, names):
    actions = np.array([1, 2, 3, 0, 0, 2, 1, 3, 0], dtype=np.int32)
    table = _arrow_table(draw_policy(_axes(), small, actions, action_names=names))
    acting = [c for c in range(small.n_states) if small.cells.flat[c] not in (K.WALL, K.EXIT)]
    assert set(table) == {divmod(c, small.width) for c in acting}
    for cell in acting:
        assert table[divmod(cell, small.width)] == ARROWS[names[actions[cell]]]


def test_arrows_follow_a_renumbered_constant(small, monkeypatch):
    # The same action numbers point elsewhere once the constant lists the study's order.
    monkeypatch.setattr(K, "ACTION_NAMES", STUDY_ORDER)
    actions = np.zeros(small.n_states, dtype=np.int32)
    table = _arrow_table(draw_policy(_axes(), small, actions))
    assert set(table.values()) == {ARROWS["right"]}
    actions[:] = 3
    table = _arrow_table(draw_policy(_axes(), small, actions))
    assert set(table.values()) == {ARROWS["up"]}


def test_quiver_points_the_right_way_on_screen(small):
    # A "down" arrow must end below where it starts in display space (rows grow downwards).
    ax = _axes()
    actions = np.full(small.n_states, -1, dtype=np.int32)
    actions[0] = K.ACTION_NAMES.index("down")
    artists = draw_policy(ax, small, actions)
    top, bottom = ax.transData.transform([(0, 0), (0, 1)])
    assert bottom[1] < top[1]
    assert (artists.arrows.U[0], artists.arrows.V[0]) == (0, 1)


def test_dead_ends_are_reachable_cells_without_an_action():
    layout = lever.Layout.from_text("S...\n.#..\n...E\n")
    actions = np.full(layout.n_states, -1, dtype=np.int32)
    actions[[0, 1]] = K.ACTION_NAMES.index("right")
    artists = draw_policy(_axes(), layout, actions)
    marked = {(int(r), int(c)) for c, r in artists.dead_ends.get_offsets()}
    free = [c for c in range(layout.n_states) if layout.cells.flat[c] == K.EMPTY and c not in (0, 1)]
    assert marked == {divmod(c, layout.width) for c in free}
    assert len(_arrow_table(artists)) == 2


@pytest.mark.parametrize("text", ["S.#.\n..##\n...E\n",   # (0, 3) walled off
                                  "S.#.\n..#.\n...E\n"])  # (0, 3), (1, 3) only past the exit
def test_unreachable_cells_are_not_dead_ends(text):
    layout = lever.Layout.from_text(text)
    actions = np.zeros(layout.n_states, dtype=np.int32)
    actions[[3, 7]] = -1
    artists = draw_policy(_axes(), layout, actions)
    assert artists.dead_ends is None
    assert (0, 3) not in _arrow_table(artists)


def test_heat_shows_supported_actions_or_summed_visits(small):
    actions = np.zeros(small.n_states, dtype=np.int32)
    visits = np.arange(small.n_states * 4).reshape(small.n_states, 4)
    visits[2] = 0
    shown = (small.cells.ravel() != K.WALL) & (small.cells.ravel() != K.EXIT)

    counted = draw_policy(_axes(), small, actions, support=visits > 5).heat.get_array()
    assert np.array_equal(counted.mask.ravel(), ~shown)
    assert np.array_equal(counted.ravel()[shown], (visits > 5).sum(1)[shown])

    summed = draw_policy(_axes(), small, actions, support=visits).heat.get_array()
    assert np.array_equal(summed.ravel()[shown & (visits.sum(1) > 0)],
                          visits.sum(1)[shown & (visits.sum(1) > 0)])
    assert summed.mask.ravel()[2]  # never visited: left unshaded

    artists = draw_policy(_axes(), small, actions, support=visits.astype(float))
    assert artists.colorbar is not None and artists.colorbar.ax.get_ylabel()


def test_route_is_drawn_through_cell_centres(trained):
    layout, policy, route = trained
    artists = draw_policy(_axes(), layout, policy.greedy_actions, route=route, title="t")
    xs, ys = artists.route.get_data()
    assert np.array_equal(ys * layout.width + xs, route)
    assert artists.heat is None and artists.colorbar is None
    assert artists.route.axes.get_title() == "t"


def test_start_is_marked(small):
    ax = _axes()
    draw_policy(ax, small, np.zeros(small.n_states, dtype=np.int32))
    starts = [t for t in ax.texts if t.get_text() == "S"]
    assert len(starts) == 1
    x, y = starts[0].get_position()
    assert (round(y), round(x)) == divmod(small.start, small.width)


def test_lever_show_draws_a_library_policy_a_trained_one_and_refuses_half_a_reference(tmp_path, capsys):
    from lever.cli import main

    library = lever.PolicyLibrary.build(tmp_path / "lib", setting="grid8", layout_seeds=(0,), episodes=300,
                                        jobs=1, progress=False)
    assert main(["show", "--library", str(library.root), "--policy", "2", "--out", str(tmp_path / "p.svg")]) == 0
    svg = (tmp_path / "p.svg").read_text()
    assert "policy 2: hazard (trained, X1)" in svg and capsys.readouterr().out.startswith("figure: ")
    assert main(["show", "--grid", "grid8", "--episodes", "200", "--out", str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["show", "--policy", "2", "--out", str(tmp_path / "q.svg")]) == 2
    assert "--library and --policy go together" in capsys.readouterr().err
    assert main(["show", "--library", str(library.root), "--policy", "99", "--out", str(tmp_path / "q.svg")]) == 2
    assert not (tmp_path / "q.svg").exists()
