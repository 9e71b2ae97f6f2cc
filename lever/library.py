"""The policy library: pre-trained tabular policies with their support, embeddings and index.

Directory format (``LIBRARY_VERSION`` 1)::

    ROOT/manifest.json                 format, version, build spec, layouts, records,
                                       and per file: sha256, bytes, shape, dtype
    ROOT/layouts/<layout_id>/layout.json        the layout (text form and spec)
    ROOT/layouts/<layout_id>/<array>.npy        one stacked array per field, rows = policies
    ROOT/index/                        the PolicyIndex (see :mod:`lever.index`)

Per layout the arrays are ``policy_ids`` int64 (P,), ``q`` (P, S, A) and
``q_vector`` (P, S, A, C) in the library's Q dtype (float32 by default),
``visits`` int64 (P, S, A), ``next_state`` int32 (P, S, A), ``reward_model``
float64 (P, S, A, C), ``canonical_states`` int64 (K,), ``psi`` float64
(P, K, D), ``psi_steps`` int32 (P, K) and ``psi_ends`` int8 (P, K). Arrays
open memory-mapped, so a library larger than RAM still opens.

Building is atomic and resumable. Each trained policy is saved at once as
``ROOT/.staging/p<policy id>.npz`` (written under a temporary name, then
renamed); the spec of the build sits beside them in ``build.json``. When
every policy is there, the per-layout arrays are stacked and written, then
``manifest.json`` is written last and the staging folder removed. A build
that stops at any point leaves no manifest, so the directory never opens as
a library; running the same build again reuses every staged policy and
trains only the rest. Greedy returns and embeddings are computed from the
stored (cast) Q tables, so they describe exactly the policies saved.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from .embeddings import (
    EmbeddingConfig, SuccessorFeatures, behaviour_embeddings, canonical_states, embed_policies,
    value_signatures,
)
from .errors import FileFormatError, LeverError
from .evaluation import rollout
from .fileio import atomic_write, read_json, sha256_file, write_json
from .gridworld import PRESETS, Layout
from .index import IndexParams, PolicyIndex
from .kernels.constants import EXIT, N_ACTIONS, N_COMPONENTS
from .objectives import Objective
from .training import ALGORITHMS, TrainConfig, train

LIBRARY_FORMAT = "lever-policy-library"
LIBRARY_VERSION = 1
BUILD_FORMAT = "lever-library-build"
BUILD_VERSION = 1
MANIFEST = "manifest.json"
STAGING = ".staging"
Q_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class PolicyRecord:
    """Metadata of one library policy; ``row`` is its index inside its layout's :class:`PolicyTables`."""

    policy_id: int
    layout_id: str
    setting: str
    layout_seed: int
    objective: Objective
    budget: str
    algorithm: str
    gamma: float
    train_seed: int
    train_time: float
    greedy_return: tuple[float, ...]
    row: int

    def to_json(self) -> dict:
        """This record as a JSON-ready dict."""
        doc = asdict(self)
        doc["objective"] = list(self.objective.weights)
        doc["greedy_return"] = list(self.greedy_return)
        return doc

    @classmethod
    def from_json(cls, doc: dict) -> "PolicyRecord":
        """A record from a dict written by :meth:`to_json`."""
        return cls(**{**doc, "objective": Objective.parse(doc["objective"]),
                      "greedy_return": tuple(float(x) for x in doc["greedy_return"])})


@dataclass(frozen=True, eq=False)
class PolicyTables:
    """Every policy of one layout, stacked (P policies, S states, A actions, C components).

    ``policy_ids`` int64 (P,); ``q`` (P, S, A) and ``q_vector`` (P, S, A, C)
    or None in the library's Q dtype (float32 by default); ``visits`` int64
    (P, S, A); ``next_state`` int32 (P, S, A), -1 where unknown;
    ``reward_model`` float64 (P, S, A, C). Memory-mapped and read-only when
    opened from disk.
    """

    policy_ids: np.ndarray
    q: np.ndarray
    visits: np.ndarray
    next_state: np.ndarray
    reward_model: np.ndarray
    q_vector: np.ndarray | None

    def __len__(self) -> int:
        return int(self.policy_ids.shape[0])

    @property
    def support(self) -> np.ndarray:
        """bool (P, S, A): the pairs each policy's training visited."""
        return np.asarray(self.visits) > 0


@dataclass(frozen=True)
class BuildSpec:
    """What a library build trains: every objective × budget × layout seed of one grid setting.

    ``episodes`` overrides the budget's episode count (quick builds, tests);
    the budget's ε decay is kept.
    """

    setting: str = "grid16"
    layout_seeds: tuple[int, ...] = (0,)
    budgets: tuple[str, ...] = ("X1",)
    objectives: tuple[Objective, ...] = tuple(Objective.parse(c) for c in ("path", "gold", "hazard", "lever"))
    algorithm: str = "sarsa"
    gamma: float = 0.0
    train_seed: int = 0
    episodes: int | None = None
    q_dtype: str = "float32"
    embedding: EmbeddingConfig = EmbeddingConfig()

    def __post_init__(self):
        if self.setting not in PRESETS:
            raise LeverError(f"unknown grid setting {self.setting!r}; valid: {', '.join(PRESETS)}")
        object.__setattr__(self, "layout_seeds", tuple(int(s) for s in self.layout_seeds))
        object.__setattr__(self, "budgets", tuple(str(b) for b in self.budgets))
        object.__setattr__(self, "objectives", tuple(Objective.parse(o) for o in self.objectives))
        for name in ("layout_seeds", "budgets", "objectives"):
            values = getattr(self, name)
            if not values:
                raise LeverError(f"a library build needs at least one of {name}")
            if len(set(values)) != len(values):
                raise LeverError(f"{name} repeat an entry: {[str(v) for v in values]}")
        if self.algorithm not in ALGORITHMS:
            raise LeverError(f"unknown algorithm {self.algorithm!r}; valid: {', '.join(ALGORITHMS)}")
        if self.q_dtype not in Q_DTYPES:
            raise LeverError(f"q_dtype must be one of {', '.join(Q_DTYPES)}, got {self.q_dtype!r}")
        for budget in self.budgets:
            self.train_config(budget)  # validates budget, gamma and episodes before any work

    def train_config(self, budget: str) -> TrainConfig:
        """The training configuration of this build at ``budget``."""
        overrides = {"algorithm": self.algorithm, "gamma": float(self.gamma), "seed": self.train_seed,
                     "vector_q": True}
        if self.episodes is not None:
            overrides["episodes"] = int(self.episodes)
        return TrainConfig.from_budget(budget, self.setting, **overrides)

    @property
    def policies_per_layout(self) -> int:
        """Policies trained per layout: budgets × objectives."""
        return len(self.budgets) * len(self.objectives)

    def task(self, policy_id: int) -> tuple[int, str, Objective, int]:
        """(layout seed, budget, objective, row) of a policy id.

        Ids run seed-major, then budget, then objective.
        """
        layout_index, row = divmod(policy_id, self.policies_per_layout)
        budget_index, objective_index = divmod(row, len(self.objectives))
        return (self.layout_seeds[layout_index], self.budgets[budget_index],
                self.objectives[objective_index], row)

    @property
    def n_policies(self) -> int:
        """Policies in the whole build: layout seeds × policies per layout."""
        return len(self.layout_seeds) * self.policies_per_layout

    def to_json(self) -> dict:
        """This spec as a JSON-ready dict."""
        return {"setting": self.setting, "layout_seeds": list(self.layout_seeds),
                "budgets": list(self.budgets), "objectives": [list(o.weights) for o in self.objectives],
                "algorithm": self.algorithm, "gamma": self.gamma, "train_seed": self.train_seed,
                "episodes": self.episodes, "q_dtype": self.q_dtype, "embedding": asdict(self.embedding)}

    @classmethod
    def from_json(cls, doc: dict) -> "BuildSpec":
        """A spec from a dict written by :meth:`to_json`."""
        return cls(**{**doc, "layout_seeds": tuple(doc["layout_seeds"]), "budgets": tuple(doc["budgets"]),
                      "objectives": tuple(Objective.parse(w) for w in doc["objectives"]),
                      "embedding": EmbeddingConfig(**doc["embedding"])})


@dataclass(frozen=True)
class BuildEvent:
    """Reported to a build's ``on_policy`` callback once per policy: ``resumed`` if it came from staging."""

    policy_id: int
    layout_seed: int
    budget: str
    objective: Objective
    train_time: float
    resumed: bool


def _shard_path(staging: Path, policy_id: int) -> Path:
    return staging / f"p{policy_id:07d}.npz"


def _shard_key(spec: BuildSpec, policy_id: int) -> str:
    seed, budget, objective, _ = spec.task(policy_id)
    return json.dumps([policy_id, seed, budget, list(objective.weights)])


def _train_one(spec_doc: dict, policy_id: int, staging: str) -> tuple[int, float]:
    """Train one policy and stage it; runs in a worker process. Returns (policy id, train time)."""
    spec = BuildSpec.from_json(spec_doc)
    seed, budget, objective, _ = spec.task(policy_id)
    layout = Layout.generate(spec.setting, seed=seed)
    policy = train(layout, objective, spec.train_config(budget))
    q = policy.q.astype(spec.q_dtype)
    # The return of the policy as stored, so that it matches a rollout of the saved table.
    greedy = rollout(layout, q, objective).return_vector
    arrays = {"key": np.array(_shard_key(spec, policy_id)), "layout_id": np.array(layout.id),
              "q": q, "q_vector": policy.q_vector.astype(spec.q_dtype), "visits": policy.visits,
              "next_state": policy.next_state, "reward_model": policy.reward_model,
              "greedy_return": greedy, "train_time": np.array(policy.wall_time)}
    atomic_write(_shard_path(Path(staging), policy_id), lambda h: np.savez(h, **arrays), binary=True)
    return policy_id, float(policy.wall_time)


def _read_shard(path: Path, key: str) -> dict | None:
    """The arrays of a staged policy, or None when it is missing, unreadable or from another build."""
    try:
        with np.load(path) as shard:
            arrays = {name: shard[name] for name in shard.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    if str(arrays.get("key", "")) != key:
        return None
    return arrays


_ARRAY_FIELDS = ("policy_ids", "q", "visits", "next_state", "reward_model", "q_vector",
                 "canonical_states", "psi", "psi_steps", "psi_ends")


class PolicyLibrary:
    """A directory of trained policies (module docstring); open with :meth:`open`, make with :meth:`build`.

    ``records`` lists every policy in id order; ``layout_ids`` the layouts in
    build order.
    """

    def __init__(self, root: Path, spec: BuildSpec, records: tuple[PolicyRecord, ...],
                 layouts: dict[str, Layout], arrays: dict[str, dict[str, np.ndarray]], fingerprint: str):
        self.root = root
        self.spec = spec
        self.records = records
        self.layout_ids = tuple(layouts)
        self._layouts = layouts
        self._arrays = arrays
        self.fingerprint = fingerprint
        self._index: PolicyIndex | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (f"PolicyLibrary({str(self.root)!r}: {len(self)} policies, {len(self.layout_ids)} layouts, "
                f"{self.spec.setting})")

    # -- building -------------------------------------------------------------
    @classmethod
    def build(cls, root, *, setting: str = "grid16", layout_seeds=(0,), budgets=("X1",),
              objectives=("path", "gold", "hazard", "lever"), algorithm: str = "sarsa",
              gamma: float = 0.0, train_seed: int = 0, jobs: int | None = None, progress: bool = True,
              episodes: int | None = None, q_dtype: str = "float32",
              embedding: EmbeddingConfig | None = None,
              on_policy: Callable[[BuildEvent], None] | None = None) -> "PolicyLibrary":
        """Train every objective × budget × layout seed and save the library at ``root``.

        ``jobs`` worker processes (default: every core; 1 trains in this
        process); ``episodes`` overrides the budgets' episode count;
        ``on_policy`` is called in this process after each policy is staged.
        Resumes an interrupted build of the same spec; if ``root`` already
        holds a finished library of the same spec it is opened, of another
        spec it is an error.
        """
        spec = BuildSpec(setting, tuple(layout_seeds), tuple(budgets),
                         tuple(Objective.parse(o) for o in objectives), algorithm, float(gamma),
                         int(train_seed), episodes, q_dtype, embedding or EmbeddingConfig())
        if jobs is not None and jobs < 1:
            raise LeverError(f"jobs must be >= 1, got {jobs}")
        root = Path(root)
        if (root / MANIFEST).exists():
            library = cls.open(root)
            if library.spec != spec:
                raise LeverError(f"{root} already holds a library built with other settings; "
                                 f"choose another directory")
            # A build stopped after its manifest but before clearing the stage: finish the cleanup.
            shutil.rmtree(root / STAGING, ignore_errors=True)
            return library
        layouts = [Layout.generate(spec.setting, seed=s) for s in spec.layout_seeds]
        ids = [layout.id for layout in layouts]
        if len(set(ids)) != len(ids):
            raise LeverError(f"layout seeds {list(spec.layout_seeds)} give repeated layouts")
        for layout in layouts:  # fail before training if K does not fit
            embed_policies(layout, np.zeros((0, layout.n_states), dtype=np.int32), config=spec.embedding)

        staging = root / STAGING
        build_file = staging / "build.json"
        if build_file.exists():
            staged = read_json(build_file, BUILD_FORMAT, BUILD_VERSION)
            if BuildSpec.from_json(staged["spec"]) != spec:
                raise LeverError(f"{staging} holds an interrupted build with other settings; run the same "
                                 f"build again to resume it, or delete that folder")
        else:
            write_json(build_file, BUILD_FORMAT, BUILD_VERSION, {"spec": spec.to_json()})

        staged_times: dict[int, float] = {}
        for policy_id in range(spec.n_policies):
            shard = _read_shard(_shard_path(staging, policy_id), _shard_key(spec, policy_id))
            if shard is not None:
                staged_times[policy_id] = float(shard["train_time"])
        pending = [p for p in range(spec.n_policies) if p not in staged_times]

        def report(policy_id: int, train_time: float, resumed: bool) -> None:
            bar.update(1)
            if on_policy is not None:
                seed, budget, objective, _ = spec.task(policy_id)
                on_policy(BuildEvent(policy_id, seed, budget, objective, train_time, resumed))

        spec_doc = spec.to_json()
        jobs = min(jobs or os.cpu_count() or 1, max(1, len(pending)))
        with tqdm(total=spec.n_policies, desc="training policies", unit="policy",
                  disable=not progress) as bar:
            for policy_id, train_time in staged_times.items():
                report(policy_id, train_time, True)
            if jobs == 1:
                for policy_id in pending:
                    report(*_train_one(spec_doc, policy_id, str(staging)), False)
            else:
                # spawn: workers must not inherit the parent's Numba threading state.
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                    futures = [pool.submit(_train_one, spec_doc, p, str(staging)) for p in pending]
                    try:
                        for future in as_completed(futures):
                            report(*future.result(), False)
                    except BaseException:
                        for future in futures:
                            future.cancel()
                        raise
        cls._finalize(root, spec, layouts, staging)
        shutil.rmtree(staging, ignore_errors=True)
        library = cls.open(root)
        library.index()
        return library

    @staticmethod
    def _finalize(root: Path, spec: BuildSpec, layouts: list[Layout], staging: Path) -> None:
        """Stack the staged policies per layout, embed them, write the arrays, then the manifest.

        Only one layout's policies are in memory at a time.
        """
        files: dict[str, dict] = {}
        records = []
        per_layout = spec.policies_per_layout
        for layout_index, layout in enumerate(layouts):
            folder = root / "layouts" / layout.id
            ids = list(range(layout_index * per_layout, (layout_index + 1) * per_layout))
            shards = {}
            for policy_id in ids:
                shards[policy_id] = _read_shard(_shard_path(staging, policy_id), _shard_key(spec, policy_id))
                if shards[policy_id] is None:
                    raise LeverError(f"{_shard_path(staging, policy_id)}: staged policy went missing "
                                     f"during the build")
                if str(shards[policy_id]["layout_id"]) != layout.id:
                    raise LeverError(f"staged policy {policy_id} was trained on layout "
                                     f"{shards[policy_id]['layout_id']}, expected {layout.id}")
            stacked = {name: np.stack([shards[p][name] for p in ids])
                       for name in ("q", "q_vector", "visits", "next_state", "reward_model")}
            stacked["policy_ids"] = np.array(ids, dtype=np.int64)
            features = embed_policies(layout, stacked["q"], config=spec.embedding)
            stacked["canonical_states"] = canonical_states(layout, spec.embedding.n_states,
                                                          spec.embedding.seed)
            stacked["psi"], stacked["psi_steps"], stacked["psi_ends"] = \
                features.psi, features.steps, features.ends
            for name in _ARRAY_FIELDS:
                path = folder / f"{name}.npy"
                array = np.ascontiguousarray(stacked[name])
                atomic_write(path, lambda h, a=array: np.save(h, a), binary=True)
                files[path.relative_to(root).as_posix()] = {
                    "sha256": sha256_file(path), "bytes": path.stat().st_size,
                    "shape": list(array.shape), "dtype": array.dtype.str}
            layout.save(folder / "layout.json")
            path = folder / "layout.json"
            files[path.relative_to(root).as_posix()] = {"sha256": sha256_file(path),
                                                        "bytes": path.stat().st_size}
            for row, policy_id in enumerate(ids):
                seed, budget, objective, _ = spec.task(policy_id)
                shard = shards[policy_id]
                records.append(PolicyRecord(
                    policy_id, layout.id, spec.setting, seed, objective, budget, spec.algorithm,
                    float(spec.gamma), spec.train_seed, float(shard["train_time"]),
                    tuple(float(x) for x in shard["greedy_return"]), row))
        write_json(root / MANIFEST, LIBRARY_FORMAT, LIBRARY_VERSION, {
            "spec": spec.to_json(),
            "layouts": [{"layout_id": layout.id, "layout_seed": seed, "n_policies": per_layout}
                        for layout, seed in zip(layouts, spec.layout_seeds)],
            "records": [r.to_json() for r in records], "files": files})

    # -- opening --------------------------------------------------------------
    @classmethod
    def open(cls, root, verify: bool = True) -> "PolicyLibrary":
        """Open a library directory, checking format version, files, sizes, shapes, dtypes and checksums.

        ``verify=False`` skips only the sha256 pass (every byte read once).
        Raises :class:`FileFormatError` naming the offending file; nothing
        on disk is changed.
        """
        root = Path(root)
        manifest = root / MANIFEST
        if not manifest.exists() and (root / STAGING).exists():
            raise FileFormatError(f"{manifest}: no such file; {root} holds an unfinished build, run the "
                                  f"same build again to finish it")
        doc = read_json(manifest, LIBRARY_FORMAT, LIBRARY_VERSION)
        try:
            spec = BuildSpec.from_json(doc["spec"])
            records = tuple(PolicyRecord.from_json(r) for r in doc["records"])
            entries = doc["files"]
            layout_docs = doc["layouts"]
            layout_ids = [str(entry["layout_id"]) for entry in layout_docs]
            counts = {str(entry["layout_id"]): int(entry["n_policies"]) for entry in layout_docs}
        except (KeyError, TypeError, ValueError) as exc:
            raise FileFormatError(f"{manifest}: malformed library manifest ({exc!r})") from None
        if [r.policy_id for r in records] != list(range(len(records))):
            raise FileFormatError(f"{manifest}: policy ids are not 0..{len(records) - 1} in order")
        for name, entry in entries.items():
            cls._check_file(root / name, entry, verify)
        layouts: dict[str, Layout] = {}
        arrays: dict[str, dict[str, np.ndarray]] = {}
        for layout_id in layout_ids:
            folder = root / "layouts" / layout_id
            layout_path = folder / "layout.json"
            if layout_path.relative_to(root).as_posix() not in entries:
                raise FileFormatError(f"{manifest}: lists no {layout_path.relative_to(root)}")
            try:
                layout = Layout.load(layout_path)
            except FileFormatError:
                raise
            except LeverError as exc:
                raise FileFormatError(f"{layout_path}: invalid layout ({exc})") from None
            if layout.id != layout_id:
                raise FileFormatError(f"{layout_path}: layout id {layout.id}, the manifest says {layout_id}")
            layouts[layout_id] = layout
            n = counts[layout_id]
            S, A, C = layout.n_states, N_ACTIONS, N_COMPONENTS
            Kc, D = spec.embedding.n_states, spec.embedding.feature_dim
            q_dtype = np.dtype(spec.q_dtype)
            expected = {"policy_ids": ((n,), np.int64), "q": ((n, S, A), q_dtype),
                        "visits": ((n, S, A), np.int64), "next_state": ((n, S, A), np.int32),
                        "reward_model": ((n, S, A, C), np.float64), "q_vector": ((n, S, A, C), q_dtype),
                        "canonical_states": ((Kc,), np.int64), "psi": ((n, Kc, D), np.float64),
                        "psi_steps": ((n, Kc), np.int32), "psi_ends": ((n, Kc), np.int8)}
            loaded = {}
            for name, (shape, dtype) in expected.items():
                path = folder / f"{name}.npy"
                if path.relative_to(root).as_posix() not in entries:
                    raise FileFormatError(f"{manifest}: lists no {path.relative_to(root)}")
                try:
                    array = np.load(path, mmap_mode="r")
                except (ValueError, OSError, EOFError) as exc:
                    raise FileFormatError(f"{path}: not a readable .npy array ({exc})") from None
                if array.shape != shape or array.dtype != np.dtype(dtype):
                    raise FileFormatError(f"{path}: {array.dtype} {array.shape}, expected "
                                          f"{np.dtype(dtype)} {shape}")
                loaded[name] = array
            own = [r.policy_id for r in records if r.layout_id == layout_id]
            if loaded["policy_ids"].tolist() != own or [records[p].row for p in own] != list(range(n)):
                raise FileFormatError(f"{folder / 'policy_ids.npy'}: policy ids do not match the manifest's "
                                      f"records of layout {layout_id}")
            arrays[layout_id] = loaded
        if sum(counts.values()) != len(records):
            raise FileFormatError(f"{manifest}: {len(records)} records but the layouts hold "
                                  f"{sum(counts.values())} policies")
        return cls(root, spec, records, layouts, arrays, sha256_file(manifest))

    @staticmethod
    def _check_file(path: Path, entry: dict, verify: bool) -> None:
        if not path.is_file():
            raise FileFormatError(f"{path}: no such file")
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise FileFormatError(f"{path}: {size} bytes, the manifest says {entry.get('bytes')} "
                                  f"(truncated or replaced)")
        if verify and sha256_file(path) != entry.get("sha256"):
            raise FileFormatError(f"{path}: checksum mismatch (file corrupt or modified)")
        if "shape" in entry:
            try:
                header = np.load(path, mmap_mode="r")
            except (ValueError, OSError, EOFError) as exc:
                raise FileFormatError(f"{path}: not a readable .npy array ({exc})") from None
            if list(header.shape) != list(entry["shape"]) or header.dtype.str != entry["dtype"]:
                raise FileFormatError(f"{path}: {header.dtype.str} {header.shape}, the manifest says "
                                      f"{entry['dtype']} {tuple(entry['shape'])}")

    # -- access ---------------------------------------------------------------
    def _layout_arrays(self, layout_id: str) -> dict[str, np.ndarray]:
        if layout_id not in self._arrays:
            raise LeverError(f"layout {layout_id!r} is not in this library; layouts: "
                             f"{', '.join(self.layout_ids)}")
        return self._arrays[layout_id]

    def layout(self, layout_id: str) -> Layout:
        """The layout with this id."""
        self._layout_arrays(layout_id)
        return self._layouts[layout_id]

    def tables(self, layout_id: str) -> PolicyTables:
        """Every policy of one layout, stacked in row order (memory-mapped, read-only)."""
        a = self._layout_arrays(layout_id)
        return PolicyTables(a["policy_ids"], a["q"], a["visits"], a["next_state"], a["reward_model"],
                            a["q_vector"])

    def features(self, layout_id: str) -> SuccessorFeatures:
        """Successor features of the layout's policies from its canonical states (rows as in tables)."""
        a = self._layout_arrays(layout_id)
        return SuccessorFeatures(a["psi"], a["psi_steps"], a["psi_ends"])

    def canonical_states(self, layout_id: str) -> np.ndarray:
        """The K canonical states of a layout, int64 (K,); the first is the start."""
        return self._layout_arrays(layout_id)["canonical_states"]

    def records_for(self, layout_id: str | None = None) -> list[PolicyRecord]:
        """Records of one layout (in row order), or of every policy when ``layout_id`` is None."""
        if layout_id is None:
            return list(self.records)
        self._layout_arrays(layout_id)
        return [r for r in self.records if r.layout_id == layout_id]

    def record(self, policy_id: int) -> PolicyRecord:
        """The record of one policy id."""
        if not 0 <= int(policy_id) < len(self.records):
            raise LeverError(f"policy id {policy_id} is not in 0..{len(self.records) - 1}")
        return self.records[int(policy_id)]

    def value_signatures(self) -> np.ndarray:
        """ψ(start) of every policy in id order, float64 (N, C)."""
        return np.concatenate([value_signatures(self._arrays[x]["psi"]) for x in self.layout_ids])

    def behaviour_embeddings(self) -> np.ndarray:
        """Flattened behaviour embeddings of every policy in id order, float64 (N, K·D)."""
        return np.concatenate([behaviour_embeddings(self._arrays[x]["psi"]) for x in self.layout_ids])

    def support_coverage(self, layout_id: str) -> float:
        """Fraction of the (state, action) pairs of reachable non-exit cells that any policy visited."""
        layout = self.layout(layout_id)
        union = np.asarray(self.tables(layout_id).visits).sum(axis=0) > 0
        cells = layout.cells.ravel()
        reachable = (layout.distances_from(layout.start) >= 0) & (cells != EXIT)
        return float(union[reachable].mean()) if reachable.any() else 0.0

    def nbytes(self) -> int:
        """Bytes of every file the manifest lists."""
        doc = read_json(self.root / MANIFEST, LIBRARY_FORMAT, LIBRARY_VERSION)
        return int(sum(entry["bytes"] for entry in doc["files"].values()))

    def index(self, rebuild: bool = False, params: IndexParams | None = None) -> PolicyIndex:
        """The :class:`PolicyIndex` of this library, from ``ROOT/index`` (built and saved there if absent).

        A saved index that is corrupt or from other data is a
        :class:`FileFormatError`; ``rebuild=True`` replaces it.
        """
        if self._index is not None and not rebuild and params is None:
            return self._index
        folder = self.root / "index"
        if not rebuild and params is None and (folder / "manifest.json").exists():
            self._index = PolicyIndex.load(folder, fingerprint=self.fingerprint)
            return self._index
        index = PolicyIndex.build([r.policy_id for r in self.records], [r.layout_id for r in self.records],
                                  self.value_signatures(), self.behaviour_embeddings(),
                                  params or IndexParams())
        try:
            index.save(folder, fingerprint=self.fingerprint)
        except OSError:
            pass  # a read-only library still answers queries from the in-memory index
        self._index = index
        return index
