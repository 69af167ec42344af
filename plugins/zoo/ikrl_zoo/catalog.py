"""The zoo's catalogue: ``zoo.toml``, read into :class:`ZooRobot` descriptions.

The catalogue is data, installed with the package and read through
:mod:`importlib.resources`, so listing the robots (``ikrl list``) needs no URDF and no
example-robot-data: only building one does (:mod:`ikrl_zoo.robots`).
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from types import MappingProxyType

from ikrl.errors import UnknownNameError

__all__ = ["ZooRobot", "get", "names", "robots"]


@dataclass(frozen=True)
class ZooRobot:
    """One robot of the zoo: which URDF of example-robot-data, which links, how many joints."""

    name: str  #: the robot's name in specs (``"ur10+weighted_pose"``)
    title: str
    urdf: str  #: relative to example-robot-data's robots/ folder
    base: str
    tip: str
    dof: int  #: joint values the chain must have; another count means the URDF changed
    notes: str
    #: True when the URDF's <safety_controller> declares soft limits on this chain narrower
    #: than its <limit>: the robot then takes a ``soft_limits`` parameter.
    soft_limits: bool
    #: Limits replacing the URDF's for joints on the chain, joint -> (lower, upper).
    limits: Mapping[str, tuple[float, float]] = field(default_factory=lambda: MappingProxyType({}))
    position_tolerance: float = 0.005  #: metres
    rotation_tolerance: float = math.radians(2.0)  #: radians
    max_delta: float = 0.1  #: radians per step, revolute and continuous joints
    prismatic_max_delta: float = 0.01  #: metres per step


@functools.cache
def robots() -> tuple[ZooRobot, ...]:
    """Every robot of the catalogue, in its order."""
    data = tomllib.loads(files("ikrl_zoo").joinpath("zoo.toml").read_text(encoding="utf-8"))
    defaults = data["defaults"]
    out = []
    for entry in data["robot"]:
        limits = {joint: (float(lo), float(hi)) for joint, (lo, hi) in entry.get("limits", {}).items()}
        out.append(
            ZooRobot(
                name=entry["name"], title=entry["title"], urdf=entry["urdf"], base=entry["base"], tip=entry["tip"],
                dof=int(entry["dof"]), notes=entry["notes"], soft_limits=bool(entry.get("soft_limits", False)),
                limits=MappingProxyType(limits),
                position_tolerance=float(defaults["position_tolerance"]),
                rotation_tolerance=float(defaults["rotation_tolerance"]),
                max_delta=float(defaults["max_delta"]),
                prismatic_max_delta=float(defaults["prismatic_max_delta"]),
            )
        )  # fmt: skip
    return tuple(out)


def names() -> list[str]:
    """The robots' names, in the catalogue's order."""
    return [robot.name for robot in robots()]


def get(name: str) -> ZooRobot:
    """The description of zoo robot ``name``."""
    for robot in robots():
        if robot.name == name:
            return robot
    raise UnknownNameError("zoo robot", name, names())
