"""ikrl's own reward shapes: weighted pose error, SE(3) distance, position, sparse, progress.

Each shape maps the pose error before and after a step (and whether the step succeeded)
to a reward ``[N]`` in the errors' dtype and device. All but ``sparse`` are differentiable
functions of the errors with finite gradients everywhere, zero error included, so a policy
can be trained by back-propagating through them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ikrl.errors import BadParameterError
from ikrl.extend.components import PoseError, RewardShape
from ikrl.extend.plugins import hookimpl
from ikrl.util.checks import check_number, is_finite_number

__all__ = ["MAX_BONUS", "Geodesic", "Position", "Progress", "Sparse", "WeightedPose", "ikrl_rewards", "se3_distance"]

#: The largest ``sparse`` bonus: float32's largest finite value, about 3.4e38.
MAX_BONUS = float(torch.finfo(torch.float32).max)


def se3_distance(error: PoseError, rotation_weight: float) -> Tensor:
    """``sqrt(position^2 + (rotation_weight * rotation)^2)`` ``[N]``, metres.

    ``rotation_weight`` is in metres per radian. The square root is taken only where its
    argument is positive, so the gradient at exactly zero error is 0, not NaN.
    """
    squared = error.position * error.position + (rotation_weight * error.rotation) ** 2
    positive = squared > 0
    safe = torch.where(positive, squared, torch.ones_like(squared))
    return torch.where(positive, torch.sqrt(safe), torch.zeros_like(squared))


class WeightedPose:
    """``-sum_i w_i |twist_i|`` of the error after the step (the reference notebook's reward).

    The twist is in the tip frame, translation (metres) then rotation (radians), so
    ``w`` weighs metres against radians.
    """

    name = "weighted_pose"

    def __init__(self, *, w: tuple[float, ...] = (1, 1, 1, 0.2, 0.2, 0.2)) -> None:
        """``w``: 6 weights >= 0, translation x, y, z (per metre) then rotation x, y, z (per radian)."""
        if not (isinstance(w, tuple | list) and len(w) == 6 and all(is_finite_number(x) and x >= 0 for x in w)):
            raise BadParameterError(
                f"{self.name}: w must be 6 non-negative numbers "
                f"(translation x, y, z then rotation x, y, z); got {w!r}"
            )
        self.w = tuple(float(x) for x in w)
        #: ``-w`` as a tensor, per (dtype, device): made once rather than at every step.
        self._minus_w: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def __call__(self, before: PoseError, after: PoseError, success: Tensor) -> Tensor:
        twist = after.twist
        key = (twist.dtype, twist.device)
        minus_w = self._minus_w.get(key)
        if minus_w is None:
            minus_w = self._minus_w[key] = -torch.tensor(self.w, dtype=twist.dtype, device=twist.device)
        # |x| has gradient sign(x), 0 at 0: finite everywhere. A product with the weights
        # rather than a multiply and a sum over the last axis: one pass, not three.
        return twist.abs() @ minus_w

    def __repr__(self) -> str:
        return f"{self.name}(w={self.w})"


class Geodesic:
    """Minus the SE(3) distance of the error after the step, metres (see :func:`se3_distance`)."""

    name = "geodesic"

    def __init__(self, *, rotation_weight: float = 0.2) -> None:
        """``rotation_weight``: metres per radian of rotation error, >= 0."""
        self.rotation_weight = check_number(
            self.name, "rotation_weight", rotation_weight, low=0.0,
            accepted="a finite number >= 0 (metres per radian)",
        )  # fmt: skip

    def __call__(self, before: PoseError, after: PoseError, success: Tensor) -> Tensor:
        return -se3_distance(after, self.rotation_weight)

    def __repr__(self) -> str:
        return f"{self.name}(rotation_weight={self.rotation_weight})"


class Position:
    """Minus the position error after the step, metres; ignores orientation."""

    name = "position"

    def __call__(self, before: PoseError, after: PoseError, success: Tensor) -> Tensor:
        return -after.position

    def __repr__(self) -> str:
        return f"{self.name}()"


class Sparse:
    """``bonus`` where the step succeeded, else 0 (in the errors' dtype); no gradient."""

    name = "sparse"

    def __init__(self, *, bonus: float = 1.0) -> None:
        """``bonus``: the reward for a successful step, a finite number that a float32 reward
        holds (magnitude at most :data:`MAX_BONUS`)."""
        self.bonus = check_number(
            self.name, "bonus", bonus, low=-MAX_BONUS, high=MAX_BONUS,
            accepted=f"a finite number from {-MAX_BONUS:g} to {MAX_BONUS:g} (a float32 reward holds it)",
        )  # fmt: skip

    def __call__(self, before: PoseError, after: PoseError, success: Tensor) -> Tensor:
        position = after.position
        return torch.where(success, position.new_full((), self.bonus), position.new_zeros(()))

    def __repr__(self) -> str:
        return f"{self.name}(bonus={self.bonus})"


class Progress:
    """Potential-based shaping ``gamma * Phi(after) - Phi(before)`` with ``Phi = -distance``.

    The distance is :func:`se3_distance` (metres). Shaping with a potential leaves the
    optimal policy unchanged (Ng et al. 1999). With ``gamma < 1`` a step that keeps a
    nonzero error earns ``(1 - gamma) * distance`` > 0; a step is penalised only when the
    distance grows by more than the factor ``1 / gamma``.
    """

    name = "progress"

    def __init__(self, *, gamma: float = 0.99, rotation_weight: float = 0.2) -> None:
        """``gamma``: the discount, in (0, 1]; ``rotation_weight``: metres per radian, >= 0."""
        self.gamma = check_number(
            self.name, "gamma", gamma, low=0.0, low_open=True, high=1.0, accepted="a number in (0, 1]"
        )
        self.rotation_weight = check_number(
            self.name, "rotation_weight", rotation_weight, low=0.0,
            accepted="a finite number >= 0 (metres per radian)",
        )  # fmt: skip

    def __call__(self, before: PoseError, after: PoseError, success: Tensor) -> Tensor:
        weight = self.rotation_weight
        return se3_distance(before, weight) - self.gamma * se3_distance(after, weight)

    def __repr__(self) -> str:
        return f"{self.name}(gamma={self.gamma}, rotation_weight={self.rotation_weight})"


_SHAPES = (WeightedPose, Geodesic, Position, Sparse, Progress)


@hookimpl
def ikrl_rewards() -> dict[str, Callable[..., RewardShape]]:
    """ikrl's reward shapes, by name."""
    return {shape.name: shape for shape in _SHAPES}
