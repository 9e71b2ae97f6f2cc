"""Layouts: the study's seeded sampler, its reachability guarantee, the text form, files, bad input."""

import json

import numpy as np
import pytest

from lever import FileFormatError, GridSpec, Layout, LeverError
from lever.worlds.grid import LAYOUT_FORMAT, LAYOUT_VERSION, PRESETS
from lever.kernels import constants as K
from tests.reference import HAND_LAYOUTS, bfs


@pytest.mark.parametrize("preset", ["grid16", "grid16-dense"])
def test_every_generated_layout_has_the_study_routes_and_counts(preset):
    spec = PRESETS[preset]
    for seed in range(200):
        layout = Layout.generate(preset, seed=seed)
        cells = layout.cells
        counts = {kind: int(np.sum(cells == kind)) for kind in range(K.N_KINDS)}
        assert cells.shape == (spec["height"], spec["width"])
        assert counts[K.GOLD] == spec["n_gold"] and counts[K.WALL] == spec["n_walls"]
        assert counts[K.HAZARD] == spec["n_hazards"]
        assert counts[K.LEVER] == 1 and counts[K.EXIT] == 1
        assert cells.flat[layout.start] == K.EMPTY and layout.start != layout.exit
        # The study's check: start → exit, start → lever, lever → exit (gold may be cut off).
        reach = bfs(cells.tolist(), layout.start)
        assert reach[layout.exit] >= 0 and reach[layout.lever] >= 0, f"{preset} seed {seed}"
        assert bfs(cells.tolist(), layout.lever)[layout.exit] >= 0, f"{preset} seed {seed}"


def test_generation_is_seeded():
    assert Layout.generate("grid16", seed=3).to_text() == Layout.generate("grid16", seed=3).to_text()
    texts = {Layout.generate("grid16", seed=s).to_text() for s in range(10)}
    assert len(texts) == 10
    spec = GridSpec(**PRESETS["grid8"], seed=5)
    assert Layout.generate(spec).to_text() == Layout.generate("grid8", seed=5).to_text()
    assert Layout.generate(spec, seed=6).to_text() == Layout.generate("grid8", seed=6).to_text()


def test_fixed_start_and_exit_are_kept():
    spec = GridSpec(height=8, width=8, n_gold=6, n_walls=4, n_hazards=4, seed=1,
                    start=(0, 0), exit=(7, 7))
    for seed in range(20):
        layout = Layout.generate(spec, seed=seed)
        assert layout.start == 0 and layout.exit == 63


def test_text_round_trip(hand_layout):
    text = hand_layout.to_text()
    again = Layout.from_text(text)
    assert np.array_equal(again.cells, hand_layout.cells) and again.start == hand_layout.start
    assert again.to_text() == text and again.id == hand_layout.id


def test_text_form_is_what_was_written():
    text = HAND_LAYOUTS["hazards"]
    layout = Layout.from_text("\n  " + text.replace("\n", "  \n") + "\n\n")
    assert layout.to_text() == text and str(layout) == text
    assert layout.start == 0 and layout.exit == 19 and layout.lever == 12
    assert layout.gold.tolist() == [6, 18]
    assert layout.cells[0, 2] == K.HAZARD and layout.cells[3, 0] == K.WALL


def test_generated_text_round_trip():
    layout = Layout.generate("grid16-dense", seed=11)
    assert Layout.from_text(layout.to_text()).to_text() == layout.to_text()


def test_save_load_round_trip(tmp_path):
    layout = Layout.generate(GridSpec(height=6, width=7, n_gold=3, n_walls=2, n_hazards=2,
                                      seed=4, start=(0, 0)))
    path = tmp_path / "sub" / "layout.json"
    layout.save(path)
    loaded = Layout.load(path)
    assert loaded.to_text() == layout.to_text() and loaded.spec == layout.spec
    assert loaded.id == layout.id
    hand = Layout.from_text(HAND_LAYOUTS["pocket"])
    hand.save(tmp_path / "hand.json")
    assert Layout.load(tmp_path / "hand.json").to_text() == hand.to_text()
    assert Layout.load(tmp_path / "hand.json").spec is None
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(height=0), "at least 1"),
    (dict(width=0), "at least 1"),
    (dict(height=4, width=4, n_walls=20), "needs"),
    (dict(height=2, width=2, n_gold=2, n_walls=0, n_hazards=0, lever=True), "needs 5"),
    (dict(n_gold=-1), ">= 0"),
    (dict(start=(3, 3), exit=(3, 3)), "same cell"),
    (dict(start=(16, 0)), "outside"),
    (dict(exit=(0, -1)), "outside"),
    (dict(height=2.5), "integer"),
    (dict(seed=-1), "seed"),
])
def test_impossible_specs_are_refused(kwargs, message):
    with pytest.raises(LeverError, match=message):
        GridSpec(**kwargs)


def test_sampler_takes_one_unchecked_draw_after_200_failures_as_the_study_does():
    # The only wall of a 1×5 corridor always separates the fixed start and exit.
    spec = GridSpec(height=1, width=5, n_gold=0, n_walls=1, n_hazards=0, lever=False,
                    start=(0, 0), exit=(0, 4))
    with pytest.warns(RuntimeWarning, match="unchecked"):
        layout = Layout.generate(spec)
    assert not layout.checked and layout.distances_from(layout.start)[layout.exit] < 0


def test_unknown_preset():
    with pytest.raises(LeverError, match="grid16-dense"):
        Layout.generate("grid17")


@pytest.mark.parametrize("text, message", [
    ("S#E\n", "unreachable"),
    ("S.H\n.HE\n", "unreachable"),
    ("SE#L\n", "the lever at \\(0, 3\\)"),
    ("S..\n..\n..E\n", "different lengths"),
    ("S.X\n..E\n", "unknown layout characters"),
    ("...\n..E\n", "exactly one 'S'"),
    ("S.S\n..E\n", "exactly one 'S'"),
    ("", "empty"),
    ("S..\n...\n", "exactly one exit"),
    ("S.E\n..E\n", "exactly one exit"),
    ("SLE\nL..\n", "more than one lever"),
])
def test_bad_layout_text_is_refused(text, message):
    with pytest.raises(LeverError, match=message):
        Layout.from_text(text)


def test_bad_cell_arrays_are_refused():
    with pytest.raises(LeverError, match="outside"):
        Layout(np.array([[0, 5]]), start=7)
    with pytest.raises(LeverError, match="must be empty"):
        Layout(np.array([[2, 5]]), start=0)
    with pytest.raises(LeverError, match="kinds"):
        Layout(np.array([[0, 9]]), start=0)
    with pytest.raises(LeverError, match="2-D"):
        Layout(np.zeros((0, 3)), start=0)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a valid"),
    (json.dumps({"format": "something-else", "version": LAYOUT_VERSION, "text": "SE"}), "not a lever-layout"),
    (json.dumps({"format": LAYOUT_FORMAT, "version": LAYOUT_VERSION + 1, "text": "SE"}), "version"),
    (json.dumps({"format": LAYOUT_FORMAT, "version": LAYOUT_VERSION}), "lacks its text"),
    (json.dumps({"format": LAYOUT_FORMAT, "version": LAYOUT_VERSION, "text": "SE",
                 "spec": {"height": 1, "colour": 3}}), "malformed"),
    (json.dumps([1, 2]), "not a lever-layout"),
])
def test_bad_layout_files_are_refused(tmp_path, content, message):
    path = tmp_path / "layout.json"
    path.write_text(content)
    with pytest.raises(FileFormatError, match=message):
        Layout.load(path)


def test_missing_layout_file(tmp_path):
    with pytest.raises(FileFormatError, match="no such file"):
        Layout.load(tmp_path / "absent.json")
