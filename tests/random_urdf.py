"""Random URDF robots for comparing ikrl with an independent implementation (Pinocchio).

:func:`random_urdf` draws a tree: a main path from a base link to a tip link with 2-8
movable joints and some fixed ones in between, side branches hanging off it (below the
tip too, so the tip is not a leaf), and sometimes a root link above the base joined to
it by a movable joint (so the base is not the root). Origins have full-range rpy and
random xyz, axes are random directions of random length (0.3-3; sometimes axis-aligned,
sometimes left out for the URDF default ``1 0 0``), and some movable joints on the path
mimic an earlier movable one (possibly a mimic joint itself, or a joint on a side
branch), with a random multiplier and offset.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

__all__ = ["RandomRobot", "random_urdf"]

MOVABLE_TYPES = ("revolute", "continuous", "prismatic")
#: Joint types only used off the main path (a chain cannot go through them).
OFF_PATH_TYPES = (*MOVABLE_TYPES, "fixed", "floating", "planar")
#: Angles a random rpy sometimes takes exactly: gimbal lock, half and full turns.
SPECIAL_ANGLES = (0.0, math.pi / 2, -math.pi / 2, math.pi, -math.pi)


@dataclass
class RandomRobot:
    xml: str
    base: str
    tip: str
    #: Movable joints on the main path, base to tip (mimic joints included).
    path_joints: list[str] = field(default_factory=list)
    #: joint name -> (mimicked joint, multiplier, offset), for every mimic joint.
    mimics: dict[str, tuple[str, float, float]] = field(default_factory=dict)


def _fmt(values) -> str:
    return " ".join(repr(float(v)) for v in values)


def _angle(rng: random.Random) -> float:
    return rng.choice(SPECIAL_ANGLES) if rng.random() < 0.15 else rng.uniform(-math.pi, math.pi)


def _origin(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return ""  # identity
    xyz = [rng.uniform(-0.5, 0.5) for _ in range(3)]
    if rng.random() < 0.1:
        return f'<origin xyz="{_fmt(xyz)}"/>'
    rpy = [_angle(rng) for _ in range(3)]
    return f'<origin xyz="{_fmt(xyz)}" rpy="{_fmt(rpy)}"/>'


def _axis(rng: random.Random) -> str:
    u = rng.random()
    if u < 0.1:
        return ""  # URDF default: 1 0 0
    scale = rng.uniform(0.3, 3.0)
    if u < 0.3:
        direction = [0.0, 0.0, 0.0]
        direction[rng.randrange(3)] = rng.choice((-1.0, 1.0))
    else:
        while True:
            direction = [rng.gauss(0.0, 1.0) for _ in range(3)]
            norm = math.sqrt(sum(d * d for d in direction))
            if norm > 1e-3:
                direction = [d / norm for d in direction]
                break
    return f'<axis xyz="{_fmt(scale * d for d in direction)}"/>'


def _limit(rng: random.Random, joint_type: str) -> str:
    if joint_type == "revolute":
        lower, upper = rng.uniform(-3.0, 0.5), rng.uniform(0.5, 3.0)
    elif joint_type == "prismatic":
        lower, upper = rng.uniform(-0.5, 0.0), rng.uniform(0.05, 0.5)
    else:
        return '<limit effort="1" velocity="1"/>' if rng.random() < 0.5 else ""
    return f'<limit lower="{lower!r}" upper="{upper!r}" effort="1" velocity="1"/>'


def _mimic(rng: random.Random, source: str) -> tuple[str, float, float]:
    multiplier = rng.uniform(-2.0, 2.0)
    offset = rng.uniform(-1.0, 1.0)
    attributes = f'joint="{source}"'
    if rng.random() < 0.15:  # URDF defaults: multiplier 1, offset 0
        multiplier, offset = 1.0, 0.0
    else:
        attributes += f' multiplier="{multiplier!r}" offset="{offset!r}"'
    return f"<mimic {attributes}/>", multiplier, offset


def random_urdf(seed: int | random.Random) -> RandomRobot:
    """A random robot description; ``seed`` is an int or a ``random.Random``."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    links: list[str] = []
    joints: list[str] = []
    robot = RandomRobot(xml="", base="", tip="")

    def add_joint(name: str, joint_type: str, parent: str, child: str, mimic: str = "") -> None:
        links.append(f'<link name="{child}"/>')
        body = _origin(rng)
        if joint_type != "fixed":
            body += _axis(rng) + _limit(rng, joint_type) + mimic
        joints.append(
            f'<joint name="{name}" type="{joint_type}"><parent link="{parent}"/>'
            f'<child link="{child}"/>{body}</joint>'
        )

    # Optionally a root above the base, joined by a joint the chain must not include.
    base = "base"
    if rng.random() < 0.4:
        links.append('<link name="root"/>')
        add_joint("root_to_base", rng.choice(OFF_PATH_TYPES), "root", base)
    else:
        links.append(f'<link name="{base}"/>')

    # The main path: movable joints with 0-2 fixed joints before each, and after the last.
    n_movable = rng.randint(2, 8)
    path_links = [base]
    movable: list[str] = []
    side_sources: list[str] = []  # movable joints on side branches built so far
    for i in range(n_movable + 1):
        for k in range(rng.choice((0, 0, 1, 2))):
            child = f"link_{i}_{k}"
            add_joint(f"fixed_{i}_{k}", "fixed", path_links[-1], child)
            path_links.append(child)
        if i == n_movable:
            break
        name, child = f"joint_{i}", f"link_{i}"
        mimic = ""
        if movable and rng.random() < 0.3:
            sources = movable + side_sources if rng.random() < 0.8 or not side_sources else side_sources
            source = rng.choice(sources)
            mimic, multiplier, offset = _mimic(rng, source)
            robot.mimics[name] = (source, multiplier, offset)
        add_joint(name, rng.choice(MOVABLE_TYPES), path_links[-1], child, mimic)
        movable.append(name)
        path_links.append(child)
        # A side branch may start here (its joints can then be mimicked further down).
        if rng.random() < 0.25:
            parent = rng.choice(path_links)
            for k in range(rng.randint(1, 3)):
                branch_name, branch_child = f"side_{i}_{k}", f"side_{i}_{k}_link"
                branch_type = rng.choice(OFF_PATH_TYPES)
                add_joint(branch_name, branch_type, parent, branch_child)
                if branch_type in MOVABLE_TYPES:
                    side_sources.append(branch_name)
                parent = branch_child

    # Something below the tip, so the tip is not a leaf.
    if rng.random() < 0.5:
        add_joint("below_tip", rng.choice(OFF_PATH_TYPES), path_links[-1], "below_tip_link")

    robot.base, robot.tip, robot.path_joints = base, path_links[-1], movable
    body = "\n  ".join(links + joints)
    robot.xml = f'<?xml version="1.0"?>\n<robot name="random">\n  {body}\n</robot>\n'
    return robot
