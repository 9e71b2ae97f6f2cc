"""lever: inference-time policy reuse for tabular reinforcement learning.

Quick tour::

    import lever
    layout = lever.Layout.generate("grid16", seed=0)
    policy = lever.train(layout, "path+gold", lever.TrainConfig.from_budget("X1"))
    print(lever.rollout(layout, policy, "path+gold"))
    env = gymnasium.make("lever/GridWorld-v0", layout=layout, objective="path+gold")
"""

import logging

import gymnasium

from .compose import PolicyStack
from .policy import ComposedPolicy
from .embeddings import EmbeddingConfig, RidgeRegressor, SuccessorFeatures, embed_policies
from .worlds.env import ACTIONS, ENV_ID, MO_ENV_ID, GridWorldEnv, MOGridWorldEnv
from .errors import FileFormatError, LeverError
from .evaluation import RolloutResult, rollout
from .worlds.vector_env import GridWorldVectorEnv
from .worlds.grid import PRESETS, GridSpec, Layout
from .index import Candidate, PolicyIndex
from .library import PolicyLibrary, PolicyRecord, PolicyTables
from .worlds.objectives import COMPONENTS, RULES, Objective
from .worlds.tabular import TabularWorld
from .reproduction import Reproduction, ReproduceConfig, reproduce
from .search import StrategyResult, compose
from .sweep import SweepConfig, SweepResult, SweepRow, run_sweep
from .training import BUDGETS, TrainConfig, TrainedPolicy, train
from .version import __version__

# lever's modules log to the "lever" logger; the program that imports lever decides what is shown.
logging.getLogger("lever").addHandler(logging.NullHandler())

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="lever.worlds.env:GridWorldEnv",
                       vector_entry_point="lever.worlds.vector_env:GridWorldVectorEnv")
if MO_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=MO_ENV_ID, entry_point="lever.worlds.env:MOGridWorldEnv",
                       disable_env_checker=True)  # its reward is a vector by design

__all__ = [
    "ACTIONS", "BUDGETS", "COMPONENTS", "ENV_ID", "MO_ENV_ID", "MOGridWorldEnv", "RULES", "GridWorldVectorEnv", "Reproduction", "ReproduceConfig", "reproduce", "PRESETS", "FileFormatError", "GridSpec", "GridWorldEnv",
    "Layout", "LeverError", "TabularWorld", "Objective", "RolloutResult", "TrainConfig", "TrainedPolicy",
    "rollout", "train", "__version__",
    "Candidate", "EmbeddingConfig", "PolicyIndex", "PolicyLibrary", "PolicyRecord", "PolicyTables",
    "RidgeRegressor", "SuccessorFeatures", "embed_policies",
    "ComposedPolicy", "PolicyStack", "StrategyResult", "compose",
    "SweepConfig", "SweepResult", "SweepRow", "run_sweep",
]
