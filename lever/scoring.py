"""Scoring combinations of candidates, the cost a strategy's search pays per combination.

- ``offline`` (default) rolls the composed policy out through the
  combination's empirical model;
- ``sf`` adds the members' predicted returns of their own component alone,
  W_c · ψ(start) under the library's rules (no composition at all: a
  heuristic, the more so under the study's rules, which are not additive);
- ``ridge`` fits a closed-form ridge regressor from the members' ψ(start)
  to the offline score on a seeded sample and predicts the rest.
"""

from __future__ import annotations

import time

import numpy as np

from .compose import Composer
from .embeddings import RidgeRegressor
from .errors import check_choice
from .retrieval import Candidates, PreparedLayout

SCORINGS = ("offline", "sf", "ridge")

#: Combinations composed per kernel call; bounds the (B, S) action buffer.
CHUNK = 32_768
#: Combinations the ridge scorer fits on (scored offline), seeded.
RIDGE_SAMPLE = 32


class Scorer:
    """Scores batches of combinations under one objective and tallies cost.

    Call it with rows int64 (B, j); returns float64 (B,). ``composer`` holds
    the stack, objective and operator. Accumulates ``composition_s``,
    ``scoring_s`` (seconds) and ``tried`` (combinations scored).
    """

    def __init__(self, prepared: PreparedLayout, composer: Composer, candidates: Candidates,
                 scoring: str = "offline", seed: int = 0):
        self.scoring = check_choice("scoring", scoring, SCORINGS)
        self.prepared = prepared
        self.composer = composer
        self.seed = seed
        self.composition_s = 0.0
        self.scoring_s = 0.0
        self.tried = 0
        # Predicted return of each row as the candidate of slot j (its own component).
        self._sf = np.full((len(candidates.rows), prepared.stack.n_policies), -np.inf)
        for j, (rows, scores) in enumerate(zip(candidates.rows, candidates.scores)):
            self._sf[j, rows] = scores

    def offline(self, combos: np.ndarray) -> np.ndarray:
        """Offline rollout returns float64 (B,) of the compositions of ``combos`` (B, j), in chunks."""
        out = np.empty(combos.shape[0])
        for lo in range(0, combos.shape[0], CHUNK):
            chunk = combos[lo:lo + CHUNK]
            began = time.perf_counter()
            actions, _ = self.composer.actions(chunk)
            composed = time.perf_counter()
            out[lo:lo + CHUNK] = self.composer.offline(chunk, actions).returns
            self.composition_s += composed - began
            self.scoring_s += time.perf_counter() - composed
        return out

    def __call__(self, combos: np.ndarray) -> np.ndarray:
        combos = np.ascontiguousarray(combos, dtype=np.int64)
        self.tried += combos.shape[0]
        if self.scoring == "offline":
            return self.offline(combos)
        if self.scoring == "sf":
            began = time.perf_counter()
            scores = self._sf[np.arange(combos.shape[1]), combos].sum(axis=1)
            self.scoring_s += time.perf_counter() - began
            return scores
        if combos.shape[0] <= RIDGE_SAMPLE:
            return self.offline(combos)
        rng = np.random.default_rng(self.seed)
        sample = np.sort(rng.choice(combos.shape[0], RIDGE_SAMPLE, replace=False))
        targets = self.offline(combos[sample])
        began = time.perf_counter()
        features = self.prepared.signatures[combos].reshape(combos.shape[0], -1)
        model = RidgeRegressor(alpha=1.0).fit(features[sample], targets)
        scores = model.predict(features)
        scores[sample] = targets
        self.scoring_s += time.perf_counter() - began
        return scores
