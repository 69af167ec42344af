"""Whether an algorithm can learn from a spec's reward.

An algorithm that back-propagates through the reward (``apg``, the ``goal`` corrector) sets
``needs_reward_gradient = True`` on its factory; a reward with no gradient (``sparse``, say)
would leave it nothing to follow. The environment's trial finds out which rewards have one
(:attr:`ikrl.IKEnv.reward_differentiable`); this is checked before any training starts.
"""

from __future__ import annotations

from collections.abc import Sequence

from ikrl.errors import BadParameterError

__all__ = ["check_reward_gradient", "needs_reward_gradient"]


def needs_reward_gradient(factory: object) -> bool:
    """Whether the algorithm ``factory`` declares ``needs_reward_gradient = True``."""
    return getattr(factory, "needs_reward_gradient", False) is True


def check_reward_gradient(env: object, algorithm: str, alternatives: Sequence[str] = ()) -> None:
    """Refuse to train ``algorithm`` (one that needs a gradient) on ``env``'s reward if it has none;
    ``alternatives`` are algorithms that do not need one, for the message."""
    if getattr(env, "reward_differentiable", True):
        return
    spec = getattr(env, "resolved_spec", None)
    instead = ", ".join(repr(a) for a in alternatives) or "one that does not back-propagate through rewards"
    raise BadParameterError(
        f"the reward {getattr(env, 'reward_shape', '?')!r}{f' of {str(spec)!r}' if spec else ''} gives no gradient "
        f"(its value does not change smoothly with the joints), and algorithm {algorithm!r} learns by "
        f"back-propagating through the reward. Train with {instead}, or use a reward with a gradient "
        "(weighted_pose, geodesic, position, progress)"
    )
