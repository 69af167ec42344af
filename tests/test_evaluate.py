"""Evaluation metrics against hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch

from ikrl import make_env
from ikrl.errors import BadParameterError, ShapeError
from ikrl.kinematics.protocol import into_limits
from ikrl.kinematics.se3 import pose_errors
from ikrl.rl.evaluate import (
    EVAL_SEED,
    TOLERANCES,
    _rank,
    evaluate_policy,
    held_out,
    rollout_policy,
    rows_from_metrics,
    summarize_errors,
)


def test_summary_of_hand_made_errors():
    position = torch.tensor([0.0001, 0.004, 0.004, 0.02, 0.0009])
    rotation = torch.tensor([0.001, 0.01, math.radians(3.0), 0.001, 0.01])
    first = torch.tensor([3, 10, -1, -1, 7])
    m = summarize_errors(position, rotation, first, seconds=0.5)
    # within (5 mm, 2 deg): arms 0, 1, 4; within (1 mm, 1 deg): arms 0, 4
    assert m["success_5mm_2deg"] == pytest.approx(3 / 5)
    assert m["success_1mm_1deg"] == pytest.approx(2 / 5)
    assert m["position_error_median"] == pytest.approx(0.004)
    assert m["rotation_error_median"] == pytest.approx(0.01)
    assert m["position_error_p95"] == pytest.approx(float(torch.quantile(position.double(), 0.95)))
    assert m["mean_steps_to_success"] == pytest.approx((3 + 10 + 7) / 3)
    assert m["solutions_per_second"] == pytest.approx(10.0)


def test_no_success_means_no_mean_steps():
    m = summarize_errors(torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([-1]), seconds=1.0)
    assert m["success_5mm_2deg"] == 0.0 and math.isnan(m["mean_steps_to_success"])
    rows = dict(rows_from_metrics(m | {"targets": 1}))
    assert rows["mean steps to success"] == "n/a"


def test_tolerances_are_the_issue_pairs():
    assert TOLERANCES == {"5mm_2deg": (0.005, math.radians(2.0)), "1mm_1deg": (0.001, math.radians(1.0))}


class Still:
    """A policy that never moves."""

    def __call__(self, observation):
        return torch.zeros(observation.shape[0], 6, dtype=observation.dtype)


def test_a_still_arm_started_on_its_target_succeeds_at_the_first_step():
    env = make_env("dobot_cr5", batch_size=5, seed=0)
    _, target_q = held_out(env.chain, 5, 1)
    target = env.chain.forward_kinematics(target_q)
    final, first, history = rollout_policy(env, Still(), target_q, target, record=True)
    assert history.shape == (env.max_steps + 1, 5, 6)
    assert torch.equal(first, torch.ones(5, dtype=torch.int64))
    assert float(final["position_error"].max()) < 1e-5


def test_a_still_policy_keeps_the_start_errors():
    env = make_env("dobot_cr5", batch_size=20, seed=0)
    evaluation = evaluate_policy(env, Still(), targets=20)
    starts, target_q = held_out(env.chain, 20, 1)
    position, rotation = pose_errors(env.chain.forward_kinematics(starts), env.chain.forward_kinematics(target_q))
    assert torch.allclose(evaluation.position_error, position, atol=1e-6)
    assert torch.allclose(evaluation.rotation_error, rotation, atol=1e-5)
    assert evaluation.metrics()["success_5mm_2deg"] == 0.0 and evaluation.steps == env.max_steps


def test_held_out_targets_are_fixed_and_not_the_training_stream():
    env = make_env("dobot_cr5", batch_size=8, seed=0)
    a = held_out(env.chain, 8, 1)
    b = held_out(env.chain, 8, 1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    trained_on = env.reset()["target"]
    assert not torch.allclose(env.chain.forward_kinematics(a[1]), trained_on)
    assert EVAL_SEED != 0


class Oracle:
    """Moves arm i straight to its answer in one step, but only for arms listed in ``good``."""

    def __init__(self, env, answers, good):
        self.env, self.answers, self.good = env, answers, good

    def __call__(self, observation):
        q = self.env._last[0]
        step = (self.answers - q).clamp(-0.1, 0.1)
        return torch.where(self.good.reshape(-1, 1), step, torch.zeros_like(step))


def test_swarm_keeps_the_best_start_of_each_target():
    targets, swarm = 4, 3
    env = make_env("dobot_cr5", batch_size=targets * swarm, seed=0)
    _, target_q = held_out(env.chain, targets, swarm)
    answers = target_q.repeat_interleave(swarm, 0)
    # Only the last start of targets 0 and 2 reaches its target.
    good = torch.zeros(targets, swarm, dtype=torch.bool)
    good[[0, 2], -1] = True
    evaluation = evaluate_policy(env, Oracle(env, answers, good.flatten()), targets=targets, swarm=swarm)
    solved = (evaluation.position_error < 1e-4).tolist()
    assert solved == [True, False, True, False]
    assert evaluation.metrics()["success_5mm_2deg"] == pytest.approx(0.5)
    assert evaluation.metrics()["swarm"] == 3


def test_refine_polishes_each_kept_answer_with_the_solver():
    targets, swarm = 6, 2
    env = make_env("dobot_cr5", batch_size=targets * swarm, seed=0)
    chain = env.chain
    _, target_q = held_out(chain, targets, swarm)
    target = chain.forward_kinematics(target_q)
    # The first start of each target ends a few centimetres off its answer; the second stays put.
    near = into_limits(chain, target_q + 0.03).repeat_interleave(swarm, 0)
    good = torch.tensor([True, False] * targets)
    plain = evaluate_policy(env, Oracle(env, near, good), targets=targets, swarm=swarm)
    refined = evaluate_policy(env, Oracle(env, near, good), targets=targets, swarm=swarm, refine=True)
    torch.testing.assert_close(plain.answers, into_limits(chain, target_q + 0.03))
    assert plain.metrics()["success_5mm_2deg"] == 0.0
    assert refined.extra["refined"] and refined.extra["policy_success_5mm_2deg"] == 0.0
    assert refined.metrics()["success_1mm_1deg"] == 1.0
    # The reported errors are those of the polished answers, recomputed here.
    position, rotation = pose_errors(chain.forward_kinematics(refined.answers), target)
    torch.testing.assert_close(refined.position_error, position)
    assert float(position.max()) < 1e-3 and float(rotation.max()) < math.radians(1.0)
    assert bool(((refined.answers >= chain.lower) & (refined.answers <= chain.upper)).all())
    assert refined.seconds > 0 and refined.extra["solver_iterations_mean"] > 0


def test_refine_ranks_a_success_above_any_smaller_squared_error():
    mm, deg = 1e-3, math.radians(1.0)
    # within 1 mm, 1 deg | within 5 mm, 2 deg (two, the nearer first) | outside, nearer first
    position = torch.tensor([0.9 * mm, 0.5 * mm, 4.0 * mm, 6.0 * mm, 20.0 * mm])
    rotation = torch.tensor([0.9 * deg, 1.5 * deg, 1.9 * deg, 0.1 * deg, 0.1 * deg])
    rank = _rank(position, rotation)
    assert torch.equal(rank.argsort(), torch.arange(5))


def test_evaluation_checks_its_arguments():
    env = make_env("dobot_cr5", batch_size=3, seed=0)
    with pytest.raises(BadParameterError, match="targets\\*swarm = 4"):
        evaluate_policy(env, Still(), targets=2, swarm=2)
    with pytest.raises(ShapeError, match="q of shape \\(3, 6\\)"):
        env.state_at(torch.zeros(2, 6), torch.eye(4).expand(3, 4, 4))
