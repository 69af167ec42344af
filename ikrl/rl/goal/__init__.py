"""Learned inverse kinematics in two parts: a goal network and a local corrector.

* :class:`~ikrl.rl.goal.heads.GoalNet` maps a target pose to ``K`` candidate joint
  configurations ("heads"), each inside the joint box. It is trained self-supervised through
  the differentiable chain: no labels, no rollouts.
* :class:`~ikrl.rl.goal.corrector.Corrector` is a local controller ``dq = A(q) e``, linear in
  the error twist ``e`` (zero error, zero motion), its gain damped least squares plus a
  learned residual. It is trained with analytic policy gradients on the spec's reward.
* :class:`~ikrl.rl.goal.policy.GoalPolicy` composes them: drive straight to the head nearest
  the target (the joint box is convex, so the straight path stays inside it), then let the
  corrector finish.

:mod:`ikrl.rl.training.goal` trains both parts (the ``goal`` algorithm, ikrl's default).
"""

from ikrl.rl.goal.corrector import Corrector
from ikrl.rl.goal.heads import GoalNet, pose_score
from ikrl.rl.goal.policy import GoalPolicy

__all__ = ["Corrector", "GoalNet", "GoalPolicy", "pose_score"]
