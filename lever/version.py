"""The installed version of lever, readable without importing the whole package."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lever")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"
