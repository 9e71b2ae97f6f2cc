"""The policy library: pre-trained tabular policies with their support, embeddings and index.

:mod:`lever.library.store` holds the on-disk format and read access,
:mod:`lever.library.records` what it holds per policy,
:mod:`lever.library.build` the parallel, resumable build,
:mod:`lever.library.add` policies in (a Q table added) and out (exported),
:mod:`lever.library.support` the support log of an added policy,
:mod:`lever.library.spec` what a build trains, :mod:`lever.library.checks`
the checks of manifests and tables, and :mod:`lever.library.workers` the
worker processes of lever's process pools.
"""

from .add import PolicyArrays, add_policy, export_policy
from .build import BuildEvent, build_library
from .checks import UnusableTables
from .spec import Q_DTYPES, BuildSpec
from .store import STAGING, PolicyLibrary, PolicyRecord, PolicyTables
from .support import SupportLog

# Building and adding read through the store, so the store cannot import them: the methods are attached here.
PolicyLibrary.build = staticmethod(build_library)
PolicyLibrary.add = add_policy
PolicyLibrary.export = export_policy

__all__ = ["BuildEvent", "BuildSpec", "PolicyArrays", "PolicyLibrary", "PolicyRecord", "PolicyTables", "Q_DTYPES",
           "STAGING", "SupportLog", "UnusableTables", "add_policy", "build_library", "export_policy"]
