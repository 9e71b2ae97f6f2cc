"""Every constant of the GridWorld rules, in one place.

The step kernel, the gymnasium env and the tests all read these names, so a
change here changes the world everywhere at once. Numba freezes module globals
at compile time; the on-disk kernel cache is keyed on this file's contents via
the importing modules, so clear ``__pycache__`` if you edit a value by hand.
"""

# Cell kinds (int8 in layout arrays).
EMPTY = 0
WALL = 1
GOLD = 2
HAZARD = 3
LEVER = 4
EXIT = 5
N_KINDS = 6

# Actions: the agent moves one cell; off-grid or into a wall it stays put.
UP = 0
RIGHT = 1
DOWN = 2
LEFT = 3
N_ACTIONS = 4
ACTION_NAMES = ("up", "right", "down", "left")

# Reward components (entries of the reward vector).
PATH = 0
GOLD_C = 1
HAZARD_C = 2
LEVER_C = 3
N_COMPONENTS = 4
COMPONENT_NAMES = ("path", "gold", "hazard", "lever")

# Per-step cost of each component, charged on every step including bumps.
STEP_COST_PATH = 0.1
STEP_COST_GOLD = 0.01
STEP_COST_HAZARD = 0.1
STEP_COST_LEVER = 0.1

# Entering a hazard ends the episode with this reward in every component.
HAZARD_PENALTY = -100.0

# path: +Δd to the exit per step, and this on reaching it.
PATH_EXIT_BONUS = 100.0

# gold: per gold collected, Δd to the nearest remaining gold, and on the exit
# either the full bonus (all gold taken) or a penalty per fraction missing.
GOLD_COLLECT_REWARD = 5.0
GOLD_ALL_COLLECTED_BONUS = 100.0
GOLD_MISSING_PENALTY = 10.0

# hazard: this many points per hazard neighbour left behind, and the exit bonus.
HAZARD_NEIGHBOUR_REWARD = 2.0
HAZARD_EXIT_BONUS = 100.0

# lever: on activation, Δd to the lever until then, and the exit bonus with or
# without the lever pulled.
LEVER_ACTIVATION_REWARD = 20.0
LEVER_EXIT_BONUS_ON = 80.0
LEVER_EXIT_BONUS_OFF = 20.0

# Why a rollout ended, as int8 codes in every rollout kernel's ``ends`` output
# (also stored in library files as ``psi_ends``: do not renumber).
END_STEP_CAP = 0
END_EXIT = 1
END_HAZARD = 2
END_DEAD_END = 3
END_NAMES = ("step_cap", "exit", "hazard", "dead_end")

# Row and column offsets of each action, indexed by action.
ACTION_DROW = (-1, 0, 1, 0)
ACTION_DCOL = (0, 1, 0, -1)
