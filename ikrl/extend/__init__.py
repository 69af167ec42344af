"""Extension points: the hook specifications, plugin loading, component protocols and the registry."""

from __future__ import annotations

from ikrl.extend.plugins import hookimpl
from ikrl.extend.registry import Registry, assemble, build_robot, default_registry, reset_default_registry

__all__ = ["Registry", "assemble", "build_robot", "default_registry", "hookimpl", "reset_default_registry"]
