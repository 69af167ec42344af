"""The goal network: a target pose in, ``K`` candidate joint configurations out.

Inverse kinematics has several answers per pose (elbow up or down, wrist flipped...), so a
network that outputs one configuration averages between them and lands on none. The goal
network outputs ``K`` "heads" and is trained winner-takes-all: each target's loss is that of
its best head, so heads specialise on branches. A small loss on the mean over heads, decaying
to zero, keeps every head alive early on.

Each head lies inside the joint box by construction: a joint whose range is about 2 pi or more
is ``atan2`` of two outputs (an angle has no seam that way), then clamped into its limits; any
other joint is ``lower + (upper - lower) * sigmoid(output)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ikrl.errors import BadParameterError
from ikrl.kinematics.se3 import pose_errors
from ikrl.rl.policy import mlp_parameters
from ikrl.util.checks import check_int
from ikrl.util.metrics import TOLERANCES

__all__ = ["GoalNet", "angular_joints", "heads_loss", "pose_score", "wide_joints"]

#: A joint whose range is at least 2 pi minus this is an angle with no seam (the CR5's
#: limits are +-3.14, a little under pi).
ANGULAR_SLACK = 0.05


def angular_joints(lower: Tensor, upper: Tensor) -> Tensor:
    """``[dof]`` bool: joints with about 2 pi of range or more (the goal net outputs them as
    ``atan2`` of two numbers)."""
    return (upper - lower) >= 2 * math.pi - ANGULAR_SLACK


def wide_joints(lower: Tensor, upper: Tensor) -> Tensor:
    """``[dof]`` bool: joints with more than 2 pi of range, whose values have 2 pi-equivalents
    inside the limits."""
    return (upper - lower) > 2 * math.pi + 1e-3


def pose_score(tip: Tensor, target: Tensor) -> Tensor:
    """How far poses ``[..., 4, 4]`` are from targets (broadcast), in the success test's units:
    position / 5 mm + rotation / 2 degrees, ``[...]``. Lower is better; differentiable.

    >>> import torch
    >>> from ikrl.kinematics.se3 import se3_exp
    >>> target = torch.eye(4).expand(1, 4, 4)
    >>> tip = se3_exp(torch.tensor([[0.005, 0.0, 0.0, 0.0, 0.0, 0.0]]))  # 5 mm off
    >>> round(float(pose_score(tip, target)), 4)
    1.0
    """
    position, rotation = pose_errors(tip, target)
    pos_tol, rot_tol = TOLERANCES["5mm_2deg"]
    return position / pos_tol + rotation / rot_tol


class GoalNet(nn.Module):
    """``forward(target [N, 4, 4]) -> q [N, K, dof]``, every head inside the joint box.

    The input is the target's position, standardised by ``position_mean`` and
    ``position_std`` (metres, base frame, statistics of reachable poses), and its rotation
    matrix's nine entries.

    Args:
        lower, upper: ``[dof]`` joint limits (radians or metres); see :func:`ikrl.kinematics.bounds`.
        position_mean, position_std: ``[3]`` statistics of target positions.
        heads: ``K``, candidate configurations per target.
        width, depth: the MLP's hidden layers (SiLU).
    """

    lower: Tensor
    upper: Tensor
    position_mean: Tensor
    position_std: Tensor
    angular: Tensor
    _order: Tensor

    def __init__(
        self,
        lower: Tensor | Sequence[float],
        upper: Tensor | Sequence[float],
        position_mean: Tensor | Sequence[float] = (0.0, 0.0, 0.0),
        position_std: Tensor | Sequence[float] = (1.0, 1.0, 1.0),
        *,
        heads: int = 8,
        width: int = 256,
        depth: int = 4,
    ) -> None:
        super().__init__()
        lower = torch.as_tensor(lower, dtype=torch.float32).flatten().clone()
        upper = torch.as_tensor(upper, dtype=torch.float32).flatten().clone()
        if lower.shape != upper.shape or lower.numel() < 1 or not bool((upper > lower).all()):
            raise BadParameterError(f"goal net: lower and upper must be [dof] with upper > lower; got {lower.tolist()} and {upper.tolist()}")
        if not bool(torch.isfinite(lower).all() & torch.isfinite(upper).all()):
            raise BadParameterError("goal net: joint bounds must be finite (use kinematics.bounds(chain))")
        for name, value in (("heads", heads), ("width", width), ("depth", depth)):
            check_int("goal net", name, value, low=1)
        self.dof, self.heads, self.width, self.depth = lower.numel(), heads, width, depth
        angular = angular_joints(lower, upper)
        self.register_buffer("lower", lower)
        self.register_buffer("upper", upper)
        self.register_buffer("position_mean", torch.as_tensor(position_mean, dtype=torch.float32).clone())
        self.register_buffer("position_std", torch.as_tensor(position_std, dtype=torch.float32).clone())
        self.register_buffer("angular", angular)
        self.n_angular = int(angular.sum())
        self.per_head = 2 * self.n_angular + (self.dof - self.n_angular)
        # Outputs come as [angles..., others...]; this index puts them back in joint order.
        ordered = torch.cat([torch.nonzero(angular).flatten(), torch.nonzero(~angular).flatten()])
        self.register_buffer("_order", torch.argsort(ordered), persistent=False)
        layers: list[nn.Module] = []
        size = 12
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.SiLU()]
            size = width
        layers.append(nn.Linear(size, heads * self.per_head))
        self.net = nn.Sequential(*layers)

    @classmethod
    def for_chain(cls, chain, *, seed: int = 0, samples: int = 8192, **options) -> GoalNet:
        """A net for ``chain``, its position statistics from ``samples`` random reachable poses."""
        from ikrl.kinematics.protocol import bounds, random_joints

        generator = torch.Generator(device=chain.device).manual_seed(seed)
        with torch.no_grad():
            position = chain.forward_kinematics(random_joints(chain, samples, generator))[:, :3, 3].float().cpu()
        lower, upper = bounds(chain)
        return cls(lower.cpu(), upper.cpu(), position.mean(0), position.std(0).clamp(min=1e-6), **options)

    def forward(self, target: Tensor) -> Tensor:
        dtype = self.lower.dtype
        position = (target[..., :3, 3].to(dtype) - self.position_mean) / self.position_std
        features = torch.cat([position, target[..., :3, :3].flatten(-2).to(dtype)], -1)
        out = self.net(features).unflatten(-1, (self.heads, self.per_head))
        pairs = out[..., : 2 * self.n_angular].unflatten(-1, (self.n_angular, 2))
        angles = torch.atan2(pairs[..., 0], pairs[..., 1])
        lower, upper = self.lower[~self.angular], self.upper[~self.angular]
        others = lower + (upper - lower) * torch.sigmoid(out[..., 2 * self.n_angular :])
        q = torch.cat([angles, others], -1)[..., self._order]
        return torch.maximum(torch.minimum(q, self.upper), self.lower)

    @staticmethod
    def parameter_count(config: dict) -> int:
        """The parameters a net of ``config`` has, counted without building it."""
        lower = torch.as_tensor(config["lower"], dtype=torch.float32).flatten()
        upper = torch.as_tensor(config["upper"], dtype=torch.float32).flatten()
        if lower.shape != upper.shape:
            raise ValueError(f"lower and upper have {lower.numel()} and {upper.numel()} joints")
        per_head = lower.numel() + int(angular_joints(lower, upper).sum())
        depth, width = int(config.get("depth", 4)), int(config.get("width", 256))
        return mlp_parameters([12, *[width] * depth, int(config.get("heads", 8)) * per_head])

    def config(self) -> dict:
        """What rebuilds this net's structure: ``GoalNet(**net.config())`` (then its state)."""
        return {
            "lower": [float(x) for x in self.lower.tolist()],
            "upper": [float(x) for x in self.upper.tolist()],
            "heads": self.heads,
            "width": self.width,
            "depth": self.depth,
        }

    def extra_repr(self) -> str:
        return f"dof={self.dof}, heads={self.heads}, width={self.width}, depth={self.depth}"


def heads_loss(net: GoalNet, chain, target: Tensor, mean_weight: float) -> tuple[Tensor, Tensor]:
    """The training loss of ``net`` on target poses ``[B, 4, 4]``: ``mean_b(min_k l + w mean_k l)``
    with ``l = pose_score(FK(head), target)``; also returns each target's best ``l`` ``[B]``."""
    q = net(target)
    batch, heads = q.shape[:2]
    tip = chain.forward_kinematics(q.reshape(batch * heads, -1).to(chain.dtype)).view(batch, heads, 4, 4)
    loss = pose_score(tip, target.unsqueeze(1))
    best = loss.min(-1).values
    return best.mean() + mean_weight * loss.mean(), best.detach()
