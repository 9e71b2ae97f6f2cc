"""Structural checks of a saved hnswlib graph, made before hnswlib reads it.

A checksum only says that a file is the one its manifest lists; whoever
writes the manifest can list any file. hnswlib trusts the files it loads:
a link count above the graph's degree, a neighbour id past the last
element or an entry point above its level makes it read or write outside
its buffers and kill the process. So every graph file is parsed here first,
following hnswlib's ``HierarchicalNSW::saveIndex`` (``hnswalg.h``, format of
hnswlib 0.7 and 0.8), and refused with one :class:`FileFormatError` unless

* the header (``offsetLevel0``, ``max_elements``, ``cur_element_count``,
  ``size_data_per_element``, ``label_offset``, ``offsetData``, ``maxlevel``,
  ``enterpoint_node``, ``maxM``, ``maxM0``, ``M``, ``mult``,
  ``ef_construction``) describes a graph of the expected space, dimension,
  degree and size, with offsets and sizes as hnswlib computes them;
* the file's size is exactly what that header and the per-element link
  lists add up to;
* every level-0 link count is at most ``maxM0``, with no flag bits set (no
  deleted element), and every neighbour id is below ``cur_element_count``;
* every upper-level link list is a whole number of levels no higher than
  ``maxlevel``, with at most ``maxM`` links per level, each to an element
  that itself reaches that level; the entry point reaches ``maxlevel``;
* every vector is finite and every label is distinct and below the bound
  the caller gives.

Layout of the file (little-endian; ``size_t`` 8 bytes, ``tableint`` 4)::

    header (96 bytes)                    the fields above, in that order
    cur_element_count × size_data_per_element
                                         per element: link count (uint16) and flags (2 bytes),
                                         maxM0 neighbour ids (uint32), the vector (dim float32),
                                         the label (uint64)
    per element: uint32 n, then n bytes  the upper levels: n / (4 + 4·maxM) levels, each a
                                         link count (uint32) and maxM neighbour ids
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np

from .errors import FileFormatError

#: The header of a saved graph: 6 size_t, int maxlevel, uint32 entry point, 3 size_t, double mult, size_t.
_HEADER = struct.Struct("<6QiI3QdQ")
_HEADER_FIELDS = ("offsetLevel0", "max_elements", "cur_element_count", "size_data_per_element", "label_offset",
                  "offsetData", "maxlevel", "enterpoint_node", "maxM", "maxM0", "M", "mult", "ef_construction")
#: Levels above which a graph is refused: hnswlib draws a level with P(level ≥ l) = M^-l, so even
#: 10¹² elements at M = 2 stay below 40.
MAX_LEVEL = 64


def check_graph_file(path: str | os.PathLike, dim: int, M: int, ef_construction: int, max_count: int,
                     max_label: int) -> int:
    """Check the hnswlib graph file at ``path`` before hnswlib reads it; returns its element count.

    ``dim`` float32 components per vector; ``M`` the degree the graph was
    built with (so ``maxM = M``, ``maxM0 = 2·M``); ``ef_construction`` its
    build parameter; at most ``max_count`` elements, labels below
    ``max_label``. Raises :class:`FileFormatError` naming the file and the
    first broken rule (see the module docstring). Reads the file through a
    memory map; the checks are vectorised over the level-0 block, and one
    pass over the per-element sizes finds the upper-level lists.
    """
    path = Path(path)

    def bad(reason: str) -> FileFormatError:
        return FileFormatError(f"{path}: not a valid hnswlib graph ({reason})")

    try:
        size = path.stat().st_size
        if size < _HEADER.size:
            raise bad(f"{size} bytes, shorter than its {_HEADER.size}-byte header")
        data = np.memmap(path, dtype=np.uint8, mode="r")
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    header = dict(zip(_HEADER_FIELDS, _HEADER.unpack_from(data, 0)))
    count = _check_header(header, dim, M, ef_construction, max_count, bad)
    per_element = header["size_data_per_element"]
    level0_end = _HEADER.size + count * per_element
    if size < level0_end:
        raise bad(f"{size} bytes, its header needs at least {level0_end}")
    block = data[_HEADER.size:level0_end].reshape(count, per_element)
    _check_level0(block, header, dim, max_label, bad)
    levels, upper = _upper_lists(data, level0_end, count, header, bad)
    _check_upper(data, levels, upper, header, bad)
    return count


def _check_header(header: dict, dim: int, M: int, ef_construction: int, max_count: int, bad) -> int:
    """The element count the header declares, after checking every header field."""
    links0 = 4 + 4 * 2 * M
    expected = {"offsetLevel0": 0, "maxM": M, "maxM0": 2 * M, "M": M, "ef_construction": ef_construction,
                "offsetData": links0, "label_offset": links0 + 4 * dim,
                "size_data_per_element": links0 + 4 * dim + 8}
    for name, value in expected.items():
        if header[name] != value:
            raise bad(f"{name} is {header[name]}, expected {value}")
    count = header["cur_element_count"]
    if count > max_count:
        raise bad(f"cur_element_count is {count}, more than the {max_count} vectors indexed")
    if not count <= header["max_elements"] <= max(max_count, 1):
        raise bad(f"max_elements is {header['max_elements']}, expected {count}..{max(max_count, 1)}")
    mult, expected_mult = header["mult"], 1 / math.log(M) if M > 1 else math.inf  # hnswlib: 1 / log(M)
    if not (mult == expected_mult or math.isclose(mult, expected_mult, rel_tol=1e-12)):
        raise bad(f"mult is {mult!r}, expected 1/ln({M})")
    if count == 0:
        if header["maxlevel"] != -1:
            raise bad(f"maxlevel is {header['maxlevel']} in a graph of no elements")
        return 0
    if not 0 <= header["maxlevel"] <= MAX_LEVEL:
        raise bad(f"maxlevel is {header['maxlevel']}, expected 0..{MAX_LEVEL}")
    if header["enterpoint_node"] >= count:
        raise bad(f"enterpoint_node is {header['enterpoint_node']}, past the {count} elements")
    return count


def _check_level0(block: np.ndarray, header: dict, dim: int, max_label: int, bad) -> None:
    """Link counts, flags and neighbour ids of level 0; finite vectors; distinct labels in range."""
    count, max_m0 = block.shape[0], header["maxM0"]
    if count == 0:
        return
    links = _columns(block, 0, 1 + max_m0, "<u4")  # (count, 1 + maxM0)
    n_links = links[:, 0] & 0xFFFF
    if np.any(links[:, 0] >> 16):
        raise bad(f"element {int(np.argmax(links[:, 0] >> 16))} has flag bits set (a deleted element)")
    if n_links.max() > max_m0:
        raise bad(f"element {int(np.argmax(n_links))} has {int(n_links.max())} level-0 links, more than "
                  f"maxM0 = {max_m0}")
    used = np.arange(max_m0)[None, :] < n_links[:, None]
    if np.any(links[:, 1:][used] >= count):
        raise bad(f"a level-0 neighbour id is past the {count} elements")
    vectors = _columns(block, header["offsetData"], dim, "<f4")
    if not np.all(np.isfinite(vectors)):
        raise bad("a vector holds NaN or infinity")
    labels = _columns(block, header["label_offset"], 1, "<u8").ravel()
    if labels.max() >= max_label:
        raise bad(f"label {int(labels.max())} is past the {max_label} labels this graph may hold")
    if np.unique(labels).size != count:
        raise bad("two elements share a label")


def _columns(block: np.ndarray, offset: int, width: int, dtype: str) -> np.ndarray:
    """A view (rows, width) of ``dtype`` values starting ``offset`` bytes into each row of the uint8 ``block``."""
    return np.ndarray((block.shape[0], width), dtype=dtype, buffer=block, offset=offset,
                      strides=(block.strides[0], np.dtype(dtype).itemsize))


def _upper_lists(data: np.ndarray, start: int, count: int, header: dict, bad) -> tuple[np.ndarray, np.ndarray]:
    """Each element's level int64 (count,) and the file offsets of its upper-level lists int64 (count,).

    Checks that each list is whole levels, no higher than maxlevel, and that the lists end the file.
    """
    per_level = 4 + 4 * header["maxM"]
    levels = np.zeros(count, dtype=np.int64)
    offsets = np.zeros(count, dtype=np.int64)
    size = data.shape[0]
    raw = memoryview(data)
    position = start
    for element in range(count):
        if position + 4 > size:
            raise bad(f"ends inside the link lists of element {element}")
        n_bytes = int.from_bytes(raw[position:position + 4], "little")
        position += 4
        if n_bytes:
            level, rest = divmod(n_bytes, per_level)
            if rest or level > header["maxlevel"]:
                raise bad(f"element {element} has {n_bytes} bytes of upper-level links, not 1..{header['maxlevel']} "
                          f"levels of {per_level} bytes")
            levels[element], offsets[element] = level, position
            position += n_bytes
    if position != size:
        raise bad(f"{size} bytes, its header and link lists add up to {position}")
    return levels, offsets


def _check_upper(data: np.ndarray, levels: np.ndarray, offsets: np.ndarray, header: dict, bad) -> None:
    """Link counts and neighbours of every upper level; the entry point reaches the top level."""
    if levels.size == 0:
        return
    top, max_m = header["maxlevel"], header["maxM"]
    if levels.max() != top or levels[header["enterpoint_node"]] != top:
        raise bad(f"maxlevel is {top}, but the entry point reaches level {int(levels[header['enterpoint_node']])} "
                  f"and the highest element level {int(levels.max())}")
    per_level = 4 + 4 * max_m
    elements = np.flatnonzero(levels)
    for level in range(1, top + 1):
        at = elements[levels[elements] >= level]
        starts = offsets[at] + (level - 1) * per_level
        rows = data[starts[:, None] + np.arange(per_level)[None, :]].view("<u4")  # (len(at), 1 + maxM)
        n_links = rows[:, 0]
        if n_links.max() > max_m:
            raise bad(f"element {int(at[np.argmax(n_links)])} has {int(n_links.max())} links at level {level}, "
                      f"more than maxM = {max_m}")
        used = np.arange(max_m)[None, :] < n_links[:, None]
        neighbours = rows[:, 1:][used].astype(np.int64)
        if np.any(neighbours >= levels.size) or np.any(levels[np.minimum(neighbours, levels.size - 1)] < level):
            raise bad(f"a level-{level} neighbour id is past the elements or below level {level}")


def check_graph_labels(graph, expected: np.ndarray, where: str) -> None:
    """FileFormatError unless the labels of a loaded hnswlib ``graph`` are exactly ``expected`` int (n,)
    in some order (the points its group searches: distinct signatures or policy rows)."""
    labels = np.sort(np.asarray(graph.get_ids_list(), dtype=np.int64))
    if labels.shape != expected.shape or not np.array_equal(labels, np.sort(expected)):
        raise FileFormatError(f"{where}: its graph holds {labels.size} points, not the group's {expected.size}")
