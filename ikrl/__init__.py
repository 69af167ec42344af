"""ikrl: inverse kinematics as reinforcement learning, for any robot arm.

* :func:`load_chain` reads a URDF into a batched, differentiable :class:`Chain`;
  :mod:`ikrl.se3` holds the SE(3) math and its conventions.
* :func:`solve` finds joint values for many target poses at once (:mod:`ikrl.solver`).
* :func:`make_env` assembles a TorchRL environment from a spec string such as
  ``"dobot_cr5+weighted_pose+sincos"``; its parts come from plugins (:mod:`ikrl.hookspecs`,
  ``@ikrl.hookimpl``).

The environment side (torchrl) is imported on first use, so kinematics alone stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ikrl.chain import Chain, Joint, Mimic
from ikrl.plugins import hookimpl
from ikrl.solver import SolveResult, solve
from ikrl.urdf import load_chain

if TYPE_CHECKING:
    from ikrl.env import IKEnv
    from ikrl.registry import make_env
    from ikrl.spec import EnvSpec

__all__ = ["Chain", "EnvSpec", "IKEnv", "Joint", "Mimic", "SolveResult", "hookimpl", "load_chain", "make_env", "solve"]
__version__ = "0.1.0"

_LAZY = {"make_env": "ikrl.registry", "IKEnv": "ikrl.env", "EnvSpec": "ikrl.spec"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ikrl' has no attribute {name!r}")
