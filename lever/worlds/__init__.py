"""Worlds: the study's GridWorld, the tabular world of any deterministic discrete env, their gymnasium faces.

- :mod:`~lever.worlds.grid`: GridWorld layouts (spec sets, the study's sampler, :class:`Layout`);
- :mod:`~lever.worlds.objectives`: objectives as weights over reward components, and the rule sets;
- :mod:`~lever.worlds.env`, :mod:`~lever.worlds.vector_env`: the GridWorld's gymnasium faces;
- :mod:`~lever.worlds.tabular`: :class:`TabularWorld`, next-state and reward-vector tables;
- :mod:`~lever.worlds.gymnasium_import`: a :class:`TabularWorld` read from a gymnasium env.

Everything above this package sees a world through the same few names
(``id``, ``n_states``, ``n_actions``, ``start``, ``max_steps``) and the
kernels of its type.
"""
