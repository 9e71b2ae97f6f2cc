"""Building a policy library: parallel, atomic and resumable.

Each trained policy is saved at once as ``ROOT/.staging/p<policy id>.npz``
(written under a temporary name, then renamed); the spec of the build sits
beside them in ``build.json``. When every policy is there, the per-layout
arrays are stacked and written, then ``manifest.json`` is written last and
the staging folder removed. A build that stops at any point leaves no
manifest, so the directory never opens as a library; running the same
build again reuses every staged policy and trains only the rest. Greedy
returns and embeddings are computed from the stored (cast) Q tables, so
they describe exactly the policies saved.

A build holds the library's exclusive lock (:func:`lever.fileio.exclusive_lock`)
from start to end, so a second build of the same directory stops at once
with a clear error. A policy whose Q tables are not finite is never saved:
the build stops, naming its objective and budget, and removes the staging
folder it created (and the directory, if it created that too and left it empty).
"""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from ..embeddings import EmbeddingConfig, canonical_states, embed_policies
from ..errors import LeverError
from ..evaluation import rollout
from ..fileio import LOCK_NAME, atomic_write, exclusive_lock, read_json, sha256_file, write_json
from ..worlds.grid import Layout
from ..worlds.tabular import TabularWorld
from ..worlds.objectives import Objective
from ..training import train
from .checks import UnusableTables, check_finite_tables
from .spec import BuildSpec
from .store import (
    LIBRARY_FORMAT, LIBRARY_VERSION, MANIFEST, STAGING, PolicyLibrary, PolicyRecord, array_file, layout_arrays,
)
from .workers import WorkerPool, check_jobs, worker_count

log = logging.getLogger(__name__)

BUILD_FORMAT = "lever-library-build"
BUILD_VERSION = 1


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
    layout = (TabularWorld.load(Path(staging) / WORLD_FILE) if spec.tabular
              else Layout.generate(spec.setting, seed=seed))
    policy = train(layout, objective, spec.train_config(budget))
    with np.errstate(over="ignore"):  # a value float32 cannot hold becomes inf, refused just below
        q = policy.q.astype(spec.q_dtype)
        q_vector = None if policy.q_vector is None else policy.q_vector.astype(spec.q_dtype)
    check_finite_tables(q, q_vector, objective, budget, seed)
    # The return of the policy as stored, so that it matches a rollout of the saved table.
    greedy = rollout(layout, q, objective, spec.rules).set_returns
    arrays = {"key": np.array(_shard_key(spec, policy_id)), "layout_id": np.array(layout.id),
              "q": q, "q_vector": q_vector, "visits": policy.visits,
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


#: The defaults of a build, shared with ``lever library build``.
DEFAULTS = BuildSpec()
#: A tabular world's file, in the staging folder and in its layout folder.
WORLD_FILE = "world.npz"


def build_library(root, *, setting: str = DEFAULTS.setting, layout_seeds=DEFAULTS.layout_seeds,
                  budgets=DEFAULTS.budgets, objectives=DEFAULTS.objectives, algorithm: str = DEFAULTS.algorithm,
                  gamma: float = DEFAULTS.gamma, train_seed: int = DEFAULTS.train_seed, jobs: int | None = None,
                  progress: bool = True, episodes: int | None = DEFAULTS.episodes, q_dtype: str = DEFAULTS.q_dtype,
                  embedding: EmbeddingConfig | None = None, rules: str = DEFAULTS.rules,
                  on_policy: Callable[[BuildEvent], None] | None = None, env: str | None = None,
                  env_kwargs: dict | None = None, world: TabularWorld | None = None,
                  max_states: int | None = None) -> PolicyLibrary:
    """Train every objective × budget × layout seed and save the library at ``root``.

    Or, with ``env`` (an id for ``gymnasium.make``, ``env_kwargs`` its
    arguments, ``max_states`` the cap of :meth:`TabularWorld.from_gymnasium`)
    or ``world`` (a :class:`TabularWorld`; ``env`` beside it is only kept as
    where it came from), every objective × budget on that
    one tabular world: ``objectives`` are weight vectors over its
    components (default: one one-hot vector per component), and the world's
    tables are stored in the library, which then opens without the env.

    ``jobs`` worker processes (default: every core; at most the cores and
    the policies to train; 1 trains in this process); ``episodes``
    overrides the budgets' episode count; ``rules`` the rule set the
    policies are trained under (``"study"``, where every objective is a
    set of components, or ``"linear"``, which also takes weighted
    objectives); ``on_policy`` is called in this process after each policy is staged.
    Resumes an interrupted build of the same spec; if ``root`` already
    holds a finished library of the same spec it is opened, of another
    spec it is an error. Holds the library's exclusive lock throughout:
    while another process builds (or reindexes) ``root``, this raises
    :class:`LeverError` at once. A policy whose Q tables come out NaN or
    infinite raises :class:`~lever.library.checks.UnusableTables` naming
    its objective and budget, and nothing of this build is left behind.
    Also ``PolicyLibrary.build``.
    """
    if env is not None or world is not None:
        if world is None:
            world = TabularWorld.from_gymnasium(env, env_kwargs=env_kwargs, max_states=max_states)
        elif not isinstance(world, TabularWorld):
            raise LeverError(f"world must be a lever.TabularWorld, got {type(world).__name__}")
        if objectives is DEFAULTS.objectives:
            objectives = tuple(tuple(np.eye(world.n_components)[c]) for c in range(world.n_components))
        spec = BuildSpec(world.name, (0,), tuple(budgets), tuple(objectives), algorithm, float(gamma),
                         int(train_seed), episodes, q_dtype, embedding or EmbeddingConfig(), rules,
                         world.component_names, env, env_kwargs)
        layouts = [world]
    else:
        spec = BuildSpec(setting, tuple(layout_seeds), tuple(budgets), tuple(objectives), algorithm, float(gamma),
                         int(train_seed), episodes, q_dtype, embedding or EmbeddingConfig(), rules)
        layouts = [Layout.generate(spec.setting, seed=s) for s in spec.layout_seeds]
    check_jobs(jobs)
    root = Path(root)
    ids = [layout.id for layout in layouts]
    if len(set(ids)) != len(ids):
        raise LeverError(f"layout seeds {list(spec.layout_seeds)} give repeated layouts")
    for layout in layouts:  # fail before training if K does not fit
        embed_policies(layout, np.zeros((0, layout.n_states), dtype=np.int32), config=spec.embedding)
    created = not root.exists()
    try:
        with exclusive_lock(root, "library"):
            return _build_locked(root, spec, layouts, jobs, progress, on_policy)
    except UnusableTables:
        if created:  # nothing but the lock file left: leave no trace of the failed build
            try:
                (root / LOCK_NAME).unlink()
                root.rmdir()
            except OSError:
                pass
        raise


def _build_locked(root: Path, spec: BuildSpec, layouts: list[Layout | TabularWorld], jobs: int | None, progress: bool,
                  on_policy: Callable[[BuildEvent], None] | None) -> PolicyLibrary:
    """The body of :func:`build_library`, run while holding the library's exclusive lock."""
    if (root / MANIFEST).exists():
        library = PolicyLibrary.open(root, lock=False)
        if library.spec != spec:
            raise LeverError(f"{root} already holds a library built with other settings; "
                             f"choose another directory")
        # A build stopped after its manifest but before clearing the stage: finish the cleanup.
        shutil.rmtree(root / STAGING, ignore_errors=True)
        return library
    staging = root / STAGING
    fresh = not staging.exists()
    _claim_staging(spec, staging)
    if spec.tabular:
        _stage_world(staging, layouts[0])
    try:
        _train_missing(spec, staging, jobs, progress, on_policy)
    except UnusableTables:
        if fresh:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    finalize(root, spec, layouts, staging, progress)
    shutil.rmtree(staging, ignore_errors=True)
    library = PolicyLibrary.open(root, lock=False)
    library.index(rebuild=True, lock=False)
    return library


def _claim_staging(spec: BuildSpec, staging: Path) -> None:
    """Write the build's spec into the staging folder, or check that a resumed one has the same."""
    build_file = staging / "build.json"
    if build_file.exists():
        staged = read_json(build_file, BUILD_FORMAT, BUILD_VERSION)
        if BuildSpec.from_json(staged["spec"]) != spec:
            raise LeverError(f"{staging} holds an interrupted build with other settings; run the same "
                             f"build again to resume it, or delete that folder")
    else:
        write_json(build_file, BUILD_FORMAT, BUILD_VERSION, {"spec": spec.to_json()})


def _stage_world(staging: Path, world: TabularWorld) -> None:
    """Save the world beside the staged policies (workers read it there), or check a resumed build's is the same."""
    path = staging / WORLD_FILE
    if path.exists():
        if TabularWorld.load(path).id != world.id:
            raise LeverError(f"{staging} holds an interrupted build of another world; delete that folder")
        return
    world.save(path)


def _train_missing(spec: BuildSpec, staging: Path, jobs: int | None, progress: bool,
                   on_policy: Callable[[BuildEvent], None] | None) -> None:
    """Train and stage every policy the staging folder lacks, reporting each policy (staged ones first)."""
    staged_times: dict[int, float] = {}
    for policy_id in range(spec.n_policies):
        shard = _read_shard(_shard_path(staging, policy_id), _shard_key(spec, policy_id))
        if shard is not None:
            staged_times[policy_id] = float(shard["train_time"])
    pending = [p for p in range(spec.n_policies) if p not in staged_times]
    if staged_times:
        log.info("resuming the build in %s: %d of %d policies already trained", staging.parent,
                 len(staged_times), spec.n_policies)

    def report(policy_id: int, train_time: float, resumed: bool) -> None:
        bar.update(1)
        if on_policy is not None:
            seed, budget, objective, _ = spec.task(policy_id)
            on_policy(BuildEvent(policy_id, seed, budget, objective, train_time, resumed))

    spec_doc = spec.to_json()
    jobs = worker_count(jobs, len(pending))
    with tqdm(total=spec.n_policies, desc="training policies", unit="policy", disable=not progress) as bar:
        for policy_id, train_time in staged_times.items():
            report(policy_id, train_time, True)
        if jobs == 1:
            for policy_id in pending:
                report(*_train_one(spec_doc, policy_id, str(staging)), False)
            return
        pool = WorkerPool(jobs)
        try:
            futures = [pool.submit(_train_one, spec_doc, p, str(staging)) for p in pending]
            for future in as_completed(futures):
                report(*future.result(), False)
        except BaseException:  # an error or Ctrl-C: stop the workers now, staged policies are kept
            pool.terminate()
            raise
        pool.shutdown()


def finalize(root: Path, spec: BuildSpec, layouts: list[Layout | TabularWorld], staging: Path, progress: bool = False) -> None:
    """Stack the staged policies per layout, embed them, write the arrays, then the manifest.

    Only one layout's policies are in memory at a time; ``progress`` shows a bar over the layouts.
    """
    files: dict[str, dict] = {}
    records = []
    per_layout = spec.policies_per_layout
    for layout_index, layout in enumerate(tqdm(layouts, desc="embedding and writing", unit="layout",
                                               disable=not progress)):
        ids = list(range(layout_index * per_layout, (layout_index + 1) * per_layout))
        shards = {policy_id: _staged(spec, staging, policy_id, layout) for policy_id in ids}
        files.update(_write_layout(root, spec, layout, ids, shards))
        for row, policy_id in enumerate(ids):
            seed, budget, objective, _ = spec.task(policy_id)
            records.append(PolicyRecord(
                policy_id, layout.id, spec.setting, seed, objective, budget, spec.algorithm,
                float(spec.gamma), spec.train_seed, float(shards[policy_id]["train_time"]),
                tuple(float(x) for x in shards[policy_id]["greedy_return"]), row))
    write_json(root / MANIFEST, LIBRARY_FORMAT, LIBRARY_VERSION, {
        "spec": spec.to_json(),
        "layouts": [{"layout_id": layout.id, "layout_seed": seed, "n_policies": per_layout, "generation": 0}
                    for layout, seed in zip(layouts, spec.layout_seeds)],
        "records": [r.to_json() for r in records], "files": files})


def _staged(spec: BuildSpec, staging: Path, policy_id: int, layout: Layout | TabularWorld) -> dict:
    """The staged arrays of one policy of ``layout``; LeverError if missing or of another layout."""
    shard = _read_shard(_shard_path(staging, policy_id), _shard_key(spec, policy_id))
    if shard is None:
        raise LeverError(f"{_shard_path(staging, policy_id)}: staged policy went missing during the build")
    if str(shard["layout_id"]) != layout.id:
        raise LeverError(f"staged policy {policy_id} was trained on layout {shard['layout_id']}, "
                         f"expected {layout.id}")
    return shard


def _write_layout(root: Path, spec: BuildSpec, layout: Layout | TabularWorld, ids: list[int], shards: dict) -> dict[str, dict]:
    """Write one layout's folder (its arrays, then layout.json); returns the manifest's file entries."""
    folder = root / "layouts" / layout.id
    stacked = {name: np.stack([shards[p][name] for p in ids])
               for name in ("q", "q_vector", "visits", "next_state", "reward_model")}
    stacked["policy_ids"] = np.array(ids, dtype=np.int64)
    features = embed_policies(layout, stacked["q"], config=spec.embedding)
    stacked["canonical_states"] = canonical_states(layout, spec.embedding.n_states, spec.embedding.seed)
    stacked["psi"], stacked["psi_steps"], stacked["psi_ends"] = features.psi, features.steps, features.ends
    files = write_layout_arrays(root, spec, layout, stacked, generation=0)
    path = folder / (WORLD_FILE if spec.tabular else "layout.json")
    layout.save(path)
    files[path.relative_to(root).as_posix()] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return files


def write_layout_arrays(root: Path, spec: BuildSpec, layout: Layout | TabularWorld, stacked: dict[str, np.ndarray],
                        generation: int) -> dict[str, dict]:
    """Write every array of :func:`layout_arrays` from ``stacked`` (name → array, rows = policies), each
    atomically under its name at ``generation`` (:func:`array_file`); returns the manifest's file entries."""
    files = {}
    for name in layout_arrays(spec, layout.n_states, len(stacked["policy_ids"]), layout):
        relative = array_file(layout.id, name, generation)
        path = root / relative
        array = np.ascontiguousarray(stacked[name])
        atomic_write(path, lambda h, a=array: np.save(h, a), binary=True)
        files[relative] = {"sha256": sha256_file(path), "bytes": path.stat().st_size,
                           "shape": list(array.shape), "dtype": array.dtype.str}
    return files
