"""The goal algorithm: goal network, corrector, composed policy, training, checkpoints."""

from __future__ import annotations

import math
import time

import pytest
import torch

import ikrl
from ikrl.errors import BadParameterError, CheckpointError, TrainingError
from ikrl.kinematics.protocol import bounds, random_joints
from ikrl.kinematics.se3 import error_twist, pose_errors
from ikrl.rl.checkpoint import load_checkpoint
from ikrl.rl.goal import Corrector, GoalNet, GoalPolicy, pose_score
from ikrl.rl.goal.corrector import damped_least_squares
from ikrl.rl.goal.heads import angular_joints, heads_loss, wide_joints
from ikrl.rl.policy import act, as_module
from ikrl.rl.rollout import rollout_policy
from ikrl.rl.training.goal import GoalTraining, corrector_columns
from ikrl.rl.training.goal_heads import HeadsTraining
from ikrl.rl.training.run import TrainConfig, train

SPEC = "dobot_cr5+weighted_pose+sincos"


@pytest.fixture(scope="module")
def env():
    return ikrl.make_env(SPEC, batch_size=32, seed=0)


def _policy(env, **options) -> GoalPolicy:
    torch.manual_seed(0)
    return GoalTraining.policy_for(env, hidden=(32, 32), heads=4, goal_width=32, goal_depth=2, **options)


def _best_score(net: GoalNet, chain, targets: torch.Tensor) -> float:
    with torch.no_grad():
        q = net(targets)
        n, k, dof = q.shape
        tip = chain.forward_kinematics(q.reshape(n * k, dof)).view(n, k, 4, 4)
        return float(pose_score(tip, targets.unsqueeze(1)).min(-1).values.median())


# ---------------------------------------------------------------------- goal network


def test_goal_heads_stay_inside_the_joint_box_even_with_huge_outputs(env):
    lower, upper = bounds(env.chain)
    net = GoalNet(lower, upper, heads=3, width=16, depth=1)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1000.0)
    target = env.chain.forward_kinematics(random_joints(env.chain, 64, torch.Generator().manual_seed(1)))
    q = net(target)
    assert q.shape == (64, 3, env.chain.dof)
    assert bool((q >= lower).all() and (q <= upper).all())
    # CR5: joints 1, 2, 4, 5 (+-3.14) and 6 (+-6.28) are angles; joint 3 (+-2.86) is not.
    assert angular_joints(lower, upper).tolist() == [True, True, False, True, True, True]
    assert wide_joints(lower, upper).tolist() == [False] * 5 + [True]


def test_goal_net_refuses_bad_structure():
    with pytest.raises(BadParameterError, match="goal net: heads must be an int >= 1; got 0"):
        GoalNet([-1.0], [1.0], heads=0)
    with pytest.raises(BadParameterError, match="upper > lower"):
        GoalNet([1.0], [-1.0])


def test_goal_net_on_a_tiny_budget_beats_an_untrained_one(env):
    chain = env.chain
    torch.manual_seed(0)
    net = GoalNet.for_chain(chain, heads=4, width=64, depth=2)
    held_out = chain.forward_kinematics(random_joints(chain, 256, torch.Generator().manual_seed(99)))
    before = _best_score(net, chain, held_out)
    heads = HeadsTraining(net, chain, env.sampler, seed=0, lr=3e-3, batch=256)
    for step in range(150):
        heads.step(step / 150)
    after = _best_score(net, chain, held_out)
    assert heads.steps == 150
    assert after < 0.7 * before, (before, after)


def test_heads_loss_is_the_best_heads_pose_score(env):
    chain = env.chain
    net = GoalNet.for_chain(chain, heads=2, width=8, depth=1)
    target = chain.forward_kinematics(random_joints(chain, 5, torch.Generator().manual_seed(3)))
    loss, best = heads_loss(net, chain, target, mean_weight=0.0)
    q = net(target)
    tips = chain.forward_kinematics(q.reshape(10, -1)).view(5, 2, 4, 4)
    expected = pose_score(tips, target.unsqueeze(1)).min(-1).values
    torch.testing.assert_close(best, expected)
    torch.testing.assert_close(loss, expected.mean())


# ---------------------------------------------------------------------- corrector


def test_corrector_action_is_exactly_zero_at_zero_error(env):
    chain = env.chain
    corrector = Corrector(7, env.max_delta, hidden=(16,))
    with torch.no_grad():
        for p in corrector.parameters():
            p.normal_()
    q = random_joints(chain, 16, torch.Generator().manual_seed(0))
    dq = corrector(q, torch.randn(16, 7), torch.zeros(16, 6), chain)
    assert bool((dq == 0).all())
    moved = corrector(q, torch.randn(16, 7), torch.randn(16, 6), chain)
    assert bool((moved.abs() <= env.max_delta + 1e-7).all()) and bool((moved != 0).any())


def test_damped_least_squares_step_reduces_the_error_in_the_tip_frame(env):
    # An independent check of the frame conventions: one small DLS step towards a nearby
    # target must shrink the error twist (a wrong frame would not, in general).
    chain = env.chain.to(dtype=torch.float64)
    generator = torch.Generator().manual_seed(5)
    q = random_joints(chain, 64, generator)
    target = chain.forward_kinematics(q + 0.02 * torch.randn(q.shape, generator=generator, dtype=q.dtype))
    error = error_twist(chain.forward_kinematics(q), target)
    step = (damped_least_squares(chain, q, 1e-3) @ error.unsqueeze(-1)).squeeze(-1)
    after = error_twist(chain.forward_kinematics(q + step), target)
    ratio = after.norm(dim=-1) / error.norm(dim=-1)
    assert float(ratio.median()) < 0.05 and float(ratio.max()) < 0.3
    # The same step with the base-frame Jacobian (the wrong frame) does much worse.
    _, jacobian = chain.forward_kinematics_and_jacobian(q)
    wrong = (torch.linalg.pinv(jacobian) @ error.unsqueeze(-1)).squeeze(-1)
    worse = error_twist(chain.forward_kinematics(q + wrong), target).norm(dim=-1) / error.norm(dim=-1)
    assert float(worse.median()) > 0.2


# ---------------------------------------------------------------------- composed policy


def test_head_selection_picks_the_nearest_head(env):
    policy = _policy(env)
    chain = env.chain
    generator = torch.Generator().manual_seed(2)
    solution = random_joints(chain, 6, generator)
    target = chain.forward_kinematics(solution)
    decoys = random_joints(chain, 6 * 3, generator).view(6, 3, -1)
    slot = torch.tensor([0, 3, 1, 2, 3, 0])
    heads = decoys.clone()
    heads = torch.cat([heads, heads[:, :1]], 1)  # 4 heads
    heads[torch.arange(6), slot] = solution
    policy.heads = lambda _: heads  # type: ignore[method-assign]
    torch.testing.assert_close(policy.best_head(target), solution)


def test_a_joint_with_more_than_two_pi_of_range_is_reached_by_the_nearer_equivalent(env):
    policy = _policy(env)
    goal = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, -2.0]])
    policy.best_head = lambda _: goal  # type: ignore[method-assign]
    q = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 4.0]])  # -2.0 + 2 pi = 4.28 is nearer than -2.0
    aimed = policy.goal_for(q, torch.eye(4).expand(1, 4, 4))
    assert aimed[0, 5].item() == pytest.approx(-2.0 + 2 * math.pi, abs=1e-6)
    torch.testing.assert_close(aimed[0, :5], goal[0, :5])
    # An equivalent outside the limits is not taken: from -5.0, -2.0 - 2 pi = -8.28 is out.
    q[0, 5] = -5.0
    assert policy.goal_for(q, torch.eye(4).expand(1, 4, 4))[0, 5].item() == pytest.approx(-2.0)


def test_composed_policy_never_leaves_the_joint_box(env):
    policy = _policy(env).eval()
    lower, upper = bounds(env.chain)
    generator = torch.Generator().manual_seed(4)
    q = random_joints(env.chain, 32, generator)
    target = env.chain.forward_kinematics(random_joints(env.chain, 32, generator))
    td = env.state_at(q, target)
    with torch.no_grad():
        for _ in range(60):
            action = act(policy, td)
            assert bool((action.abs() <= env.max_delta + 1e-6).all())
            goal = policy.goal_for(td["q"], td["target"])
            approaching = ((goal - td["q"]).abs().amax(-1) > policy.switch).unsqueeze(-1)
            # Along the straight path to the goal, q + action never leaves the box.
            moved = td["q"] + action
            inside = (moved >= lower - 1e-6) & (moved <= upper + 1e-6)
            assert bool((inside | ~approaching).all())
            td["action"] = action
            td = env.step(td)["next"]
            assert bool((td["q"] >= lower).all() and (td["q"] <= upper).all())


def test_an_arm_on_target_does_not_move(env):
    policy = _policy(env).eval()
    q = random_joints(env.chain, 32, torch.Generator().manual_seed(6))
    td = env.state_at(q, env.chain.forward_kinematics(q))
    with torch.no_grad():
        assert bool((act(policy, td) == 0).all())


def test_goal_policy_runs_in_a_torchrl_rollout(env):
    policy = _policy(env).eval()
    with torch.no_grad():
        rollout = env.rollout(4, as_module(policy))
    assert rollout.batch_size == torch.Size([32, 4])


def test_goal_policy_refuses_inconsistent_parts(env):
    policy = _policy(env)
    with pytest.raises(BadParameterError, match="feature_columns must be"):
        GoalPolicy(policy.goal, policy.corrector, env.chain, (0, 1), 27)


def test_corrector_sees_the_observation_without_its_error_columns(env):
    # target (9) + error (6) + sincos (12): the error columns 9..14 are left out.
    assert corrector_columns(env) == tuple(range(9)) + tuple(range(15, 27))


# ---------------------------------------------------------------------- training


def test_goal_training_in_steps_is_deterministic_and_checkpoints_round_trip(tmp_path):
    config = TrainConfig(steps=3 * 64 * 8, batch_size=64, eval_targets=32, params={"heads": 2, "goal_width": 32, "goal_depth": 1}, hidden=(32,))
    first = train(SPEC, config, tmp_path / "a", progress=False, logger="none")
    second = train(SPEC, config, tmp_path / "b", progress=False, logger="none")
    timing = ("solutions_per_second", "mean_steps_to_success")  # wall time; NaN when none succeeded
    assert {k: v for k, v in first.evaluation.items() if k not in timing} == {k: v for k, v in second.evaluation.items() if k not in timing}
    checkpoint = load_checkpoint(first.checkpoint)
    assert checkpoint.algorithm == "goal" and checkpoint.policy_kind == "goal"
    policy = checkpoint.policy()
    assert isinstance(policy, GoalPolicy) and policy.goal.heads == 2
    env = checkpoint.make_env(batch_size=16, seed=1)
    q = random_joints(env.chain, 16, torch.Generator().manual_seed(8))
    target = env.chain.forward_kinematics(random_joints(env.chain, 16, torch.Generator().manual_seed(9)))
    again = load_checkpoint(first.checkpoint).policy()
    a, _, _ = rollout_policy(env, policy, q, target)
    b, _, _ = rollout_policy(env, again, q, target)
    torch.testing.assert_close(a["q"], b["q"], rtol=0, atol=0)
    record = (tmp_path / "a" / "eval.json").read_text()
    assert '"goal_steps": 8' in record and '"corrector_updates": 8' in record


def test_goal_training_resumes_on_budget(tmp_path):
    small = {"heads": 2, "goal_width": 16, "goal_depth": 1}
    half = TrainConfig(steps=3 * 32 * 4, batch_size=32, eval_targets=16, params=small, hidden=(16,))
    train(SPEC, half, tmp_path, progress=False, logger="none")
    result = train(SPEC, half.replace(steps=3 * 32 * 10), tmp_path, resume=tmp_path, progress=False, logger="none")
    assert result.steps == 3 * 32 * 10
    assert load_checkpoint(tmp_path).progress["goal_steps"] == 10


def test_cpu_time_budgets_stop_on_time_and_the_worker_gets_as_much(tmp_path):
    config = TrainConfig(minutes=0.05, batch_size=32, eval_targets=16, params={"heads": 2, "goal_width": 16, "goal_depth": 1}, hidden=(16,))
    started = time.process_time()
    result = train(SPEC, config, tmp_path, progress=False, logger="none")
    assert 3.0 <= result.train_seconds < 4.0
    assert time.process_time() - started >= 3.0  # the budget is this process's CPU time
    extra = load_checkpoint(result.checkpoint).progress
    assert extra["goal_parallel"] == 1.0
    assert 3.0 <= extra["goal_seconds"] < 4.0
    assert extra["goal_steps"] > 0


@pytest.mark.slow
def test_a_parallel_run_resumes_with_its_goal_network_where_it_stopped(tmp_path):
    small = {"heads": 2, "goal_width": 16, "goal_depth": 1}
    config = TrainConfig(minutes=0.03, batch_size=32, eval_targets=16, params=small, hidden=(16,))
    train(SPEC, config, tmp_path, progress=False, logger="none")
    before = load_checkpoint(tmp_path).progress
    result = train(SPEC, config.replace(minutes=0.06), tmp_path, resume=tmp_path, progress=False, logger="none")
    after = load_checkpoint(result.checkpoint).progress
    assert 3.6 <= result.train_seconds < 4.6 and 3.6 <= after["goal_seconds"] < 4.6
    assert after["goal_steps"] > before["goal_steps"] > 0


def test_a_budget_with_steps_keeps_the_goal_network_in_this_process(tmp_path):
    config = TrainConfig(minutes=5, steps=3 * 16 * 3, batch_size=16, eval_targets=8, params={"heads": 1, "goal_width": 8, "goal_depth": 1}, hidden=(8,))
    assert config.processes == 1
    result = train(SPEC, config, tmp_path, progress=False, logger="none")
    progress = load_checkpoint(result.checkpoint).progress
    assert progress["goal_parallel"] == 0.0 and progress["goal_steps"] == 3 and result.train_seconds < 60


def test_a_failed_worker_is_a_training_error_with_its_log(tmp_path, monkeypatch):
    import ikrl.rl.training.goal as goal

    monkeypatch.setattr(goal.sys, "executable", "/bin/false")
    config = TrainConfig(minutes=0.02, batch_size=16, eval_targets=8, params={"heads": 1, "goal_width": 8, "goal_depth": 1}, hidden=(8,))
    with pytest.raises(TrainingError, match=r"worker process failed \(exit code 1\).*'parallel': False"):
        train(SPEC, config, tmp_path, progress=False, logger="none")


def test_goal_training_refuses_bad_parameters(env):
    with pytest.raises(BadParameterError, match="goal: lr must be a positive number; got 0"):
        GoalTraining(env, _policy(env), lr=0)
    with pytest.raises(TrainingError, match="start_noise must be"):
        GoalTraining(env, _policy(env), start_noise=(0.5, 0.1))
    with pytest.raises(TrainingError, match="trains a GoalPolicy"):
        GoalTraining(env, torch.nn.Linear(1, 1))  # type: ignore[arg-type]


def test_a_checkpoint_of_an_unknown_policy_kind_is_refused(tmp_path):
    config = TrainConfig(steps=3 * 16, batch_size=16, eval_targets=8, params={"heads": 1, "goal_width": 8, "goal_depth": 1}, hidden=(8,))
    result = train(SPEC, config, tmp_path, progress=False, logger="none")
    checkpoint = load_checkpoint(result.checkpoint)
    checkpoint.policy_kind = "transformer"
    with pytest.raises(CheckpointError, match="policy of kind 'transformer'; this ikrl knows goal, mlp"):
        checkpoint.policy()


def test_goal_seeds_are_heads_not_a_rollout(tmp_path):
    from ikrl.rl.warmstart import policy_starts

    config = TrainConfig(steps=3 * 16 * 4, batch_size=16, eval_targets=8, params={"heads": 2, "goal_width": 16, "goal_depth": 1}, hidden=(16,))
    result = train(SPEC, config, tmp_path, progress=False, logger="none")
    checkpoint = load_checkpoint(result.checkpoint)
    env = checkpoint.make_env(batch_size=4)
    targets = env.chain.forward_kinematics(random_joints(env.chain, 4, torch.Generator().manual_seed(1)))
    policy = checkpoint.policy(chain=env.chain)
    starts = policy_starts(checkpoint, env.chain, targets, torch.zeros(4, env.chain.dof))
    assert starts.shape == (4, 2, env.chain.dof)
    torch.testing.assert_close(starts[:, 0], policy.best_head(targets))
    position, rotation = pose_errors(env.chain.forward_kinematics(starts.reshape(8, -1)), targets.repeat_interleave(2, 0))
    score = (position / 0.005 + rotation / math.radians(2)).view(4, 2)
    assert bool((score[:, 0] <= score[:, 1]).all())  # nearest first
    result = ikrl.solve(env.chain, targets, warm_start=lambda q: policy_starts(checkpoint, env.chain, targets, q))
    assert bool(result.success.all())
    assert checkpoint.shared_policy("cpu", env.chain) is checkpoint.shared_policy("cpu", env.chain)  # built once


def test_the_goal_worker_ends_when_its_trainer_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from tests.grid_helpers import children, running, wait_for

    script = (
        "from ikrl.rl.training.run import TrainConfig, train\n"
        f"train({SPEC!r}, TrainConfig(minutes=2, batch_size=16, eval_targets=4, hidden=(8,), "
        "params={'heads': 1, 'goal_width': 8, 'goal_depth': 1}), "
        f"{str(tmp_path / 'run')!r}, progress=False, logger='none')\n"
    )
    trainer = subprocess.Popen([sys.executable, "-c", script], cwd=os.getcwd())
    try:
        def workers() -> list[int]:
            found = []
            for pid in children(trainer.pid):  # other short-lived children may come and go
                try:
                    if "ikrl.rl.training.goal_heads" in open(f"/proc/{pid}/cmdline").read():
                        found.append(pid)
                except OSError:
                    pass
            return found

        wait_for(lambda: bool(workers()), timeout=120, what="the goal network's worker to start")
        (worker,) = workers()
        os.kill(trainer.pid, signal.SIGKILL)
        trainer.wait(timeout=30)
        wait_for(lambda: not running(worker), timeout=30, what="the worker to end with its trainer")
    finally:
        if trainer.poll() is None:
            trainer.kill()
