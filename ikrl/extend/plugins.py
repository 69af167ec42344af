"""Finding and loading plugins: pluggy, entry points in the ``ikrl`` group.

ikrl's own components are registered exactly as a third party's are: through entry points
declared in ``pyproject.toml``. Nothing is loaded at import time: :func:`load_plugins`
builds a plugin manager when asked, and :func:`ikrl.extend.registry.default_registry` caches one
per process (tests reset it). Set ``IKRL_DISABLE_PLUGIN_AUTOLOAD=1`` to load only ikrl's
own plugins, not those of other installed distributions.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable
from dataclasses import dataclass

import pluggy

from ikrl.errors import PluginError
from ikrl.extend import hookspecs

__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "LoadedPlugins",
    "hookimpl",
    "load_plugins",
]

hookimpl = pluggy.HookimplMarker("ikrl")

ENTRY_POINT_GROUP = "ikrl"
DISABLE_AUTOLOAD_ENV = "IKRL_DISABLE_PLUGIN_AUTOLOAD"
OWN_DISTRIBUTION = "ikrl"


@dataclass(frozen=True)
class LoadedPlugins:
    """A plugin manager and, for each registered plugin name, the distribution it came from."""

    manager: pluggy.PluginManager
    distributions: dict[str, str]


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _entry_points() -> list[tuple[str, importlib.metadata.EntryPoint]]:
    """(distribution name, entry point) for the ``ikrl`` group, each once, sorted."""
    seen: dict[tuple[str, str], importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.metadata["Name"] if ep.dist is not None else "<unknown distribution>"
        seen.setdefault((dist, ep.name), ep)  # a distribution found twice on sys.path counts once
    return sorted(seen.items(), key=lambda item: (item[0][0] != OWN_DISTRIBUTION, item[0]))  # type: ignore[return-value]


def load_plugins(*, autoload: bool | None = None, extra: Iterable[tuple[object, str]] = ()) -> LoadedPlugins:
    """A fresh plugin manager with every ``ikrl`` entry point registered.

    ``autoload=False`` (or ``IKRL_DISABLE_PLUGIN_AUTOLOAD=1`` when ``autoload`` is None)
    registers only ikrl's own plugins. ``extra`` adds ``(plugin, name)`` pairs, as tests do.
    A plugin that fails to import, or that implements a hook ikrl does not have, raises a
    :class:`PluginError` naming its distribution and entry point.
    """
    if autoload is None:
        autoload = not _autoload_disabled()
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    distributions: dict[str, str] = {}
    for (dist, ep_name), ep in ((key, ep) for key, ep in _entry_points()):
        if dist != OWN_DISTRIBUTION and not autoload:
            continue
        where = f"entry point {ep_name!r} ({ep.value}) of distribution {dist!r}"
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"{where} failed to load: {type(exc).__name__}: {exc}. Fix or uninstall {dist!r}, "
                f"or set {DISABLE_AUTOLOAD_ENV}=1 to skip plugins from other distributions"
            ) from exc
        name = f"{dist}:{ep_name}"
        _register(manager, plugin, name, where)
        distributions[name] = dist
    for plugin, name in extra:
        _register(manager, plugin, name, f"plugin {name!r}")
        distributions[name] = "<registered in code>"
    return LoadedPlugins(manager, distributions)


def _register(manager: pluggy.PluginManager, plugin: object, name: str, where: str) -> None:
    try:
        manager.register(plugin, name=name)
        manager.check_pending()
    except (pluggy.PluginValidationError, ValueError) as exc:
        manager.unregister(name=name) if manager.has_plugin(name) else None
        known = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("ikrl_")))
        raise PluginError(f"{where} cannot be registered: {exc}. ikrl's hooks are: {known}") from exc
