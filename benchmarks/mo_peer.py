"""The peer of ``bench_mo_tasks.py``: morl-baselines' tabular GPI-LS and Pareto Q-learning, run as the field runs them.

Installed only through the ``compare`` extra (``pip install -e ".[compare]"``,
torch's CPU build first); the benchmark skips the peer's rows without it.

- **Tabular GPI-LS**: ``MPMOQLearning(weight_selection_algo="gpi-ls",
  use_gpi_policy=True)``, Q-learning with learning rate 1 (the tasks are
  deterministic), ε from 1 down to 0.01 over the first half of the steps,
  each new policy warm-started from the CCS's best (``transfer_q_table``), no
  Dyna (tabular GPI-PD is incomplete upstream). Its weight selection runs
  greedy episodes in a second env; those steps are counted apart.
- **PQL**: Pareto Q-learning with hypervolume action scoring, ε from 1 to 0.1
  over the run; its front is the start state's Pareto set, each vector
  tracked back to a policy and rolled out.

wandb is off (``log=False`` and ``WANDB_MODE=disabled``); the examples'
``num_episodes_eval`` argument, which ``train()`` no longer accepts, is not
passed. The peer's progress prints go to a discarded buffer.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import warnings
from dataclasses import dataclass

import gymnasium
import numpy as np

os.environ.setdefault("WANDB_MODE", "disabled")


def available() -> bool:
    """Whether morl-baselines imports (the ``compare`` extra is installed)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import morl_baselines  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class PeerRun:
    """One peer run: per-weight discounted vector returns (n, d), steps and seconds."""

    vectors: np.ndarray
    train_steps: int
    extra_steps: int
    train_s: float
    eval_s: float
    n_policies: int


class StepCounter(gymnasium.Wrapper):
    """An env wrapped to count every step taken through it (``.steps``)."""

    def __init__(self, env):
        super().__init__(env)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        return self.env.step(action)


def _make(env_id: str, env_kwargs: dict) -> StepCounter:
    import mo_gymnasium

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return StepCounter(mo_gymnasium.make(env_id, **env_kwargs))


def warm_up(dim: int) -> None:
    """Import the peer and fill its cached evaluation weights, so no timed run pays for either.

    ``MPMOQLearning.train`` draws ``equally_spaced_weights(d, n=100)`` on every
    call (lru-cached; about 10 s the first time for the 10⁴-point distance
    matrix), and the first import of torch takes seconds more.
    """
    from morl_baselines.common.weights import equally_spaced_weights
    from morl_baselines.multi_policy.multi_policy_moqlearning.mp_mo_q_learning import MPMOQLearning  # noqa: F401
    from morl_baselines.multi_policy.pareto_q_learning.pql import PQL  # noqa: F401

    equally_spaced_weights(dim, n=100)


def gpi_ls(env_id: str, env_kwargs: dict, gamma: float, ref_point, weights: np.ndarray,
           total_steps: int, iterations: int, seed: int) -> PeerRun:
    """Tabular GPI-LS for ``total_steps`` in ``iterations`` policies; evaluated greedily on ``weights`` (n, d)."""
    from morl_baselines.common.evaluation import policy_evaluation_mo
    from morl_baselines.multi_policy.multi_policy_moqlearning.mp_mo_q_learning import MPMOQLearning

    env, selection_env, eval_env = (_make(env_id, env_kwargs) for _ in range(3))
    per_iteration = max(1, total_steps // iterations)
    began = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = MPMOQLearning(env, learning_rate=1.0, gamma=gamma, initial_epsilon=1.0, final_epsilon=0.01,
                              epsilon_decay_steps=max(1, total_steps // 2), weight_selection_algo="gpi-ls",
                              use_gpi_policy=True, transfer_q_table=True, dyna=False, seed=seed, log=False)
        agent.train(total_timesteps=per_iteration * iterations, eval_env=selection_env,
                    ref_point=np.asarray(ref_point, dtype=np.float64), timesteps_per_iteration=per_iteration,
                    num_eval_episodes_for_front=1)
    train_s = time.perf_counter() - began
    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vectors = np.array([policy_evaluation_mo(agent, eval_env, w, rep=1)[3] for w in weights])
    return PeerRun(vectors, int(env.steps), int(selection_env.steps), train_s,
                   time.perf_counter() - began, len(agent.policies))


def pql(env_id: str, env_kwargs: dict, gamma: float, ref_point, total_steps: int, seed: int) -> PeerRun:
    """Pareto Q-learning for ``total_steps``; ``vectors`` are its tracked front (m, d), not per weight."""
    from morl_baselines.multi_policy.pareto_q_learning.pql import PQL

    env, eval_env = _make(env_id, env_kwargs), _make(env_id, env_kwargs)
    ref = np.asarray(ref_point, dtype=np.float64)
    began = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = PQL(env, ref_point=ref, gamma=gamma, initial_epsilon=1.0, epsilon_decay_steps=total_steps,
                    final_epsilon=0.1, seed=seed, log=False)
        front = agent.train(total_timesteps=total_steps, eval_env=eval_env, ref_point=ref)
    train_s = time.perf_counter() - began
    began = time.perf_counter()
    vectors = np.array([agent.track_policy(v, eval_env) for v in front])
    return PeerRun(vectors, int(env.steps), 0, train_s, time.perf_counter() - began, len(front))


def field_weights(dim: int, n: int) -> np.ndarray:
    """The peer's own ``equally_spaced_weights(dim, n, seed=42)``, shape (n, dim)."""
    from morl_baselines.common.weights import equally_spaced_weights

    return np.array(equally_spaced_weights(dim, n, seed=42))


def field_metrics(front: np.ndarray, ref_point, weights: np.ndarray) -> tuple[float, float]:
    """(hypervolume, EUM) of ``front`` by the peer's own code (pymoo), for the cross-check."""
    from morl_baselines.common.performance_indicators import expected_utility, hypervolume

    return (float(hypervolume(np.asarray(ref_point, dtype=np.float64), list(front))),
            float(expected_utility(list(front), list(weights))))
