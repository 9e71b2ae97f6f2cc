"""Crafted hnswlib graph files: checked before hnswlib reads them, so a file built to pass its checksums is
refused in one line and never crashes the process."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import hnswlib
import numpy as np
import pytest

from lever.cli import main
from lever.errors import FileFormatError
from lever.index import IndexParams
from lever.index_checks import check_graph_file
from lever.library import PolicyLibrary

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = IndexParams(M=4, M_similarity=4, exact_below=0, exact_below_similarity=0)


@pytest.fixture(scope="module")
def graph_library(tmp_path_factory):
    """A library of 12 policies on 2 layouts whose index has graphs for every group."""
    library = PolicyLibrary.build(tmp_path_factory.mktemp("graphs") / "lib", setting="grid8", layout_seeds=(0, 1),
                                  objectives=("path", "gold", "hazard", "lever", "path+gold", "gold+hazard"),
                                  budgets=("X1",), episodes=60, jobs=1, progress=False)
    library.index(rebuild=True, params=GRAPHS)
    return library.root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reseal(root: Path, target: Path) -> None:
    """Re-compute both checksums that cover an index file, as anyone handing over a library can."""
    index_manifest = root / "index" / "manifest.json"
    doc = json.loads(index_manifest.read_text())
    doc["files"][target.name] = {"sha256": _sha(target), "bytes": target.stat().st_size}
    index_manifest.write_text(json.dumps(doc, indent=1, sort_keys=True))
    manifest = root / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["index"] = {"sha256": _sha(index_manifest), "bytes": index_manifest.stat().st_size}
    manifest.write_text(json.dumps(doc, indent=1, sort_keys=True))


MUTATE = textwrap.dedent('''
    import hashlib, json, shutil, sys
    from pathlib import Path
    import numpy as np
    from lever.errors import LeverError
    from lever.library import PolicyLibrary
    from tests.test_graph_checks import reseal
    source, work, first, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    outcomes = {"answered": 0, "refused": 0}
    for seed in range(first, first + count):
        rng = np.random.default_rng(seed)
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(source, work)
        graphs = sorted((work / "index").glob("*.bin"))
        target = graphs[rng.integers(len(graphs))]
        data = bytearray(target.read_bytes())
        for _ in range(int(rng.integers(1, 5))):  # 1 to 4 bytes, a third of them in the header
            position = int(rng.integers(len(data))) if rng.random() < 0.7 else int(rng.integers(96))
            data[position] ^= int(rng.integers(1, 256))
        target.write_bytes(bytes(data))
        reseal(work, target)
        try:
            library = PolicyLibrary.open(work)
            index = library.index()
            for layout_id in library.layout_ids:
                index.query("path+gold", 3, layout_id=layout_id)
                index.similar_to(library.records_for(layout_id)[0].policy_id, 3, layout_id=layout_id)
            index.query("gold", 5)
            outcomes["answered"] += 1
        except LeverError as error:
            assert "\\n" not in str(error)
            outcomes["refused"] += 1
    print(json.dumps(outcomes))
''')


def test_seeded_byte_flips_with_valid_checksums_never_crash(graph_library, tmp_path):
    # Without the structural checks, the first 50 of these seeds segfault the process.
    run = subprocess.run([sys.executable, "-c", MUTATE, str(graph_library), str(tmp_path / "work"), "0", "150"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert run.returncode == 0, f"died with {run.returncode} (negative: a signal)\n{run.stderr[-3000:]}"
    outcomes = json.loads(run.stdout.splitlines()[-1])
    assert outcomes["refused"] > 50 and sum(outcomes.values()) == 150


def _graph(tmp_path: Path, n: int = 40, dim: int = 5, M: int = 4, space: str = "l2") -> Path:
    graph = hnswlib.Index(space=space, dim=dim)
    graph.init_index(max_elements=n, M=M, ef_construction=20, random_seed=0)
    graph.add_items(np.random.default_rng(0).random((n, dim), dtype=np.float32), np.arange(n))
    path = tmp_path / "g.bin"
    graph.save_index(str(path))
    return path


HEADER = struct.Struct("<6QiI3QdQ")


def _rewrite(path: Path, change) -> None:
    data = bytearray(path.read_bytes())
    change(data)
    path.write_bytes(bytes(data))


def _set_header(field: int, value):
    def change(data):
        fields = list(HEADER.unpack_from(data, 0))
        fields[field] = value
        HEADER.pack_into(data, 0, *fields)
    return change


def _level0(element: int, offset: int, value: int, fmt: str = "<I"):
    def change(data):
        per = HEADER.unpack_from(data, 0)[3]
        struct.pack_into(fmt, data, HEADER.size + element * per + offset, value)
    return change


def test_a_graph_hnswlib_wrote_passes(tmp_path):
    assert check_graph_file(_graph(tmp_path), 5, 4, 20, max_count=40, max_label=40) == 40
    assert check_graph_file(_graph(tmp_path, space="cosine", M=2), 5, 2, 20, max_count=40, max_label=40) == 40


@pytest.mark.parametrize("change, reason", [
    (_set_header(0, 8), "offsetLevel0 is 8"),
    (_set_header(1, 10 ** 12), "max_elements"),
    (_set_header(2, 41), "cur_element_count is 41"),
    (_set_header(3, 1000), "size_data_per_element"),
    (_set_header(4, 12), "label_offset"),
    (_set_header(5, 12), "offsetData"),
    (_set_header(6, 70), "maxlevel is 70"),
    (_set_header(7, 40), "enterpoint_node is 40"),
    (_set_header(8, 40), "maxM is 40"),
    (_set_header(9, 9), "maxM0 is 9"),
    (_set_header(10, 5), "M is 5"),
    (_set_header(11, math.nan), "mult is nan"),
    (_set_header(12, 2), "ef_construction is 2"),
    (_level0(3, 0, 9), "9 level-0 links, more than maxM0 = 8"),
    (_level0(3, 0, 1 << 16), "flag bits"),
    (_level0(3, 4, 40), "level-0 neighbour id is past"),
    (_level0(3, 4 + 4 * 8, 0x7FC00000), "NaN"),
    (_level0(3, 4 + 4 * 8 + 4 * 5, 40, "<Q"), "label 40 is past"),
    (_level0(3, 4 + 4 * 8 + 4 * 5, 4, "<Q"), "share a label"),
    (lambda data: data.extend(b"\0"), "add up to"),
    (lambda data: data.__delitem__(slice(-1, None)), "ends inside the link lists"),
])
def test_each_broken_rule_is_named(tmp_path, change, reason):
    path = _graph(tmp_path)
    _rewrite(path, change)
    with pytest.raises(FileFormatError, match="not a valid hnswlib graph") as error:
        check_graph_file(path, 5, 4, 20, max_count=40, max_label=40)
    assert reason in str(error.value)


def _upper(path: Path) -> tuple[int, int]:
    """(element, file offset of its level-1 list) of the first element above level 0."""
    data = path.read_bytes()
    fields = HEADER.unpack_from(data, 0)
    position = HEADER.size + fields[2] * fields[3]
    for element in range(fields[2]):
        size = struct.unpack_from("<I", data, position)[0]
        if size:
            return element, position + 4
        position += 4 + size
    raise AssertionError("no element above level 0")


@pytest.mark.parametrize("what, reason", [("count", "links at level 1, more than maxM"),
                                          ("neighbour", "level-1 neighbour id"),
                                          ("low neighbour", "below level 1")])
def test_upper_level_links_are_checked(tmp_path, what, reason):
    path = _graph(tmp_path, n=200)
    element, offset = _upper(path)
    data = bytearray(path.read_bytes())
    if what == "count":
        struct.pack_into("<I", data, offset, 5)
    else:  # an element past the end, or one that has no level 1
        struct.pack_into("<I", data, offset, 1)
        fields = HEADER.unpack_from(data, 0)
        position, low = HEADER.size + fields[2] * fields[3], 0
        for candidate in range(fields[2]):
            if struct.unpack_from("<I", data, position)[0] == 0:
                low = candidate
                break
            position += 4 + struct.unpack_from("<I", data, position)[0]
        struct.pack_into("<I", data, offset + 4, 200 if what == "neighbour" else low)
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=reason):
        check_graph_file(path, 5, 4, 20, max_count=200, max_label=200)


def test_a_crafted_graph_is_refused_by_search_in_one_line(graph_library, tmp_path, capsys):
    root = tmp_path / "lib"
    shutil.copytree(graph_library, root)
    target = root / "index" / "group0.mips.bin"
    _rewrite(target, _level0(0, 4, 10 ** 6))
    reseal(root, target)
    assert main(["search", str(root), "--seed", "0", "--objective", "path+gold", "-k", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a valid hnswlib graph" in err and "lever library reindex" in err
    assert main(["library", "reindex", str(root)]) == 0
