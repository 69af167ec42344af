"""ikrl: inverse kinematics as reinforcement learning, for any robot arm.

* :func:`load_chain` reads a URDF, xacro or MJCF file into a batched, differentiable :class:`Chain`; any object
  satisfying :class:`KinematicChain` works wherever a chain is taken. :mod:`ikrl.se3` holds
  the SE(3) math and its conventions.
* :func:`solve` finds joint values for many target poses at once (:mod:`ikrl.solver`).
* :func:`make_env` assembles a TorchRL environment from a spec string such as
  ``"dobot_cr5+weighted_pose+sincos"``; its parts come from plugins (:mod:`ikrl.extend.hookspecs`,
  ``@ikrl.hookimpl``).

The layers, from the bottom: ``errors``, ``util``, ``kinematics``, ``spec``; ``solver``,
``extend`` and ``viz`` side by side; ``env``; ``rl``; ``grid``; ``cli`` (CONTRIBUTING.md).
The environment side (torchrl) is imported on first use, so kinematics alone stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ikrl.extend.plugins import hookimpl
from ikrl.kinematics import se3
from ikrl.kinematics.chain import Chain, Joint, Mimic
from ikrl.kinematics.protocol import KinematicChain
from ikrl.kinematics.urdf import load_chain
from ikrl.solver.pool import SolveResult, solve

if TYPE_CHECKING:
    from ikrl.env.ikenv import IKEnv
    from ikrl.env.make import make_env
    from ikrl.spec.grammar import EnvSpec

__all__ = [
    "Chain",
    "EnvSpec",
    "IKEnv",
    "Joint",
    "KinematicChain",
    "Mimic",
    "SolveResult",
    "hookimpl",
    "load_chain",
    "make_env",
    "se3",
    "solve",
]
__version__ = "0.1.0"

_LAZY = {"make_env": "ikrl.env.make", "IKEnv": "ikrl.env.ikenv", "EnvSpec": "ikrl.spec.grammar"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ikrl' has no attribute {name!r}")
