"""Every constant of the GridWorld rules, in one place.

The step kernel, the gymnasium env and the tests all read these names, so a
change here changes the world everywhere at once. Numba freezes module
globals at compile time; the kernel cache is keyed on a hash of every file
in this package (see :mod:`lever.kernels.cache`), so an edit here recompiles
every kernel.
"""

# Cell kinds (int8 in layout arrays).
EMPTY = 0
WALL = 1
GOLD = 2
HAZARD = 3
LEVER = 4
EXIT = 5
N_KINDS = 6

# Actions, numbered as the study numbers them; greedy ties go to the lowest.
RIGHT = 0
DOWN = 1
LEFT = 2
UP = 3
N_ACTIONS = 4
ACTION_NAMES = ("right", "down", "left", "up")

# Reward components. An objective under the study's rules is a *set* of
# components, written as a bit mask: component c is bit 1 << c.
PATH = 0
GOLD_C = 1
HAZARD_C = 2
LEVER_C = 3
N_COMPONENTS = 4
COMPONENT_NAMES = ("path", "gold", "hazard", "lever")
PATH_BIT = 1 << PATH
GOLD_BIT = 1 << GOLD_C
HAZARD_BIT = 1 << HAZARD_C
LEVER_BIT = 1 << LEVER_C
# Every set of components, indexed by its mask (0, the empty set, earns 0):
# a logged step keeps the reward of all of them, so any objective can be
# relabelled offline under either rule set.
N_SETS = 1 << N_COMPONENTS
# Sets whose reward depends on the episode's history (gold taken, lever pulled).
HISTORY_BITS = GOLD_BIT | LEVER_BIT

# A move off the grid or into a wall: the agent stays, whatever the objective.
BUMP_REWARD = -0.1
# Entering a hazard ends the episode with this reward, whatever the objective.
HAZARD_PENALTY = -100.0

# Per-step cost of each component in the objective, charged on every move.
STEP_COST_PATH = 0.1
STEP_COST_GOLD = 0.01
STEP_COST_HAZARD = 0.1
STEP_COST_LEVER = 0.1

GOLD_COLLECT_REWARD = 5.0
LEVER_PULL_REWARD = 20.0
# hazard: this many points per hazard neighbour left behind.
HAZARD_NEIGHBOUR_REWARD = 2.0

# On reaching the exit.
PATH_EXIT_BONUS = 100.0
HAZARD_EXIT_BONUS = 100.0
GOLD_ALL_COLLECTED_BONUS = 100.0
GOLD_MISSING_PENALTY = 10.0  # times the fraction of gold left
LEVER_EXIT_BONUS_ON = 80.0
LEVER_EXIT_BONUS_OFF = 20.0

# Why a rollout ended, as int8 codes in every rollout kernel's ``ends`` output
# (also stored in library files as ``psi_ends``: do not renumber).
END_STEP_CAP = 0
END_EXIT = 1
END_HAZARD = 2
END_DEAD_END = 3
END_TERMINATED = 4  # a tabular world's transition ended the episode
END_NAMES = ("step_cap", "exit", "hazard", "dead_end", "terminated")
