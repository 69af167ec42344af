"""The robots that ship with ikrl: URDF files and their metadata, installed as package data.

Each robot is a folder holding a URDF and a ``robot.toml`` naming the file, the base and
tip links, and the success tolerances its environments default to (the chain declares them
as ``env_defaults``; :func:`ikrl.make_env` uses them when the user gives none). This package
only describes robots; the robot plugins (and :func:`load` for scripts and tests) turn a
description into a chain.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import torch

from ikrl.kinematics import Chain, load_chain
from ikrl.errors import UnknownNameError

__all__ = ["RobotInfo", "info", "load", "names"]


@dataclass(frozen=True)
class RobotInfo:
    """What ``robot.toml`` says of a robot; ``urdf`` is the installed file's path."""

    name: str
    title: str
    urdf: Path
    base: str
    tip: str
    source: str
    position_tolerance: float  # metres
    rotation_tolerance: float  # radians


def _root() -> Path:
    return Path(str(files(__name__)))


def names() -> list[str]:
    """The robots that ship with ikrl, sorted."""
    return sorted(p.parent.name for p in _root().glob("*/robot.toml"))


def info(name: str) -> RobotInfo:
    """The description of robot ``name``."""
    folder = _root() / name
    if not (folder / "robot.toml").is_file():
        raise UnknownNameError("robot", name, names())
    data = tomllib.loads((folder / "robot.toml").read_text(encoding="utf-8"))
    return RobotInfo(
        name=data["name"],
        title=data["title"],
        urdf=folder / data["urdf"],
        base=data["base"],
        tip=data["tip"],
        source=data["source"],
        position_tolerance=float(data["tolerance"]["position"]),
        rotation_tolerance=float(data["tolerance"]["rotation"]),
    )


def load(name: str, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Chain:
    """The chain of robot ``name``, from its base to its tip link, declaring the tolerances of
    its ``robot.toml`` as its environments' defaults (``chain.env_defaults``)."""
    robot = info(name)
    chain = load_chain(robot.urdf, base=robot.base, tip=robot.tip, dtype=dtype, device=device)
    return chain.with_env_defaults(position_tolerance=robot.position_tolerance, rotation_tolerance=robot.rotation_tolerance)
