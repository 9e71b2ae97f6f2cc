"""The policy library: pre-trained tabular policies with their support, embeddings and index.

:mod:`lever.library.store` holds the on-disk format and read access,
:mod:`lever.library.build` the parallel, resumable build,
:mod:`lever.library.spec` what a build trains, :mod:`lever.library.checks`
the checks of manifests and tables, and :mod:`lever.library.workers` the
worker processes of lever's process pools.
"""

from .build import BuildEvent, build_library
from .checks import UnusableTables
from .spec import Q_DTYPES, BuildSpec
from .store import STAGING, PolicyLibrary, PolicyRecord, PolicyTables

# Building reads through the store, so the store cannot import it: the method is attached here.
PolicyLibrary.build = staticmethod(build_library)

__all__ = ["BuildEvent", "BuildSpec", "PolicyLibrary", "PolicyRecord", "PolicyTables", "Q_DTYPES", "STAGING",
           "UnusableTables", "build_library"]
