"""Reading a saved :class:`lever.index.PolicyIndex`: its manifest, arrays and graph files, all checked.

Every file is checked against the sha256 the manifest lists before it is
read, so numpy and hnswlib only ever read the bytes the index's ``save``
wrote; every malformed field is a :class:`FileFormatError` naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


from .array_files import load_npy
from .errors import FileFormatError, LeverError
from .fileio import check_file, check_type, read_json, resolve_inside
from .index_checks import check_graph_file
from .index_graphs import IndexParams, load_graph

INDEX_FORMAT = "lever-policy-index"
INDEX_VERSION = 3  # 2: signatures over the component sets; 3: exact groups, MIPS over distinct signatures


@dataclass(frozen=True)
class SavedIndex:
    """What a saved index holds: ``arrays`` (policy_ids, layout_codes, signatures, embeddings),
    ``layouts`` (layout id of each code), ``params``, and ``graphs``: group key → (MIPS graph, cosine
    graph), None for a kind the group searches exactly."""

    arrays: dict
    layouts: list
    params: IndexParams
    graphs: dict


def saved_version(directory: str | os.PathLike) -> int | None:
    """The format version of the index saved in ``directory``, or None if there is no readable one."""
    try:
        doc = json.loads((Path(directory) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT or type(doc.get("version")) is not int:
        return None
    return doc["version"]


def read_index(directory: Path, fingerprint: str | None) -> SavedIndex:
    """The checked contents of the index saved in ``directory`` (see :meth:`lever.index.PolicyIndex.load`)."""
    manifest = directory / "manifest.json"
    doc = read_json(manifest, INDEX_FORMAT, INDEX_VERSION)
    if fingerprint is not None and check_type(doc.get("fingerprint"), str, f"{manifest}: fingerprint") \
            != fingerprint:
        raise FileFormatError(f"{manifest}: index was built from other data")
    files = _checked_files(manifest, doc)
    paths = {name: resolve_inside(directory, name) for name in files}
    for name, entry in files.items():
        check_file(paths[name], entry)
    n, signature_dim, embedding_dim = (_count(manifest, doc, name, least) for name, least in
                                       (("n_policies", 0), ("signature_dim", 1), ("embedding_dim", 1)))
    arrays = {}
    expected = {"policy_ids": ((n,), "iu"), "layout_codes": ((n,), "iu"),
                "signatures": ((n, signature_dim), "f"), "embeddings": ((n, embedding_dim), "f")}
    for name, (shape, kinds) in expected.items():
        path = paths.get(f"{name}.npy")
        if path is None:
            raise FileFormatError(f"{manifest}: lists no {name}.npy")
        arrays[name] = load_npy(path, f"the index's {name}")
        if arrays[name].shape != shape or arrays[name].dtype.kind not in kinds:
            raise FileFormatError(f"{path}: {arrays[name].dtype} {arrays[name].shape}, expected shape {shape}")
    layouts = [check_type(x, str, f"{manifest}: layouts[{i}]")
               for i, x in enumerate(check_type(doc.get("layouts"), list, f"{manifest}: layouts"))]
    params = check_type(doc.get("params"), dict, f"{manifest}: params")
    if sorted(params) != sorted(IndexParams().as_dict()):
        raise FileFormatError(f"{manifest}: params: expected {', '.join(IndexParams().as_dict())}")
    try:
        params = IndexParams(**{k: check_type(v, int, f"{manifest}: params.{k}") for k, v in params.items()})
    except FileFormatError:
        raise
    except LeverError as exc:
        raise FileFormatError(f"{manifest}: params: {exc}") from None
    graphs, loaded = {}, {}  # loaded: file names -> graph pair, for groups that share graphs
    for i, group in enumerate(check_type(doc.get("groups"), list, f"{manifest}: groups")):
        where = f"{manifest}: groups[{i}]"
        check_type(group, dict, where)
        shared = (group.get("mips"), group.get("cos"))
        if shared in loaded:
            graphs[check_type(group.get("key"), str, f"{where}.key")] = loaded[shared]
            continue
        pair = []
        for space, dim, field, M in (("l2", signature_dim + 1, "mips", params.M),
                                     ("cosine", embedding_dim, "cos", params.M_similarity)):
            name = check_type(group.get(field), (str, type(None)), f"{where}.{field}")
            if name is None:  # this kind is searched exactly in this group
                pair.append(None)
                continue
            if name not in paths:
                raise FileFormatError(f"{manifest}: lists no {name}")
            # The checksum only says the file is the one listed: its structure is checked before hnswlib reads it.
            check_graph_file(paths[name], dim, M, params.ef_construction, max_count=n, max_label=n)
            try:
                pair.append(load_graph(paths[name], space, dim, n))
            except (RuntimeError, ValueError, OSError) as exc:
                raise FileFormatError(f"{paths[name]}: not a readable hnswlib index ({exc})") from None
        graphs[check_type(group.get("key"), str, f"{where}.key")] = loaded[shared] = tuple(pair)
    codes = arrays["layout_codes"]
    if codes.size and (codes.min() < 0 or codes.max() >= len(layouts)):
        raise FileFormatError(f"{directory / 'layout_codes.npy'}: layout codes out of range")
    return SavedIndex(arrays, layouts, params, graphs)


def _checked_files(manifest: Path, doc: dict) -> dict:
    """The manifest's ``files`` (name → ``sha256``, ``bytes``), type-checked."""
    files = check_type(doc.get("files"), dict, f"{manifest}: files")
    for name, entry in files.items():
        where = f"{manifest}: files[{name!r}]"
        check_type(entry, dict, where)
        check_type(entry.get("sha256"), str, f"{where}.sha256")
        check_type(entry.get("bytes"), int, f"{where}.bytes")
    return files


def _count(manifest: Path, doc: dict, name: str, least: int) -> int:
    """An integer field of the manifest, at least ``least``."""
    value = check_type(doc.get(name), int, f"{manifest}: {name}")
    if value < least:
        raise FileFormatError(f"{manifest}: {name}: {value}, expected at least {least}")
    return value
