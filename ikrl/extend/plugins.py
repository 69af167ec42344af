"""Finding and loading plugins: pluggy, entry points in the ``ikrl`` group.

ikrl's own components are registered exactly as a third party's are: through entry points
declared in ``pyproject.toml``. Nothing is loaded at import time: :func:`load_plugins`
builds a plugin manager when asked, and :func:`ikrl.extend.registry.default_registry` caches one
per process (tests reset it).

Two environment variables choose what is loaded:

* ``IKRL_DISABLE_PLUGIN_AUTOLOAD=1`` loads only ikrl's own plugins, none of other
  installed distributions.
* ``IKRL_DISABLE_PLUGINS="ikrl-mylab,ikrl-other:robots"`` skips the named plugins, before
  they are imported (so a broken one can be skipped): comma-separated distribution names
  (as pip writes them; case, ``-``, ``_`` and ``.`` do not matter), or ``distribution:entry
  point`` for one entry point of a distribution, the name messages give a plugin
  (``ikrl-mylab:mylab``). ikrl's own (``ikrl:robots``, ...) may be skipped too, e.g. to take
  a robot name from another package. A name that matches nothing installed is a
  :class:`PluginWarning` suggesting the closest.

What a plugin implements is checked when it is registered: a function marked
``@ikrl.hookimpl`` whose name is not one of ikrl's hooks (``ikrl_reward`` for
``ikrl_rewards``) is a :class:`~ikrl.errors.PluginError` suggesting the closest hook; a
plugin that implements no hook at all provides nothing and gets a :class:`PluginWarning`
(saying which functions look like hooks but are not marked). A warning, not an error: such
a plugin cannot change any environment or result, and an error would stop every ikrl
command over a package its user may not be able to fix; a spec naming what it meant to
provide still fails, with "unknown reward ... did you mean".
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import pluggy

from ikrl.errors import PluginError, closest
from ikrl.extend import hookspecs

__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "DISABLE_PLUGINS_ENV",
    "ENTRY_POINT_GROUP",
    "HOOKS",
    "LoadedPlugins",
    "PluginWarning",
    "hookimpl",
    "load_plugins",
]

hookimpl = pluggy.HookimplMarker("ikrl")

ENTRY_POINT_GROUP = "ikrl"
DISABLE_AUTOLOAD_ENV = "IKRL_DISABLE_PLUGIN_AUTOLOAD"
DISABLE_PLUGINS_ENV = "IKRL_DISABLE_PLUGINS"
OWN_DISTRIBUTION = "ikrl"
#: ikrl's hooks, sorted: the functions of :mod:`ikrl.extend.hookspecs`.
HOOKS: tuple[str, ...] = tuple(sorted(n for n in dir(hookspecs) if n.startswith("ikrl_")))


class PluginWarning(UserWarning):
    """A plugin, or the list of disabled plugins, looks wrong but cannot change a result: a
    plugin that implements no hook, a hook-named function not marked ``@ikrl.hookimpl``, a
    name in ``IKRL_DISABLE_PLUGINS`` that matches nothing installed."""


@dataclass(frozen=True)
class LoadedPlugins:
    """A plugin manager and, for each registered plugin name, the distribution it came from.

    ``disabled``: the plugins (``distribution:entry point``) that ``IKRL_DISABLE_PLUGINS``
    skipped; ``not_autoloaded``: those of other distributions left out because autoloading
    was off (``IKRL_DISABLE_PLUGIN_AUTOLOAD=1`` or ``autoload=False``).
    """

    manager: pluggy.PluginManager
    distributions: dict[str, str]
    disabled: tuple[str, ...] = ()
    not_autoloaded: tuple[str, ...] = ()

    def skipped(self) -> list[tuple[str, str]]:
        """``(plugin, why)`` for every installed plugin that was not loaded: those
        ``IKRL_DISABLE_PLUGINS`` named, then those autoloading left out.

        Examples:
            >>> LoadedPlugins(pluggy.PluginManager("ikrl"), {}, ("ikrl-lab:robots",), ("ikrl-zoo:robots",)).skipped()
            [('ikrl-lab:robots', 'IKRL_DISABLE_PLUGINS names it'), ('ikrl-zoo:robots', 'IKRL_DISABLE_PLUGIN_AUTOLOAD is set')]
        """
        return [(p, f"{DISABLE_PLUGINS_ENV} names it") for p in self.disabled] + [
            (p, f"{DISABLE_AUTOLOAD_ENV} is set") for p in self.not_autoloaded
        ]


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _normalize(distribution: str) -> str:
    """A distribution name as PEP 503 compares them: lower case, runs of ``-_.`` as ``-``."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _disabled_names() -> list[str]:
    """The names ``IKRL_DISABLE_PLUGINS`` lists, normalized, in order."""
    names = []
    for item in os.environ.get(DISABLE_PLUGINS_ENV, "").split(","):
        item = item.strip()
        if item:
            dist, colon, ep = item.partition(":")
            names.append(f"{_normalize(dist.strip())}:{ep.strip()}" if colon else _normalize(item))
    return names


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
    registers only ikrl's own plugins; ``IKRL_DISABLE_PLUGINS`` skips named ones (module
    docstring). ``extra`` adds ``(plugin, name)`` pairs, as tests do. A plugin that fails to
    import, or that implements a hook ikrl does not have, raises a :class:`PluginError`
    naming its distribution and entry point; one that implements no hook gets a
    :class:`PluginWarning`.
    """
    if autoload is None:
        autoload = not _autoload_disabled()
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    distributions: dict[str, str] = {}
    disable = _disabled_names()
    matched: set[str] = set()
    disabled: list[str] = []
    not_autoloaded: list[str] = []
    installed: list[str] = []
    for (dist, ep_name), ep in ((key, ep) for key, ep in _entry_points()):
        keys = (_normalize(dist), f"{_normalize(dist)}:{ep_name}")
        installed.extend(keys)
        hit = [key for key in keys if key in disable]
        if hit:
            matched.update(hit)
            disabled.append(f"{dist}:{ep_name}")
            continue
        if dist != OWN_DISTRIBUTION and not autoload:
            not_autoloaded.append(f"{dist}:{ep_name}")
            continue
        where = f"entry point {ep_name!r} ({ep.value}) of distribution {dist!r}"
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"{where} failed to load: {type(exc).__name__}: {exc}. Fix or uninstall {dist!r}, set "
                f"{DISABLE_PLUGINS_ENV}={dist} to skip it, or {DISABLE_AUTOLOAD_ENV}=1 to skip plugins from "
                "other distributions"
            ) from exc
        name = f"{dist}:{ep_name}"
        _register(manager, plugin, name, where)
        distributions[name] = dist
    for unknown in (name for name in disable if name not in matched):
        hint = closest(unknown, dict.fromkeys(installed))
        warnings.warn(
            f"{DISABLE_PLUGINS_ENV} names {unknown!r}, which is no installed distribution or entry point of the "
            f"{ENTRY_POINT_GROUP!r} group{f' (did you mean {hint!r}?)' if hint else ''}; nothing was skipped for it",
            PluginWarning,
            stacklevel=2,
        )
    for plugin, name in extra:
        _register(manager, plugin, name, f"plugin {name!r}")
        distributions[name] = "<registered in code>"
    return LoadedPlugins(manager, distributions, tuple(disabled), tuple(not_autoloaded))


def _register(manager: pluggy.PluginManager, plugin: object, name: str, where: str) -> None:
    known = ", ".join(HOOKS)
    marked, unmarked = _hook_like(manager, plugin)
    for attribute in marked:
        if attribute not in HOOKS:
            hint = closest(attribute, HOOKS)
            raise PluginError(
                f"{where} cannot be registered: it implements hook {attribute!r}, which ikrl does not have"
                f"{f' (did you mean {hint!r}?)' if hint else ''}. ikrl's hooks are: {known}"
            )
    try:
        manager.register(plugin, name=name)
        manager.check_pending()
    except (pluggy.PluginValidationError, ValueError) as exc:
        manager.unregister(name=name) if manager.has_plugin(name) else None
        raise PluginError(f"{where} cannot be registered: {exc}. ikrl's hooks are: {known}") from exc
    forgotten = [f for f in unmarked if f in HOOKS]
    if forgotten:
        warnings.warn(
            f"{where} defines {', '.join(forgotten)} without @ikrl.hookimpl, so ikrl does not call "
            f"{'them' if len(forgotten) > 1 else 'it'}: mark each hook implementation with @ikrl.hookimpl",
            PluginWarning,
            stacklevel=3,
        )
    if not marked:
        near = {f: closest(f, HOOKS) for f in unmarked if f not in HOOKS}
        hints = "".join(f"; {f} is not one (did you mean {h!r}?)" for f, h in near.items() if h)
        warnings.warn(
            f"{where} implements no ikrl hook, so it provides nothing: a plugin has functions marked "
            f"@ikrl.hookimpl named after ikrl's hooks ({known}){hints}",
            PluginWarning,
            stacklevel=3,
        )


def _hook_like(manager: pluggy.PluginManager, plugin: object) -> tuple[list[str], list[str]]:
    """The hooks ``plugin``'s functions marked ``@ikrl.hookimpl`` implement, and the names of its unmarked
    functions named ``ikrl_...`` (hooks forgotten or misspelled)."""
    marked, unmarked = [], []
    for attribute in sorted(dir(plugin)):
        opts = manager.parse_hookimpl_opts(plugin, attribute)
        if opts is not None:
            marked.append(opts.get("specname") or attribute)  # @hookimpl(specname=...) names its hook
        elif attribute.startswith("ikrl_") and _is_function(plugin, attribute):
            unmarked.append(attribute)
    return marked, unmarked


def _is_function(plugin: object, attribute: str) -> bool:
    try:
        value = inspect.getattr_static(plugin, attribute)
    except AttributeError:
        return False
    value = value.__func__ if isinstance(value, staticmethod | classmethod) else value
    return inspect.isfunction(value)
