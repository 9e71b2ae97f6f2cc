"""The compiled core: ``@njit(cache=True)`` functions over plain arrays only.

Nothing here knows about classes, files or objectives by name; the modules
above (``lever.gridworld``, ``lever.training``, ...) build the arrays and call
these functions.
"""
