"""The exception tree. Library code raises these; only ``cli`` turns them into exit codes.

MonocerosError
├── ConfigError            a setting, file or flag is wrong (names the source)
├── AppLoadError           the APP string cannot be turned into a callable
│   ├── ModuleNotFound     the module itself is missing
│   ├── AttributeNotFound  the module has no such attribute
│   └── ModuleRaised       the user's module raised while importing (traceback kept)
├── LifespanError          lifespan startup or shutdown failed
├── BindError              a listener could not be created
├── HookError              a server hook raised (``__cause__`` carries its exception)
└── ASGIProtocolError      the app broke the ASGI message protocol
ClientDisconnected (OSError)  send() after the client went away, as the ASGI spec asks
"""

from __future__ import annotations


class MonocerosError(Exception):
    """Base of every error monoceros raises on purpose."""


class ConfigError(MonocerosError):
    """A configuration value, file or flag is wrong. The message names where it came from."""


class AppLoadError(MonocerosError):
    """The application could not be loaded."""


class ModuleNotFound(AppLoadError):
    """The module named in APP does not exist."""


class AttributeNotFound(AppLoadError):
    """The module exists but has no such attribute."""


class ModuleRaised(AppLoadError):
    """Importing the user's module raised; ``__cause__`` carries the original traceback."""


class LifespanError(MonocerosError):
    """ASGI lifespan startup or shutdown failed."""


class BindError(MonocerosError):
    """A listening socket could not be created."""


class HookError(MonocerosError):
    """A server hook raised; the message says what the hook was given, ``__cause__`` what it raised."""


class ASGIProtocolError(MonocerosError, RuntimeError):
    """The app sent an ASGI message out of order or of the wrong shape."""


class ClientDisconnected(OSError):
    """The client is gone; raised by ``send`` as the ASGI spec asks."""
