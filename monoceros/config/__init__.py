"""Configuration: the settings registry and the sources that fill it."""

from .registry import SETTINGS, Config, Setting, registry

__all__ = ["SETTINGS", "Config", "Setting", "registry"]
