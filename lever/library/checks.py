"""Checks of a library's manifest and tables: field types, paths that stay inside, finite values.

:func:`parse_manifest` turns a ``manifest.json`` just read into checked
objects. Every field is type-checked before use, so a hand-edited manifest
(``null``, an array or a string where an object belongs, a string where a
number belongs) is a :class:`FileFormatError` naming the field, and every
file name goes through :func:`lever.fileio.resolve_inside` before anything
is read, so a manifest cannot make lever read a file outside the library.

Version 2 manifests (before policies could be added) are read as version 3
ones: each record gains ``source`` ``"trained"``, ``vector_q`` true and an
empty ``label``, each layout ``generation`` 0.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import FileFormatError, LeverError
from ..fileio import check_type, resolve_inside
from ..kernels.constants import N_SETS
from ..worlds.objectives import Objective
from .spec import BuildSpec

#: Manifest fields that do not change what a library holds, left out of its fingerprint.
UNFINGERPRINTED = ("index",)

_NUMBER = (int, float)
_SPEC_FIELDS = {"setting": str, "layout_seeds": list, "budgets": list, "objectives": list, "algorithm": str,
                "gamma": _NUMBER, "train_seed": int, "episodes": (int, type(None)), "q_dtype": str,
                "embedding": dict, "rules": str}
#: Spec fields of a tabular world's library only.
_TABULAR_SPEC_FIELDS = {"components": list, "env": (str, type(None)), "env_kwargs": (dict, type(None))}
_EMBEDDING_FIELDS = {"n_states": int, "gamma": _NUMBER, "cell_kinds": bool, "seed": int}
_RECORD_FIELDS = {"policy_id": int, "layout_id": str, "setting": str, "layout_seed": int, "objective": list,
                  "budget": str, "algorithm": str, "gamma": _NUMBER, "train_seed": int, "train_time": _NUMBER,
                  "greedy_return": list, "row": int, "source": str, "vector_q": bool, "label": str}
_LAYOUT_FIELDS = {"layout_id": str, "layout_seed": int, "n_policies": int, "generation": int}
#: What a version-2 manifest lacks, per record and per layout entry: the values its content implies.
_V2_RECORD = {"source": "trained", "vector_q": True, "label": ""}
_V2_LAYOUT = {"generation": 0}
#: Where a record's policy came from: trained by a build, or added as a table.
SOURCES = ("trained", "added")
_TOP_FIELDS = {"format", "version", "spec", "layouts", "records", "files", "index"}
_ARRAY_FIELDS = {"sha256": str, "bytes": int, "shape": list, "dtype": str}
_CHECKSUM_FIELDS = {"sha256": str, "bytes": int}  # any other file, and the record of the saved index


@dataclass(frozen=True)
class Manifest:
    """A checked library manifest.

    ``files`` maps each listed file's name to its entry (``sha256``,
    ``bytes``, and for arrays ``shape`` and ``dtype``); ``paths`` maps the same
    names to their resolved paths, each inside the library; ``counts`` the
    policies of each layout id, in build order; ``generations`` the
    generation of each layout's array files (see
    :func:`lever.library.store.array_file`); ``index`` the record of the
    saved index's ``manifest.json`` (``sha256``, ``bytes``) or None;
    ``version`` the format version the manifest was written in.
    """

    spec: BuildSpec
    records: tuple
    files: dict
    paths: dict
    counts: dict
    index: dict | None
    fingerprint: str
    generations: dict
    version: int


def manifest_fingerprint(doc: dict) -> str:
    """sha256 of a manifest's content without its :data:`UNFINGERPRINTED` fields.

    The content is serialised as :func:`~lever.fileio.write_json` writes it,
    so for a manifest written without those fields this is the file's own sha256.
    """
    content = {key: value for key, value in doc.items() if key not in UNFINGERPRINTED}
    text = json.dumps(content, indent=1, sort_keys=True)  # a hand-written infinity hashes too
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _number(value, where: str) -> float:
    if not (isinstance(value, int) and not isinstance(value, bool)):
        check_type(value, float, where)  # "expected a number, got ..."
    if not math.isfinite(value):  # JSON's 1e400 reads as infinity
        raise FileFormatError(f"{where}: expected a finite number, got {value!r}")
    return value


def _fields(value, types: dict, where: str) -> dict:
    """``value`` checked to be an object with exactly the fields of ``types``, each of its type."""
    check_type(value, dict, where)
    unknown = sorted(set(value) - set(types))
    missing = sorted(set(types) - set(value))
    if unknown or missing:
        problem = f"unknown field {unknown[0]!r}" if unknown else f"lacks field {missing[0]!r}"
        raise FileFormatError(f"{where}: {problem}")
    for name, expected in types.items():
        if expected is _NUMBER:
            _number(value[name], f"{where}.{name}")
        else:
            check_type(value[name], expected, f"{where}.{name}")
    return value


def _list_of(value, expected, where: str) -> list:
    check_type(value, list, where)
    for i, item in enumerate(value):
        if expected is _NUMBER:
            _number(item, f"{where}[{i}]")
        else:
            check_type(item, expected, f"{where}[{i}]")
    return value


def _spec(value, where: str) -> BuildSpec:
    tabular = isinstance(value, dict) and "components" in value
    _fields(value, {**_SPEC_FIELDS, **_TABULAR_SPEC_FIELDS} if tabular else _SPEC_FIELDS, where)
    if tabular:
        _list_of(value["components"], str, f"{where}.components")
    _list_of(value["layout_seeds"], int, f"{where}.layout_seeds")
    _list_of(value["budgets"], str, f"{where}.budgets")
    for i, weights in enumerate(_list_of(value["objectives"], list, f"{where}.objectives")):
        _list_of(weights, _NUMBER, f"{where}.objectives[{i}]")
    _fields(value["embedding"], _EMBEDDING_FIELDS, f"{where}.embedding")
    try:
        return BuildSpec.from_json(value)
    except (LeverError, TypeError, ValueError, OverflowError) as exc:
        raise FileFormatError(f"{where}: not a valid build spec ({exc})") from None


def _record(value, where: str, make_record, version: int, spec: BuildSpec):
    if version == 2 and isinstance(value, dict):
        value = {**_V2_RECORD, **value}
    _fields(value, _RECORD_FIELDS, where)
    if value["source"] not in SOURCES:
        raise FileFormatError(f"{where}.source: {value['source']!r} is not one of {', '.join(SOURCES)}")
    _list_of(value["objective"], _NUMBER, f"{where}.objective")
    n_features = N_SETS if spec.components is None else len(spec.components)
    if len(_list_of(value["greedy_return"], _NUMBER, f"{where}.greedy_return")) != n_features:
        raise FileFormatError(f"{where}.greedy_return: expected {n_features} numbers, "
                              f"got {len(value['greedy_return'])}")
    try:
        return make_record(value) if spec.components is None else make_record(value, spec.components)
    except (LeverError, TypeError, ValueError, OverflowError) as exc:
        raise FileFormatError(f"{where}: not a valid policy record ({exc})") from None


def _layout_id(value: str, where: str) -> str:
    """A layout id, which names a folder: one plain path component."""
    if not value or value in (".", "..") or any(c in value for c in "/\\\0"):
        raise FileFormatError(f"{where}: {value!r} is not a valid layout id")
    return value


def parse_manifest(root: Path, manifest: Path, doc: dict, make_record: Callable[[dict], object]) -> Manifest:
    """Check every field of the library manifest ``doc`` read from ``manifest`` and build its objects.

    ``make_record`` turns one checked record (a dict) into a policy record
    (given, in a tabular world's library, the spec's component names too).

    Raises :class:`FileFormatError` naming the manifest and the field for a
    field of the wrong type, a missing or unknown field, a build spec or
    record lever cannot use, or a file name that is absolute, holds ``..``
    or leads outside ``root`` through a symlink (then the message names
    only the entry, nothing about what lies outside). Nothing is read but
    the names are resolved, so a symlink is followed without opening it.
    """
    unknown = sorted(set(doc) - _TOP_FIELDS)
    if unknown:
        raise FileFormatError(f"{manifest}: unknown field {unknown[0]!r}")
    version = doc.get("version")
    spec = _spec(doc.get("spec"), f"{manifest}: spec")
    raw_records = check_type(doc.get("records"), list, f"{manifest}: records")
    records = tuple(_record(r, f"{manifest}: records[{i}]", make_record, version, spec)
                    for i, r in enumerate(raw_records))
    counts: dict[str, int] = {}
    generations: dict[str, int] = {}
    for i, entry in enumerate(check_type(doc.get("layouts"), list, f"{manifest}: layouts")):
        where = f"{manifest}: layouts[{i}]"
        if version == 2 and isinstance(entry, dict):
            entry = {**_V2_LAYOUT, **entry}
        _fields(entry, _LAYOUT_FIELDS, where)
        layout_id = _layout_id(entry["layout_id"], f"{where}.layout_id")
        if layout_id in counts:
            raise FileFormatError(f"{where}: layout {layout_id} is listed twice")
        if entry["n_policies"] < 0:
            raise FileFormatError(f"{where}.n_policies: negative")
        if entry["generation"] < 0:
            raise FileFormatError(f"{where}.generation: negative")
        counts[layout_id] = entry["n_policies"]
        generations[layout_id] = entry["generation"]
    files = check_type(doc.get("files"), dict, f"{manifest}: files")
    for name, entry in files.items():
        where = f"{manifest}: files[{name!r}]"
        is_array = isinstance(entry, dict) and ("shape" in entry or "dtype" in entry)
        _fields(entry, _ARRAY_FIELDS if is_array else _CHECKSUM_FIELDS, where)
        if "shape" in entry:
            _list_of(entry["shape"], int, f"{where}.shape")
    paths = {name: resolve_inside(root, name) for name in files}
    return Manifest(spec, records, files, paths, counts, index_record(manifest, doc), manifest_fingerprint(doc),
                    generations, version)


def index_record(manifest: Path, doc: dict) -> dict | None:
    """The manifest's record of the saved index (``sha256``, ``bytes``), checked; None if it has none."""
    index = doc.get("index")
    return None if index is None else _fields(index, _CHECKSUM_FIELDS, f"{manifest}: index")


class UnusableTables(LeverError):
    """A trained policy's Q tables hold NaN or an infinity, so no library holding it is saved."""


def check_finite_tables(q: np.ndarray, q_vector: np.ndarray | None, objective: Objective, budget: str,
                        layout_seed: int) -> None:
    """Raise :class:`UnusableTables` (a :class:`LeverError`) if a Q table to be saved holds NaN or an infinity.

    Checks ``q`` and ``q_vector`` (None: no vector Q table), both as they
    will be stored, after the cast to the library's Q dtype.

    Such a policy has no greedy action anywhere it is not finite, so a
    library holding it would be unusable; the message names the objective,
    the budget and the layout seed that produced it.
    """
    for name, table in (("Q table", q), ("vector Q table", q_vector)):
        if table is not None and not np.all(np.isfinite(table)):
            raise UnusableTables(f"training {objective} at budget {budget} on layout seed {layout_seed} gave "
                                 f"a {name} with NaN or infinity (weights too large for the Q dtype?); "
                                 f"the library was not saved")

