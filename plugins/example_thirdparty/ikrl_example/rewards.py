"""A reward shape: minus the log of the distance to the target."""

from __future__ import annotations

import torch

from ikrl.errors import BadParameterError
from ikrl.extend.components import PoseError


class LogDistance:
    """Minus the log of the SE(3) distance to the target: steep close to it.

    Differentiable in the pose error, so gradient-based training (apg, goal) can use it.
    """

    def __init__(self, *, scale: float = 0.01, rotation_weight: float = 0.2) -> None:
        if not scale > 0:
            raise BadParameterError(f"log_distance: scale must be a positive distance in metres; got {scale!r}")
        self.scale = scale
        self.rotation_weight = rotation_weight

    def __call__(self, before: PoseError, after: PoseError, success: torch.Tensor) -> torch.Tensor:
        distance = torch.hypot(after.position, self.rotation_weight * after.rotation)
        return -torch.log1p(distance / self.scale)
