"""The plugin hooks of ikrl: one per kind of component, nothing else in this module.

A plugin is a module (or object) with functions marked ``@ikrl.hookimpl`` and named after
these hooks, registered through the ``ikrl`` entry-point group. Each hook takes no
arguments and returns a dict mapping names to factories; a factory is called with the
keyword parameters written in the spec string (``near_target(noise=0.3)`` calls
``factory(noise=0.3)``) and nothing else, and returns the component. Names must be unique:
two plugins providing one name is an error that names both. Robots and algorithms have their own names;
rewards, samplers and transforms share one namespace, since a spec names them in any order.

A function marked ``@ikrl.hookimpl`` under a name that is not one of these hooks is an error
suggesting the closest; a plugin implementing none of them gets a warning
(:mod:`ikrl.extend.plugins`, which also describes ``IKRL_DISABLE_PLUGINS``).
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from ikrl.extend.components import Algorithm, ObservationTransform, RewardShape, Sampler
from ikrl.kinematics.protocol import KinematicChain

__all__ = ["hookspec", "ikrl_algorithms", "ikrl_rewards", "ikrl_robots", "ikrl_samplers", "ikrl_transforms"]

hookspec = pluggy.HookspecMarker("ikrl")


@hookspec
def ikrl_robots() -> dict[str, Callable[..., KinematicChain]]:
    """Robots: names to factories returning a kinematic chain: an :class:`ikrl.Chain`, or any
    object satisfying :class:`ikrl.KinematicChain` (a DH table, an analytic arm, ...).

    Called when the registry is built; a factory is called when a spec names its robot, with
    the spec's parameters (``my_arm(link=0.5)`` calls ``factory(link=0.5)``). A URDF robot is
    one line: ``{"my_arm": lambda: ikrl.load_chain(PATH, base="base_link", tip="tool0")}``;
    a robot built in Python is :meth:`ikrl.Chain.from_joints` over :class:`ikrl.Joint` objects
    (:meth:`~ikrl.Joint.from_xyz_rpy`, :meth:`~ikrl.Joint.from_dh`). The environment
    converts the chain to its dtype and device.

    **Declared defaults.** The chain may carry an optional attribute ``env_defaults``: a
    mapping with any of ``position_tolerance`` (metres), ``rotation_tolerance`` (radians, at
    most pi) and ``max_delta`` (the largest joint change per step, radians or metres: one
    positive number or one per joint). :func:`ikrl.make_env` uses each one the user does not
    give (the user's values win; absent ones are the environment's defaults, 5 mm, 2 degrees
    and 0.1). ``ikrl.Chain.with_env_defaults(...)`` returns a chain declaring them; any other
    chain object declares them as a plain attribute, e.g. a class attribute
    ``env_defaults = {"position_tolerance": 0.002}``; no subclassing. A declared value that is
    not one of those is a :class:`~ikrl.errors.PluginError` naming the robot and its
    distribution when an environment is built.
    """
    ...


@hookspec
def ikrl_rewards() -> dict[str, Callable[..., RewardShape]]:
    """Reward shapes: names to factories returning a :class:`ikrl.extend.components.RewardShape`."""
    ...


@hookspec
def ikrl_samplers() -> dict[str, Callable[..., Sampler]]:
    """Start/target samplers: names to factories returning a :class:`ikrl.extend.components.Sampler`."""
    ...


@hookspec
def ikrl_transforms() -> dict[str, Callable[..., ObservationTransform]]:
    """Observation transforms: names to factories returning an
    :class:`ikrl.extend.components.ObservationTransform`."""
    ...


@hookspec
def ikrl_algorithms() -> dict[str, Callable[..., Algorithm]]:
    """Training algorithms: names to factories (usually classes) called as
    ``factory(env, policy, *, seed, **hyperparameters)`` and returning an
    :class:`ikrl.extend.components.Algorithm`. The hyperparameters are the factory's other
    keyword parameters, checked like a component's (``ikrl train --param NAME=VALUE``)."""
    ...
