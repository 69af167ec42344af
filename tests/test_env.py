"""The environment: TorchRL spec checks for every combination, semantics, resets, seeding,
differentiability, collectors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs.utils import check_env_specs, step_mdp

import ikrl
from ikrl import make_env
from ikrl.errors import BadParameterError, SpecError, UnknownNameError
from ikrl.extend.registry import default_registry, reset_default_registry
from ikrl.kinematics.se3 import error_twist, pose_errors

reset_default_registry()
_REGISTRY = default_registry()  # the installed plugins, for parametrisation at collection time
# ikrl's own robots: the zoo's get the same checks in tests/test_zoo.py.
ROBOTS = sorted(c.name for c in _REGISTRY.components("robot") if c.distribution == "ikrl")
REWARDS = _REGISTRY.names("reward")
SAMPLERS = _REGISTRY.names("sampler")
TRANSFORMS = _REGISTRY.names("transform")


@pytest.fixture(scope="module")
def target_files(tmp_path_factory):
    """A file of target joint values per robot, for the ``fixed`` sampler."""
    folder = tmp_path_factory.mktemp("targets")
    files = {}
    for robot in ROBOTS:
        chain = _REGISTRY.robot(robot).build({})
        low = torch.where(chain.continuous, -math.pi, chain.lower)
        high = torch.where(chain.continuous, math.pi, chain.upper)
        rows = low + (high - low) * torch.rand(20, chain.dof, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        files[robot] = folder / f"{robot}.pt"
        torch.save(rows, files[robot])
    return files


def _spec(robot, reward, sampler, transform, target_files) -> str:
    part = f"fixed(file='{target_files[robot]}')" if sampler == "fixed" else sampler
    return f"{robot}+{reward}+{part}+{transform}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("robot, reward, sampler, transform", list(itertools.product(ROBOTS, REWARDS, SAMPLERS, TRANSFORMS)))
def test_check_env_specs_for_every_registered_combination(robot, reward, sampler, transform, dtype, target_files):
    env = make_env(_spec(robot, reward, sampler, transform, target_files), batch_size=3, dtype=dtype, seed=0, max_steps=4)
    check_env_specs(env, seed=0)
    rollout = env.rollout(6, break_when_any_done=False)
    assert rollout["next", "reward"].dtype == dtype
    assert torch.isfinite(rollout["next", "reward"]).all()
    assert torch.isfinite(rollout["observation"]).all()


def test_the_one_line():
    env = make_env("dobot_cr5+weighted_pose+sincos")
    assert isinstance(env, ikrl.IKEnv)
    assert str(env.resolved_spec) == "dobot_cr5+weighted_pose+uniform+target+error+sincos"
    assert env.batch_size == torch.Size([64])
    # target (3 + 6), error twist (6), then sin and cos of 6 joints
    assert env.observation_spec["observation"].shape == (64, 9 + 6 + 12)


def test_the_resolved_spec_builds_the_same_environment():
    env = make_env("panda+sincos+near_target(noise=0.1)", batch_size=4, seed=3)
    again = make_env(str(env.resolved_spec), batch_size=4, seed=3)
    assert again.resolved_spec == env.resolved_spec
    assert torch.equal(env.reset()["observation"], again.reset()["observation"])


def test_observation_rule_adds_joints_and_target_only_when_missing():
    assert str(make_env("ur5e", batch_size=1).resolved_spec) == "ur5e+weighted_pose+uniform+raw+target+error"
    assert str(make_env("ur5e+error+normalize", batch_size=1).resolved_spec) == "ur5e+weighted_pose+uniform+error+normalize"
    assert str(make_env("ur5e+sincos", batch_size=1).resolved_spec) == "ur5e+weighted_pose+uniform+target+error+sincos"


def test_semantics_of_a_step():
    env = make_env("dobot_cr5+position+raw+target", batch_size=5, seed=1, max_delta=0.1)
    td = env.reset()
    q0 = td["q"].clone()
    td["action"] = torch.tensor([[10.0, -10.0, 0.05, 0.0, 0.0, 0.0]]).expand(5, 6)
    out = env.step(td)["next"]
    # Deltas are clamped to max_delta, and joints stay within limits.
    expected = torch.clamp(q0 + torch.tensor([0.1, -0.1, 0.05, 0, 0, 0]), env.chain.lower, env.chain.upper)
    torch.testing.assert_close(out["q"], expected)
    # Errors and reward come from forward kinematics of the new joints, computed here independently.
    tip = env.chain.forward_kinematics(out["q"])
    position, rotation = pose_errors(tip, out["target"])
    torch.testing.assert_close(out["position_error"].squeeze(-1), position)
    torch.testing.assert_close(out["rotation_error"].squeeze(-1), rotation)
    torch.testing.assert_close(out["error"], error_twist(tip, out["target"]))
    torch.testing.assert_close(out["reward"].squeeze(-1), -position)
    assert out["step_count"].tolist() == [[1]] * 5
    # The observation is the raw joints, then the target's position and first two rotation columns.
    target = out["target"]
    features = torch.cat([out["q"], target[:, :3, 3], target[:, :3, 0], target[:, :3, 1]], -1)
    torch.testing.assert_close(out["observation"], features)


def test_steps_are_packed_as_torchrl_packs_its_own_and_stay_valid():
    # tensordict's unchecked constructor, as TorchRL's GymLikeEnv uses: if an upgrade drops it
    # the environment falls back to TensorDict(...) and this test says so.
    from tensordict import TensorDict

    from ikrl.env import ikenv

    assert ikenv._PACK == TensorDict._new_unsafe
    env = make_env("dobot_cr5+weighted_pose+sincos", batch_size=5, seed=1)
    out = env.rand_step(env.reset())
    assert out["next"].batch_size == torch.Size([5]) and out["next"].device == env.device
    check_env_specs(env, seed=0)


def test_the_sincos_block_is_sin_and_cos_of_the_joints_shared_with_the_kinematics():
    # An ikrl Chain hands the env its pass's own sin q and cos q: the same numbers sincos would compute.
    env = make_env("dobot_cr5+weighted_pose+sincos", batch_size=300, seed=4)
    assert env._shares_trig
    td = env.reset()
    td["action"] = 0.05 * torch.ones(300, 6)
    for out in (td, env.step(td)["next"]):
        target, q = out["target"], out["q"]
        blocks = [target[:, :3, 3], target[:, :3, 0], target[:, :3, 1], out["error"], torch.sin(q), torch.cos(q)]
        assert torch.equal(out["observation"], torch.cat(blocks, -1))


def test_a_step_is_the_same_with_and_without_a_gradient_to_carry():
    # Without a gradient the joints move and the error is computed by compiled passes; with
    # one, by torch: the same float operations for the joints, the same formulas for the error.
    env = make_env("dobot_cr5+weighted_pose+sincos", batch_size=300, seed=2, max_delta=0.2)
    td = env.reset()
    # Arms 0-49 sit on their targets and stay (terminated); arms 50-99 take their last step (truncated).
    target = td["target"].clone()
    target[:50] = env.chain.forward_kinematics(td["q"][:50])
    step_count = td["step_count"].clone()
    step_count[50:100] = env.max_steps - 1
    td = env.state_at(td["q"], target, step_count=step_count)
    td["action"] = 0.5 * torch.randn(300, 6, generator=torch.Generator().manual_seed(0))
    td["action"][:50] = 0.0
    plain = env.step(td.clone())["next"]
    td["action"] = td["action"].clone().requires_grad_()
    carried = env.step(td)["next"]
    assert carried["q"].requires_grad and not plain["q"].requires_grad
    assert sorted(plain.keys()) == sorted(carried.keys())
    for key in plain.keys():
        assert plain[key].shape == carried[key].shape and plain[key].dtype == carried[key].dtype, key
    assert torch.equal(plain["q"], carried["q"].detach())
    for key in ("error", "position_error", "rotation_error", "observation", "reward"):
        torch.testing.assert_close(plain[key], carried[key].detach(), atol=2e-6, rtol=0)
    for key in ("step_count", "terminated", "truncated", "done"):
        assert torch.equal(plain[key], carried[key]), key
    assert plain["terminated"][:50].all() and plain["truncated"][50:100].all() and not plain["truncated"][100:].any()


def test_joints_stop_at_limits():
    env = make_env("dobot_cr5", batch_size=4, seed=0, max_delta=1.0)
    td = env.reset()
    for _ in range(14):  # joint 6 spans 12.56 rad
        td["action"] = torch.ones(4, 6)
        td = step_mdp(env.step(td))
    torch.testing.assert_close(td["q"], env.chain.upper.expand(4, 6))


def test_continuous_joints_wrap(toy_arm_env):
    env = toy_arm_env
    td = env.reset()
    td["q"] = torch.tensor([[3.1, 0.0, 0.0, 0.0]]).expand(2, 4).clone()
    td["action"] = torch.tensor([[0.1, 0.0, 0.0, 0.0]]).expand(2, 4)
    q = env.step(td)["next", "q"]
    torch.testing.assert_close(q[:, 0], torch.full((2,), 3.2 - 2 * math.pi))
    assert env.observation_spec["q"].is_in(q)


def test_success_terminates_and_max_steps_truncates():
    env = make_env("ur5e", batch_size=3, seed=0, max_steps=3)
    td = env.reset()
    # Put arm 0 on its target: a zero action succeeds at once.
    td["target"][0] = env.chain.forward_kinematics(td["q"][0])
    td["action"] = torch.zeros(3, 6)
    out = env.step(td)["next"]
    assert out["terminated"].squeeze(-1).tolist() == [True, False, False]
    assert out["done"].squeeze(-1).tolist() == [True, False, False]
    td = step_mdp(env.step(td))
    for _ in range(2):
        td["action"] = torch.zeros(3, 6)
        out = env.step(td)["next"]
        td = step_mdp(env.step(td))
    assert out["truncated"].all() and out["done"].all()


def test_tolerances_can_be_set():
    env = make_env("ur5e", batch_size=2, seed=0, position_tolerance=10.0, rotation_tolerance=math.pi)
    td = env.reset()
    td["action"] = torch.zeros(2, 6)
    assert env.step(td)["next", "terminated"].all()


def test_partial_reset_honours_the_mask():
    env = make_env("dobot_cr5+sincos", batch_size=6, seed=0)
    td = step_mdp(env.rand_step(env.reset()))
    before = td.clone()
    td["_reset"] = torch.tensor([True, False, True, False, False, False]).unsqueeze(-1)
    out = env.reset(td)
    reset_rows, kept_rows = [0, 2], [1, 3, 4, 5]
    for key in ("q", "target", "observation"):
        assert torch.equal(out[key][kept_rows], before[key][kept_rows]), key
        assert not torch.equal(out[key][reset_rows], before[key][reset_rows]), key
    assert out["step_count"].squeeze(-1).tolist() == [0, 1, 0, 1, 1, 1]


def test_seeding_repeats_and_differs():
    # The random actions come from torch's global generator, which torch seeds at random: only
    # the environment's own draws (starts, targets) are compared.
    a = make_env("panda+near_target+sincos", batch_size=4, seed=7).rollout(5)
    b = make_env("panda+near_target+sincos", batch_size=4, seed=7).rollout(5)
    c = make_env("panda+near_target+sincos", batch_size=4, seed=8).rollout(5)
    assert torch.equal(a["q"][:, 0], b["q"][:, 0]) and torch.equal(a["target"][:, 0], b["target"][:, 0])
    assert not torch.equal(a["q"][:, 0], c["q"][:, 0])
    env = make_env("panda", batch_size=2, seed=0)
    first = env.reset()["q"]
    env.set_seed(0)
    assert torch.equal(env.reset()["q"], first)


@pytest.mark.parametrize("reward", ["weighted_pose", "geodesic", "position", "progress"])
def test_gradients_reach_the_policy_through_a_rollout(reward):
    torch.manual_seed(0)
    env = make_env(f"dobot_cr5+{reward}+sincos", batch_size=8, seed=0)
    size = env.observation_spec["observation"].shape[-1]
    net = nn.Sequential(nn.Linear(size, 32), nn.Tanh(), nn.Linear(32, 6))
    policy = TensorDictModule(net, in_keys=["observation"], out_keys=["action"])
    rollout = env.rollout(10, policy)
    (-rollout["next", "reward"].mean()).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_a_torchrl_collector_runs_with_partial_resets():
    env = make_env("dobot_cr5+sincos", batch_size=4, seed=0, max_steps=5)
    collector = Collector(env, None, frames_per_batch=4 * 8, total_frames=4 * 16)
    batches = list(collector)
    assert len(batches) == 2 and batches[0].shape == (4, 8)
    assert batches[0]["next", "truncated"].any()
    assert batches[0]["step_count"].max() == 4


def test_make_env_errors_name_what_is_wrong():
    with pytest.raises(UnknownNameError, match=r"unknown robot 'dobot_cr6'\. Did you mean 'dobot_cr5'\?"):
        make_env("dobot_cr6")
    with pytest.raises(UnknownNameError, match=r"unknown reward, sampler or transform 'sincso'\. Did you mean 'sincos'\?"):
        make_env("dobot_cr5+sincso")
    with pytest.raises(BadParameterError, match=r"sampler 'near_target' has no parameter 'nosie'; it accepts: noise=0\.3"):
        make_env("dobot_cr5+near_target(nosie=0.1)")
    with pytest.raises(BadParameterError, match=r"sampler 'fixed' needs 'file'"):
        make_env("dobot_cr5+fixed")
    with pytest.raises(SpecError, match=r"a spec names at most one reward; 'panda\+geodesic\+position' names geodesic and position"):
        make_env("panda+geodesic+position")
    with pytest.raises(SpecError, match=r"a spec starts with a robot, but 'sincos' is a transform"):
        make_env("sincos+panda")
    with pytest.raises(SpecError, match=r"'panda' is a robot; a spec names one robot, first"):
        make_env("ur5e+panda")
    with pytest.raises(BadParameterError, match=r"max_delta must be one positive number or 6"):
        make_env("ur5e", max_delta=(0.1, 0.2))
    with pytest.raises(BadParameterError, match=r"a keyword is an environment option"):
        make_env("ur5e", max_detla=0.1)
    with pytest.raises(BadParameterError, match=r"device must be a torch device such as 'cpu'"):
        make_env("ur5e", device="gpu")
    with pytest.raises(BadParameterError, match=r"overrides for geodesic, which the spec 'ur5e' does not name"):
        make_env("ur5e", geodesic={"rotation_weight": 1.0})
    with pytest.raises(BadParameterError, match=r"batch_size must be a positive int"):
        make_env("ur5e", batch_size=0)


def test_component_overrides_at_make_time():
    env = make_env("panda+near_target(noise=0.5)", near_target={"noise": 0.01}, batch_size=2)
    assert "near_target(noise=0.01)" in str(env.resolved_spec)


def test_a_sampler_that_cannot_serve_the_chain_fails_at_construction(tmp_path):
    file = tmp_path / "panda_targets.pt"
    torch.save(torch.zeros(5, 7, dtype=torch.float64), file)  # 7 joints: a Panda's, not a CR5's
    with pytest.raises(BadParameterError, match=r"panda_targets\.pt.* has 7 values per row but chain 'dobot_cr5' has 6 joints"):
        make_env(f"dobot_cr5+fixed(file='{file}')")
