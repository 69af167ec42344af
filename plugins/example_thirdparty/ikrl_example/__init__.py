"""An example third-party ikrl plugin: one robot and one reward shape."""

from __future__ import annotations

from pathlib import Path

import torch

import ikrl
from ikrl.errors import BadParameterError
from ikrl.extend.components import PoseError

URDF = Path(__file__).with_name("toy_arm.urdf")


@ikrl.hookimpl
def ikrl_robots():
    # A URDF robot is one line: a factory around ikrl.load_chain.
    return {"toy_arm": lambda: ikrl.load_chain(URDF, base="base", tip="tool")}


class LogDistance:
    """Minus the log of the SE(3) distance to the target: steep close to it."""

    def __init__(self, *, scale: float = 0.01, rotation_weight: float = 0.2) -> None:
        if not scale > 0:
            raise BadParameterError(f"log_distance: scale must be a positive distance in metres; got {scale!r}")
        self.scale = scale
        self.rotation_weight = rotation_weight

    def __call__(self, before: PoseError, after: PoseError, success: torch.Tensor) -> torch.Tensor:
        distance = torch.hypot(after.position, self.rotation_weight * after.rotation)
        return -torch.log1p(distance / self.scale)


@ikrl.hookimpl
def ikrl_rewards():
    return {"log_distance": LogDistance}
