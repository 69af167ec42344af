"""``make_env``: the environment a spec string describes, assembled from the registry.

Environment options the user does not give come from the robot when it declares them (an
optional ``env_defaults`` mapping on the chain, :mod:`ikrl.extend.hookspecs`), else from
:class:`~ikrl.env.IKEnv`'s own defaults (5 mm, 2 degrees, 0.1 per step).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from ikrl.env.ikenv import IKEnv
from ikrl.errors import BadParameterError, PluginError, closest
from ikrl.extend.registry import Registry, assemble, default_registry
from ikrl.kinematics.protocol import KinematicChain
from ikrl.spec.grammar import EnvSpec
from ikrl.util.checks import is_finite_number

__all__ = ["ENV_OPTIONS", "declared_defaults", "make_env"]


#: Keyword arguments of :func:`make_env` that set environment options, not component parameters.
ENV_OPTIONS = ("max_delta", "position_tolerance", "rotation_tolerance")


def make_env(
    spec: EnvSpec | str,
    *,
    batch_size: int | Sequence[int] | torch.Size = 64,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
    max_steps: int = 100,
    registry: Registry | None = None,
    **overrides: object,
) -> IKEnv:
    """The environment a spec string describes, e.g. ``make_env("dobot_cr5+weighted_pose+sincos")``.

    Keyword ``overrides`` are environment options (``max_delta``, ``position_tolerance``,
    ``rotation_tolerance``) or, keyed by a component name of the spec, a dict of that
    component's parameters: ``make_env("panda+near_target", near_target={"noise": 0.1})``.
    An option not given is what the robot declares (:func:`declared_defaults`), else
    :class:`~ikrl.env.IKEnv`'s default. The explicit spec, defaults included, is
    ``env.resolved_spec``.

    Examples:
        >>> env = make_env("panda", batch_size=2)
        >>> round(env.position_tolerance, 6), round(math.degrees(env.rotation_tolerance), 6)
        (0.005, 2.0)
        >>> make_env("panda", batch_size=2, position_tolerance=0.001).position_tolerance
        0.001
    """
    options = {k: v for k, v in overrides.items() if k in ENV_OPTIONS}
    components = {k: v for k, v in overrides.items() if k not in ENV_OPTIONS}
    for key, value in components.items():
        if not isinstance(value, Mapping):
            raise BadParameterError(
                f"make_env got {key}={value!r}: a keyword is an environment option ({', '.join(ENV_OPTIONS)}) "
                "or the name of a component of the spec with a dict of its parameters"
            )
    registry = registry or default_registry()
    assembly = assemble(spec, registry, components)  # type: ignore[arg-type]
    robot = registry.robot(assembly.spec.robot.name)
    declared = declared_defaults(assembly.chain, f"robot {robot.name!r} from {robot.distribution!r}")
    options = {**declared, **options}  # the user's values win
    return IKEnv(
        assembly.chain, assembly.reward, assembly.sampler, assembly.transforms,
        batch_size=batch_size, device=device, dtype=dtype, seed=seed, max_steps=max_steps,
        spec=assembly.spec, **options,  # type: ignore[arg-type]
    )  # fmt: skip


def declared_defaults(chain: KinematicChain, origin: str) -> dict[str, float | tuple[float, ...]]:
    """The environment options ``chain`` declares in its optional ``env_defaults`` mapping,
    checked: ``position_tolerance`` a positive distance in metres, ``rotation_tolerance`` an
    angle in radians in ``(0, pi]``, ``max_delta`` one positive number or one per joint
    (radians or metres per step). Anything else is a :class:`~ikrl.errors.PluginError`
    naming ``origin`` (the robot and its distribution) and what would be right.

    Examples:
        >>> import ikrl_robots
        >>> declared_defaults(ikrl_robots.load("ur5e").with_env_defaults(max_delta=0.05), "robot 'ur5e'")["max_delta"]
        0.05
        >>> declared_defaults(ikrl_robots.load("ur5e").with_env_defaults(rotation_tolerance=5), "robot 'ur5e'")
        Traceback (most recent call last):
        ...
        ikrl.errors.PluginError: robot 'ur5e' declares env_defaults['rotation_tolerance'] = 5; a rotation tolerance is radians in (0, pi] (math.radians(5) for 5 degrees)
    """
    declared = getattr(chain, "env_defaults", None)
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        raise PluginError(
            f"{origin} declares env_defaults = {declared!r}; env_defaults is a mapping of option names "
            f"({', '.join(ENV_OPTIONS)}) to values, e.g. {{'position_tolerance': 0.002}}"
        )
    out: dict[str, float | tuple[float, ...]] = {}
    for key, value in declared.items():
        where = f"{origin} declares env_defaults[{key!r}] = {value!r}"
        if key not in ENV_OPTIONS:
            hint = closest(str(key), ENV_OPTIONS)
            raise PluginError(
                f"{origin} declares env_defaults[{key!r}], which is no environment option"
                f"{f' (did you mean {hint!r}?)' if hint else ''}; the options are {', '.join(ENV_OPTIONS)}"
            )
        number = _positive(value)
        if key == "position_tolerance":
            if number is None:
                raise PluginError(f"{where}; a position tolerance is a positive, finite distance in metres")
            out[key] = number
        elif key == "rotation_tolerance":
            if number is None or number > math.pi:
                example = f"math.radians({number:g}) for {number:g} degrees" if number else "math.radians(2) for 2 degrees"
                raise PluginError(f"{where}; a rotation tolerance is radians in (0, pi] ({example})")
            out[key] = number
        else:
            out[key] = _declared_max_delta(value, chain, where)
    return out


def _positive(value: object) -> float | None:
    """``value`` as a float if it is a positive, finite int or float (not a bool), else None."""
    if is_finite_number(value) and isinstance(value, int | float) and value > 0:
        return float(value)
    return None


def _declared_max_delta(value: object, chain: KinematicChain, where: str) -> float | tuple[float, ...]:
    right = (
        f"; max_delta is the largest joint change per step, one positive number or {chain.dof} "
        f"(one per joint of {chain.name!r}: {', '.join(chain.joint_names)}), radians or metres"
    )
    number = _positive(value)
    if number is not None:
        return number
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        values = [_positive(v) for v in value]
        if len(values) == chain.dof and all(v is not None for v in values):
            return tuple(v for v in values if v is not None)
    raise PluginError(where + right)
