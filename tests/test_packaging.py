"""Package metadata: the licence, the typing marker and the project links ship as declared."""

from importlib.resources import files
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


@pytest.fixture(scope="module")
def project():
    """The parsed pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_mit_and_shipped(project):
    assert project["project"]["license"] == "MIT"
    assert project["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the lever authors" in text


def test_py_typed_marker_is_package_data(project):
    assert files("lever").joinpath("py.typed").is_file()
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["lever"]


def test_classifiers_cover_the_supported_pythons(project):
    meta = project["project"]
    low = meta["requires-python"].removeprefix(">=")
    versions = {c.rsplit(" :: ", 1)[1] for c in meta["classifiers"]
                if c.startswith("Programming Language :: Python :: 3.")}
    assert {"3.10", "3.11", "3.12"} <= versions
    assert min(versions, key=lambda v: tuple(map(int, v.split(".")))) == low
    assert not any(c.startswith("License ::") for c in meta["classifiers"])  # PEP 639: the expression rules
    assert set(meta["urls"]) == {"Homepage", "Documentation", "Issues"}
    assert meta["urls"]["Issues"] == meta["urls"]["Homepage"] + "/issues"


def test_the_peer_of_the_mo_benchmark_stays_out_of_the_tests(project):
    extras = project["project"]["optional-dependencies"]
    assert any(req.startswith("morl-baselines") for req in extras["compare"])
    for name in ("test", "ray"):
        assert not any(req.startswith(("morl-baselines", "torch", "wandb")) for req in extras[name])
    assert not any(req.startswith(("morl-baselines", "torch", "wandb"))
                   for req in project["project"]["dependencies"])
