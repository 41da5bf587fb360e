"""monoceros: one Python application server for WSGI and ASGI apps."""

from ._version import __version__
from .config import Config

__all__ = ["Config", "__version__"]
