"""Behavioural embeddings of tabular policies and a closed-form ridge regressor.

A policy's embedding is its successor features (see
:mod:`lever.kernels.features`) from K *canonical states*: the layout's start
first, then K-1 free cells drawn by a seed. φ holds the reward of every
component set (16 entries, indexed by set mask), so ψ(start) over them is
the policy's *value signature*: with the default undiscounted ``gamma = 1``
it is the return of every set along the greedy rollout, and the return of
any objective under either rule set, ``W · ψ(start)`` with W the
objective's set weights, is predicted exactly (deterministic world,
deterministic policy). The *behaviour embedding* is ψ
from all K states, flattened, used for similarity between policies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import LeverError
from .worlds.grid import Layout
from .kernels import constants as K
from .worlds.objectives import Objective
from .threads import pick
from .kernels.features import (
    PARALLEL_MIN_ROLLOUTS, PARALLEL_MIN_STATES, greedy_policies, greedy_policies_serial, successor_features,
    successor_features_serial,
)
from .kernels.table import PARALLEL_MIN_TABLE_ROLLOUTS, successor_features_table, successor_features_table_serial
from .worlds.tabular import TabularWorld


@dataclass(frozen=True)
class EmbeddingConfig:
    """How embeddings are computed.

    ``n_states``: K canonical states (the start plus K-1 seeded free cells);
    ``gamma``: discount of ψ (1.0 = undiscounted, so ψ(start)·w is the
    greedy return exactly); ``cell_kinds``: append one-hots of the entered
    cell's kind to φ; ``seed``: seed of the canonical-state draw.
    """

    n_states: int = 16
    gamma: float = 1.0
    cell_kinds: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.n_states < 1:
            raise LeverError(f"embedding needs at least 1 canonical state, got {self.n_states}")
        if not 0 <= self.gamma <= 1:
            raise LeverError(f"embedding gamma must be in [0, 1], got {self.gamma}")

    @property
    def feature_dim(self) -> int:
        """D, the length of φ: N_SETS reward entries (+ N_KINDS cell-kind entries)."""
        return K.N_SETS + (K.N_KINDS if self.cell_kinds else 0)

    @property
    def embedding_dim(self) -> int:
        """Length of the flattened behaviour embedding, K·D."""
        return self.n_states * self.feature_dim

    def feature_dim_of(self, world) -> int:
        """D on ``world``: :attr:`feature_dim` on a GridWorld layout, the d components of a
        :class:`TabularWorld` (whose φ is its reward vector; ``cell_kinds`` does not apply)."""
        if isinstance(world, TabularWorld):
            if self.cell_kinds:
                raise LeverError("cell_kinds embeddings need a GridWorld layout; a tabular world has no cells")
            return world.n_components
        return self.feature_dim


@dataclass(frozen=True, eq=False)
class SuccessorFeatures:
    """ψ of P policies from K states.

    ``psi`` float64 (P, K, D); ``steps`` int32 (P, K), steps taken; ``ends`` int8 (P, K),
    how each rollout ended (:data:`lever.kernels.constants.END_NAMES`); ``n_features`` the
    reward entries of φ (N_SETS on the GridWorld, d on a tabular world).
    """

    psi: np.ndarray
    steps: np.ndarray
    ends: np.ndarray
    n_features: int = K.N_SETS

    @property
    def value_signatures(self) -> np.ndarray:
        """ψ(start) over the reward features, float64 (P, F)."""
        return value_signatures(self.psi, self.n_features)

    @property
    def behaviour(self) -> np.ndarray:
        """Flattened behaviour embeddings, float64 (P, K·D)."""
        return behaviour_embeddings(self.psi)


def free_cells(layout: Layout | TabularWorld) -> np.ndarray:
    """Cells a rollout may start from: not wall, hazard or exit; int64 (F,), row-major.
    On a tabular world: every state but its terminal observations."""
    if isinstance(layout, TabularWorld):
        return np.setdiff1d(np.arange(layout.n_states), layout.terminal_states)
    flat = layout.cells.ravel()
    return np.flatnonzero((flat != K.WALL) & (flat != K.HAZARD) & (flat != K.EXIT))


def canonical_states(layout: Layout | TabularWorld, n_states: int = 16, seed: int = 0) -> np.ndarray:
    """The start, then ``n_states - 1`` distinct free cells drawn by ``seed``; int64 (K,)."""
    others = free_cells(layout)
    others = others[others != layout.start]
    if isinstance(layout, TabularWorld):
        n_states = min(n_states, others.size + 1)  # a small world embeds from every state it has
    if n_states - 1 > others.size:
        raise LeverError(f"layout {layout.id} has {others.size + 1} free cells, fewer than the "
                         f"{n_states} canonical states asked for")
    drawn = np.random.default_rng(seed).choice(others, size=n_states - 1, replace=False)
    return np.concatenate([[layout.start], np.sort(drawn)]).astype(np.int64)


def as_action_tables(policies, n_states: int, n_actions: int = K.N_ACTIONS) -> np.ndarray:
    """int32 (P, S) greedy actions from Q tables (P, S, A) or action tables (P, S) (-1 = none)."""
    tables = np.asarray(policies)
    if tables.ndim == 3:
        if tables.shape[1] != n_states or tables.shape[2] != n_actions:
            raise LeverError(f"Q tables must have shape (P, S={n_states}, A={n_actions}), "
                             f"got {tables.shape}")
        if not np.issubdtype(tables.dtype, np.floating):
            raise LeverError(f"Q tables must be float, got {tables.dtype}")
        if np.isnan(tables).any():
            raise LeverError("Q tables contain NaN")
        return pick(greedy_policies, greedy_policies_serial, tables.shape[0] * tables.shape[1],
                    PARALLEL_MIN_STATES)(np.ascontiguousarray(tables))
    if tables.ndim == 2:
        if tables.shape[1] != n_states or not np.issubdtype(tables.dtype, np.integer):
            raise LeverError(f"action tables must be integer (P, S={n_states}), "
                             f"got {tables.dtype} {tables.shape}")
        if tables.size and (tables.min() < -1 or tables.max() >= n_actions):
            raise LeverError(f"actions must be -1 (none) or 0..{n_actions - 1}")
        return np.ascontiguousarray(tables, dtype=np.int32)
    raise LeverError(f"expected Q tables (P, S, A) or action tables (P, S), got shape {tables.shape}")


def embed_policies(layout: Layout | TabularWorld, policies, states: np.ndarray | None = None,
                   config: EmbeddingConfig | None = None, skip_cycles: bool = True) -> SuccessorFeatures:
    """Successor features of a batch of policies on ``layout``.

    policies: Q tables (P, S, A) or action tables (P, S); states: start cells
    int (K,), by default :func:`canonical_states` of ``config``;
    skip_cycles: sum a looping rollout's repeated cycle in closed form
    (same result up to float rounding, see
    :func:`lever.kernels.features.successor_features`). On a
    :class:`TabularWorld` φ is the world's reward vector (d,)
    (:func:`lever.kernels.table.successor_features_table`).
    """
    config = config or EmbeddingConfig()
    dim = config.feature_dim_of(layout)
    actions = as_action_tables(policies, layout.n_states, layout.n_actions)
    if states is None:
        states = canonical_states(layout, config.n_states, config.seed)
    states = np.ascontiguousarray(states, dtype=np.int64)
    if states.ndim != 1 or states.size == 0:
        raise LeverError(f"canonical states must be a non-empty 1-D array, got shape {states.shape}")
    if states.min() < 0 or states.max() >= layout.n_states:
        raise LeverError(f"canonical states must be cells 0..{layout.n_states - 1}")
    n_policies = actions.shape[0]
    psi = np.empty((n_policies, states.size, dim))
    steps = np.empty((n_policies, states.size), dtype=np.int32)
    ends = np.empty((n_policies, states.size), dtype=np.int8)
    if isinstance(layout, TabularWorld):
        if n_policies:
            kernel = pick(successor_features_table, successor_features_table_serial, n_policies * states.size,
                          PARALLEL_MIN_TABLE_ROLLOUTS)
            kernel(layout.table, actions, states, layout.max_steps, float(config.gamma), skip_cycles, psi, steps,
                   ends)
        return SuccessorFeatures(psi, steps, ends, dim)
    if n_policies:
        kernel = pick(successor_features, successor_features_serial, n_policies * states.size,
                      PARALLEL_MIN_ROLLOUTS)
        kernel(layout.world, actions, states, layout.max_steps, float(config.gamma), config.cell_kinds,
               skip_cycles, psi, steps, ends)
    return SuccessorFeatures(psi, steps, ends)


def value_signatures(psi: np.ndarray, n_features: int = K.N_SETS) -> np.ndarray:
    """ψ(start) over the reward features: float64 (P, F) from ψ (P, K, D), start = state 0
    (F = N_SETS on the GridWorld, d on a tabular world)."""
    return np.ascontiguousarray(psi[:, 0, :n_features], dtype=np.float64)


def behaviour_embeddings(psi: np.ndarray) -> np.ndarray:
    """ψ from all canonical states, flattened: float64 (P, K·D)."""
    return np.ascontiguousarray(np.asarray(psi, dtype=np.float64).reshape(psi.shape[0], -1))


def predicted_returns(signatures: np.ndarray, objective: Objective, rules: str = "study") -> np.ndarray:
    """Predicted return ``W · ψ(start)`` of each policy under ``objective`` and ``rules``, float64 (P,)."""
    return np.asarray(signatures, dtype=np.float64) @ objective.set_weights(rules)


# -- regression ---------------------------------------------------------------

@dataclass(frozen=True)
class RegressionReport:
    """Held-out error of a regressor: RMSE of the model and of predicting the training mean."""

    rmse: float
    baseline_rmse: float
    r2: float
    n_train: int
    n_test: int

    @property
    def beats_mean(self) -> bool:
        """Whether the model's RMSE is below that of predicting the training mean."""
        return self.rmse < self.baseline_rmse


class RidgeRegressor:
    """Closed-form ridge regression ``y ≈ X β + b`` on standardized features (numpy only).

    ``alpha`` (≥ 0) is the L2 penalty on β in standardized units; the
    intercept is not penalized. Constant features are left unscaled.
    """

    def __init__(self, alpha: float = 1.0):
        if not alpha >= 0:
            raise LeverError(f"ridge alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0
        self._mean: np.ndarray | None = None
        self._scale: np.ndarray | None = None

    @staticmethod
    def _check(features, targets=None):
        X = np.asarray(features, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise LeverError(f"features must be a non-empty 2-D array (N, F), got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise LeverError("features contain NaN or infinity")
        if targets is None:
            return X, None
        y = np.asarray(targets, dtype=np.float64)
        if y.shape != (X.shape[0],):
            raise LeverError(f"targets must have shape ({X.shape[0]},), got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise LeverError("targets contain NaN or infinity")
        return X, y

    def fit(self, features, targets) -> "RidgeRegressor":
        """Fit on features (N, F) and targets (N,); returns self."""
        X, y = self._check(features, targets)
        self._mean = X.mean(axis=0)
        scale = X.std(axis=0)
        self._scale = np.where(scale > 0, scale, 1.0)
        Z = (X - self._mean) / self._scale
        y_mean = y.mean()
        gram = Z.T @ Z + self.alpha * np.eye(Z.shape[1])
        self.coef_ = np.linalg.lstsq(gram, Z.T @ (y - y_mean), rcond=None)[0]
        self.intercept_ = float(y_mean)
        return self

    def predict(self, features) -> np.ndarray:
        """Predictions float64 (N,) for features (N, F)."""
        if self.coef_ is None:
            raise LeverError("RidgeRegressor.predict called before fit")
        X, _ = self._check(features)
        if X.shape[1] != self.coef_.shape[0]:
            raise LeverError(f"features have {X.shape[1]} columns, the model was fitted on "
                             f"{self.coef_.shape[0]}")
        return ((X - self._mean) / self._scale) @ self.coef_ + self.intercept_

    def held_out_error(self, features, targets, test_fraction: float = 0.25,
                       seed: int = 0) -> RegressionReport:
        """Fit on a seeded random split and report the error on the held-out part."""
        X, y = self._check(features, targets)
        if not 0 < test_fraction < 1:
            raise LeverError(f"test_fraction must be in (0, 1), got {test_fraction}")
        n_test = int(round(test_fraction * X.shape[0]))
        if n_test < 1 or X.shape[0] - n_test < 2:
            raise LeverError(f"{X.shape[0]} samples are too few for a {test_fraction:.0%} held-out split")
        order = np.random.default_rng(seed).permutation(X.shape[0])
        test, train = order[:n_test], order[n_test:]
        self.fit(X[train], y[train])
        error = self.predict(X[test]) - y[test]
        rmse = float(np.sqrt(np.mean(error ** 2)))
        baseline = float(np.sqrt(np.mean((y[train].mean() - y[test]) ** 2)))
        total = float(np.sum((y[test] - y[test].mean()) ** 2))
        r2 = 1.0 - float(np.sum(error ** 2)) / total if total > 0 else float("nan")
        return RegressionReport(rmse, baseline, r2, int(train.size), int(n_test))
