"""lever.published: the study's published numbers and the figures that set lever beside them."""

import json
from importlib import resources

import numpy as np
import pytest

from lever.errors import FileFormatError, LeverError
from lever.protocol import METHODS
from lever.published import (
    PUBLISHED_LABEL, TABLE_FIELDS, Published, figure_k_sweep, figure_methods, load_published,
)

#: The study's summary table (mean over its 5 seeds and 3 modes): budget -> method -> (mean return, mean time in s), to 0.1.
STUDY_SUMMARY = {
    "X1": {"scratch": (198.2, 10.9), "targeted": (179.5, 17.3),
           "hybrid": (195.7, 28.3), "exhaustive": (192.9, 81.2)},
    "X5": {"scratch": (225.6, 63.8), "targeted": (179.5, 9.7),
           "hybrid": (192.2, 20.8), "exhaustive": (201.3, 74.1)},
    "X10": {"scratch": (167.9, 124.8), "targeted": (179.5, 12.7),
            "hybrid": (193.9, 23.8), "exhaustive": (192.9, 77.0)},
}


def _raw():
    text = resources.files("lever").joinpath("data", "study_published.json").read_text("utf-8")
    return json.loads(text)


def test_loaded_once_and_shipped_as_package_data():
    assert load_published() is load_published()
    assert _raw()["format"] == "lever-study-published/1"


def test_provenance_says_where_the_numbers_come_from():
    text = load_published().provenance
    for fragment in ("first public release", "50 gold / 25 walls / 30 hazards",
                     "30k/150k/300k", "γ = 0.99", "-246.47 is genuine", "the X10 scratch mean stands"):
        assert fragment in text
    assert "flipped" not in text


def test_table_rows():
    published = load_published()
    assert published.settings == ("grid16-dense", "grid32-first-release")
    rows = published.table()
    assert [(r["budget"], r["mode"]) for r in rows] == [
        (b, m) for b in ("X1", "X5", "X10") for m in ("trivial", "double", "triple")]
    for row in rows:
        assert all(isinstance(row[f], float) for f in TABLE_FIELDS)
        assert isinstance(row["n"], int)
    assert [r["n"] for r in rows[:3]] == [15, 10, 5]
    rows[0]["scratch_reward"] = -1.0  # a copy: the cached data must not change
    assert published.table()[0]["scratch_reward"] == 169.36
    with pytest.raises(LeverError, match="setting"):
        published.table("grid99")


@pytest.mark.parametrize("setting", ["grid16-dense", "grid32-first-release"])
def test_mode_rows_are_the_mean_of_their_query_rows(setting):
    published = load_published()
    per_query = published.per_query(setting)
    for row in published.table(setting):
        group = [q for q in per_query if (q["budget"], q["mode"]) == (row["budget"], row["mode"])]
        assert sum(q["n"] for q in group) == row["n"]
        for field in TABLE_FIELDS[:-1]:
            assert np.mean([q[field] for q in group]) == pytest.approx(row[field], abs=0.011)


def test_method_means_reproduce_design_section_6():
    means = load_published().method_means("grid16-dense")
    assert list(means) == ["X1", "X5", "X10"]
    for budget, per_method in STUDY_SUMMARY.items():
        assert list(means[budget]) == list(METHODS)
        for method, (reward, time_s) in per_method.items():
            got_reward, got_time = means[budget][method]
            assert got_reward == pytest.approx(reward, abs=0.1), (budget, method)
            assert got_time == pytest.approx(time_s, abs=0.1), (budget, method)


def test_design_times_include_decomposition_and_raw_times_do_not():
    published = load_published()
    raw = published.method_means(include_decomposition=False)
    assert raw["X1"]["targeted"][1] == pytest.approx(0.0133, abs=1e-3)
    assert raw["X1"]["targeted"][1] != pytest.approx(17.3, abs=0.1)
    full = published.method_means()
    decomp_x1 = np.mean([r["decomp_time"] for r in published.table() if r["budget"] == "X1"])
    for method in ("targeted", "hybrid", "exhaustive"):
        assert full["X1"][method][1] == pytest.approx(raw["X1"][method][1] + decomp_x1)
    assert full["X1"]["scratch"] == raw["X1"]["scratch"]


def test_method_means_are_unweighted_over_modes():
    published = load_published()
    rows = [r for r in published.table() if r["budget"] == "X1"]
    weighted = sum(r["scratch_reward"] * r["n"] for r in rows) / sum(r["n"] for r in rows)
    assert published.method_means()["X1"]["scratch"][0] == pytest.approx(
        np.mean([r["scratch_reward"] for r in rows]))
    assert abs(weighted - 198.2) > 1.0  # weighting by runs would not give the published figure


def test_k_sweep():
    rows = load_published().k_sweep()
    assert [r["k"] for r in rows] == [2, 3, 4]
    assert [round(r["avg_reward"], 1) for r in rows] == [185.6, 187.3, 186.5]
    assert [round(r["avg_time_s"], 1) for r in rows] == [18.7, 28.5, 51.1]
    for row in rows:
        assert row["avg_time_s"] == pytest.approx(row["avg_hybrid_time_s"] + row["avg_decomp_time_s"])
        assert isinstance(row["runs_used"], int)


def test_from_dict_rejects_malformed_documents():
    with pytest.raises(FileFormatError, match="format"):
        Published.from_dict({"format": "other"})
    doc = _raw()
    del doc["tables"]["grid16-dense"][0]["decomp_time"]
    with pytest.raises(FileFormatError, match="decomp_time"):
        Published.from_dict(doc)
    doc = _raw()
    doc["hybrid_k_sweep"][0]["avg_reward"] = "n/a"
    with pytest.raises(FileFormatError, match="avg_reward"):
        Published.from_dict(doc)


LEVER_MEANS = {
    "X1": {"scratch": (150.0, 3.0), "targeted": (140.0, 0.002),
           "hybrid": (160.0, 0.1), "exhaustive": (165.0, 0.5)},
    "X5": {"scratch": (170.0, 12.0), "targeted": (140.0, 0.0),
           "hybrid": (-20.0, 0.1), "exhaustive": (165.0, 0.5)},
}
LEVER_SWEEP = [{"k": k, "avg_reward": 150.0 + k, "avg_time_s": 0.01 * 3 ** k} for k in range(1, 6)]


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_figures_are_written(tmp_path, suffix):
    published = load_published()
    methods = figure_methods(LEVER_MEANS, published.method_means(), tmp_path / f"methods.{suffix}")
    sweep = figure_k_sweep(LEVER_SWEEP, published.k_sweep(), str(tmp_path / f"k.{suffix}"))
    for path in (methods, sweep):
        assert path.exists() and path.stat().st_size > 1000
    if suffix == "svg":
        text = methods.read_text("utf-8")
        assert PUBLISHED_LABEL in text and "lever, grid16, γ=0" in text


def test_figures_are_reproducible(tmp_path):
    for suffix in ("svg", "png"):
        first = figure_methods(LEVER_MEANS, None, tmp_path / f"a.{suffix}").read_bytes()
        second = figure_methods(LEVER_MEANS, None, tmp_path / f"b.{suffix}").read_bytes()
        assert first == second


def test_figures_accept_one_side_and_custom_labels(tmp_path):
    published = load_published()
    figure_methods(None, published.method_means("grid32-first-release"), tmp_path / "p.pdf",
                   published_label="study (first release: grid32, γ=0.99)")
    path = figure_k_sweep(LEVER_SWEEP, None, tmp_path / "k.svg", lever_setting="grid8",
                          lever_gamma=0.99)
    assert "lever, grid8, γ=0.99" in path.read_text("utf-8")
    assert (tmp_path / "p.pdf").read_bytes().startswith(b"%PDF")


def test_figures_reject_bad_input(tmp_path):
    with pytest.raises(LeverError, match="path"):
        figure_methods(LEVER_MEANS, None, tmp_path / "m.jpg")
    with pytest.raises(LeverError, match="path"):
        figure_methods(LEVER_MEANS, None, tmp_path / "missing" / "m.png")
    with pytest.raises(LeverError, match="lever_means"):
        figure_methods({"X1": {"random": (1.0, 1.0)}}, None, tmp_path / "m.png")
    with pytest.raises(LeverError, match="lever_means"):
        figure_methods({"X1": {"scratch": (1.0,)}}, None, tmp_path / "m.png")
    with pytest.raises(LeverError, match="empty"):
        figure_methods({}, None, tmp_path / "m.png")
    with pytest.raises(LeverError, match="published_rows"):
        figure_k_sweep(None, [{"k": 2}], tmp_path / "k.png")
    assert not list(tmp_path.iterdir())
