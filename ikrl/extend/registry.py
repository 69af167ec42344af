"""The registry: every component the plugins provide, and the assembly of a spec from it.

:class:`Registry` collects what the hooks return, refuses duplicate names, and answers
lookups with "did you mean" errors. :func:`assemble` turns an :class:`~ikrl.spec.EnvSpec`
into built components: it fills in the default reward and sampler, checks every
parameter against the factory's signature before calling anything, and applies the
observation rule (the ``raw`` joints or the ``target`` block are added when no named
transform shows them). The assembled spec is explicit: it builds the same environment.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ikrl.errors import (
    BadParameterError,
    DuplicateNameError,
    IkrlError,
    PluginError,
    SpecError,
    SpecSyntaxError,
    UnknownNameError,
)
from ikrl.extend.components import JOINTS, TARGET, ObservationTransform, RewardShape, Sampler
from ikrl.extend.guard import guard, origin_of, raised_at
from ikrl.extend.plugins import LoadedPlugins, load_plugins
from ikrl.extend.trial import check_shows
from ikrl.kinematics.protocol import KinematicChain, missing_members
from ikrl.spec.grammar import EnvSpec, Part, Value

_Built = TypeVar("_Built")

__all__ = [
    "DEFAULT_REWARD",
    "DEFAULT_SAMPLER",
    "KINDS",
    "Assembly",
    "Component",
    "Registry",
    "assemble",
    "build_robot",
    "default_registry",
    "reset_default_registry",
]

#: Kinds of component, with the hook that provides each.
KINDS = {
    "robot": "ikrl_robots",
    "reward": "ikrl_rewards",
    "sampler": "ikrl_samplers",
    "transform": "ikrl_transforms",
    "algorithm": "ikrl_algorithms",
}
#: Parameters an algorithm's factory gets from the trainer, not from the user.
ALGORITHM_CONTEXT = ("env", "policy", "seed")
DEFAULT_REWARD = "weighted_pose"
DEFAULT_SAMPLER = "uniform"
#: Added to the observation when no transform of a spec shows the joints / the target. For
#: the target both its pose and the error twist: the pose says which target it is, the error
#: is what a controller acts on; a policy without the error must learn forward kinematics to
#: millimetres before it can aim (measured: far slower to train, see CONTRIBUTING.md).
DEFAULT_JOINT_FEATURES: tuple[str, ...] = ("raw",)
DEFAULT_TARGET_FEATURES: tuple[str, ...] = ("target", "error")


@dataclass(frozen=True)
class Component:
    """A named factory, with the plugin and distribution that provide it."""

    kind: str
    name: str
    factory: Callable[..., object]
    plugin: str
    distribution: str

    @property
    def origin(self) -> str:
        """How messages name it: ``reward 'huber' (ikrl-mylab)``."""
        return f"{self.kind} {self.name!r} ({self.distribution})"

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The keyword parameters the factory accepts (empty if it takes ``**kwargs``)."""
        try:
            signature = inspect.signature(self.factory)
        except (TypeError, ValueError):
            return {}
        context = ALGORITHM_CONTEXT if self.kind == "algorithm" else ()
        return {
            name: p
            for name, p in signature.parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name not in context
        }

    def _accepts_any_keyword(self) -> bool:
        try:
            signature = inspect.signature(self.factory)
        except (TypeError, ValueError):
            return True
        return any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())

    def check_parameters(self, params: Mapping[str, Value]) -> None:
        """Refuse unknown or missing parameters before anything is built."""
        accepted = self.parameters()
        described = ", ".join(_describe(p) for p in accepted.values()) or "none"
        if not self._accepts_any_keyword():
            for key in params:
                if key not in accepted:
                    raise BadParameterError(
                        f"{self.kind} {self.name!r} has no parameter {key!r}; it accepts: {described}"
                    )
        missing = [n for n, p in accepted.items() if p.default is p.empty and n not in params]
        if missing:
            raise BadParameterError(
                f"{self.kind} {self.name!r} needs {', '.join(repr(m) for m in missing)}; it accepts: {described}"
            )

    def build(self, params: Mapping[str, Value]) -> object:
        """Call the factory with ``params``; errors name the component and its provider."""
        self.check_parameters(params)
        try:
            return self.factory(**params)
        except IkrlError:
            raise
        except (TypeError, ValueError) as exc:
            raise BadParameterError(f"{self.kind} {self.name!r} rejected {dict(params)}: {exc}") from exc
        except Exception as exc:
            raise PluginError(
                f"{self.kind} {self.name!r} from {self.distribution!r} failed to build: {type(exc).__name__}: {exc} "
                f"({raised_at(exc.__traceback__, self.factory)})"
            ) from exc


def _describe(p: inspect.Parameter) -> str:
    return p.name if p.default is p.empty else f"{p.name}={p.default!r}"


class Registry:
    """Components by kind and name. Robots have their own namespace; rewards, samplers
    and transforms share one (a spec names them in any order)."""

    def __init__(self, components: Iterable[Component], *, skipped: Iterable[tuple[str, str]] = ()) -> None:
        #: ``(plugin, why)`` for the installed plugins that were not loaded (:meth:`LoadedPlugins.skipped`).
        self.skipped: tuple[tuple[str, str], ...] = tuple(skipped)
        self._robots: dict[str, Component] = {}
        self._algorithms: dict[str, Component] = {}
        self._parts: dict[str, Component] = {}
        for component in components:
            table = {"robot": self._robots, "algorithm": self._algorithms}.get(component.kind, self._parts)
            other = table.get(component.name)
            if other is not None:
                raise DuplicateNameError(
                    f"{component.kind} {component.name!r} is provided twice: by {other.plugin!r} "
                    f"(distribution {other.distribution!r}, as a {other.kind}) and by {component.plugin!r} "
                    f"(distribution {component.distribution!r}); uninstall one or rename it"
                )
            table[component.name] = component

    @classmethod
    def from_plugins(cls, plugins: LoadedPlugins) -> Registry:
        """Call every hook implementation once and collect what it returns."""
        components = []
        for kind, hook_name in KINDS.items():
            for impl in getattr(plugins.manager.hook, hook_name).get_hookimpls():
                distribution = plugins.distributions.get(impl.plugin_name, "<unknown distribution>")
                where = f"{hook_name}() of plugin {impl.plugin_name!r} (distribution {distribution!r})"
                try:
                    provided = impl.function()
                except Exception as exc:
                    raise PluginError(
                        f"{where} raised {type(exc).__name__}: {exc} ({raised_at(exc.__traceback__, impl.function)})"
                    ) from exc
                if not isinstance(provided, Mapping) or not all(
                    isinstance(k, str) and callable(v) for k, v in provided.items()
                ):
                    raise PluginError(f"{where} must return a dict of names to factories; got {provided!r}")
                for name, factory in provided.items():
                    components.append(Component(kind, name, factory, impl.plugin_name, distribution))
        return cls(components, skipped=plugins.skipped())

    def components(self, kind: str | None = None) -> list[Component]:
        """All components (of one kind), sorted by kind then name."""
        every = [*self._robots.values(), *self._parts.values(), *self._algorithms.values()]
        chosen = [c for c in every if kind is None or c.kind == kind]
        return sorted(chosen, key=lambda c: (list(KINDS).index(c.kind), c.name))

    def names(self, kind: str) -> list[str]:
        return [c.name for c in self.components(kind)]

    def robot(self, name: str) -> Component:
        if name not in self._robots:
            if name in self._parts:
                raise SpecError(f"a spec starts with a robot, but {name!r} is a {self._parts[name].kind}")
            raise UnknownNameError("robot", name, self._robots)
        return self._robots[name]

    def algorithm(self, name: str) -> Component:
        """A training algorithm by name."""
        if name not in self._algorithms:
            raise UnknownNameError("algorithm", name, self._algorithms)
        return self._algorithms[name]

    def part(self, name: str) -> Component:
        """A reward, sampler or transform by name."""
        if name not in self._parts:
            if name in self._robots:
                raise SpecError(f"{name!r} is a robot; a spec names one robot, first")
            raise UnknownNameError("reward, sampler or transform", name, self._parts)
        return self._parts[name]


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry of the installed plugins, built on first use and cached per process."""
    global _default
    if _default is None:
        _default = Registry.from_plugins(load_plugins())
    return _default


def reset_default_registry() -> None:
    """Forget the cached registry (tests; after installing a plugin at run time)."""
    global _default
    _default = None


@dataclass(frozen=True)
class Assembly:
    """A spec's built components. ``spec`` is explicit: defaults and added blocks included."""

    spec: EnvSpec
    chain: KinematicChain
    reward: RewardShape
    sampler: Sampler
    transforms: tuple[tuple[str, ObservationTransform], ...]


def assemble(
    spec: EnvSpec | str, registry: Registry | None = None, overrides: Mapping[str, Mapping[str, Value]] | None = None
) -> Assembly:
    """Validate every name and parameter of ``spec``, then build its components.

    ``overrides`` maps a component name of the spec to parameters that replace or add to
    those written in the string.
    """
    if not isinstance(spec, EnvSpec | str):
        raise SpecSyntaxError(
            f"a spec must be a string like 'dobot_cr5+weighted_pose' (or an EnvSpec); got {spec!r:.80} ({type(spec).__name__})"
        )
    if registry is not None and not isinstance(registry, Registry):
        raise BadParameterError(
            f"registry must be an ikrl.extend.registry.Registry (or None: the installed plugins'); got {type(registry).__name__}"
        )
    registry = registry or default_registry()
    spec = EnvSpec.parse(spec) if isinstance(spec, str) else spec
    overrides = dict(overrides or {})
    parts = [spec.robot, *spec.parts]
    unknown_overrides = set(overrides) - {p.name for p in parts}
    if unknown_overrides:
        raise BadParameterError(
            f"overrides for {', '.join(sorted(unknown_overrides))}, which the spec {str(spec)!r} does not name"
        )
    parts = [Part.of(p.name, {**p.kwargs, **overrides.get(p.name, {})}) for p in parts]

    robot_part, *rest = parts
    robot = registry.robot(robot_part.name)
    by_kind: dict[str, list[tuple[Part, Component]]] = {"reward": [], "sampler": [], "transform": []}
    for part in rest:
        component = registry.part(part.name)
        by_kind[component.kind].append((part, component))
    for kind, default in (("reward", DEFAULT_REWARD), ("sampler", DEFAULT_SAMPLER)):
        if len(by_kind[kind]) > 1:
            names = " and ".join(p.name for p, _ in by_kind[kind])
            raise SpecError(f"a spec names at most one {kind}; {str(spec)!r} names {names}")
        if not by_kind[kind]:
            by_kind[kind].append((Part(default), registry.part(default)))
    # Check every parameter before building anything.
    for part, component in [(robot_part, robot), *(x for k in by_kind.values() for x in k)]:
        component.check_parameters(part.kwargs)

    chain = _built_chain(robot, robot_part)
    (reward_part, reward_c), = by_kind["reward"]
    (sampler_part, sampler_c), = by_kind["sampler"]
    reward = _built(reward_c, reward_part, RewardShape)
    sampler = _built(sampler_c, sampler_part, Sampler)
    transforms = [(part, _built(c, part, ObservationTransform)) for part, c in by_kind["transform"]]

    shown = set().union(*(check_shows(t, origin_of(t, "transform")) for _, t in transforms)) if transforms else set()
    added = []
    for aspect, names in ((JOINTS, DEFAULT_JOINT_FEATURES), (TARGET, DEFAULT_TARGET_FEATURES)):
        if aspect not in shown:
            for name in names:
                part = Part(name)
                added.append((part, _built(registry.part(name), part, ObservationTransform)))
    transforms = added + transforms

    explicit = EnvSpec(robot_part, (reward_part, sampler_part, *(p for p, _ in transforms)))
    return Assembly(explicit, chain, reward, sampler, tuple((str(p), t) for p, t in transforms))


def build_robot(part: Part, registry: Registry | None = None) -> KinematicChain:
    """The chain of the robot a spec's robot part names (``Part.of("panda", {"tip": ...})``),
    its parameters checked first."""
    component = (registry or default_registry()).robot(part.name)
    component.check_parameters(part.kwargs)
    return _built_chain(component, part)


def _built_chain(robot: Component, part: Part) -> KinematicChain:
    chain = robot.build(part.kwargs)
    if not isinstance(chain, KinematicChain):
        missing = missing_members(chain)
        raise PluginError(
            f"robot {robot.name!r} from {robot.distribution!r} returned {type(chain).__name__}, which is not a "
            f"kinematic chain (ikrl.KinematicChain): it lacks {', '.join(missing)}"
        )
    return chain


def _built(component: Component, part: Part, protocol: type[_Built]) -> _Built:
    """The component ``part`` names, built and checked against ``protocol``, wrapped so
    that its failures name it (:mod:`ikrl.extend.guard`)."""
    built = component.build(part.kwargs)
    if not isinstance(built, protocol):
        raise PluginError(
            f"{component.kind} {component.name!r} from {component.distribution!r} built a "
            f"{type(built).__name__}, which is not a {protocol.__name__} (see ikrl.extend.components)"
        )
    return guard(built, component.origin)  # type: ignore[return-value]
