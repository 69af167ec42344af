"""Policy, kinematics fingerprint and checkpoint files: round trips and mismatch errors."""

from __future__ import annotations

import re

import pytest
import torch

import ikrl
from ikrl import make_env
from ikrl.errors import BadParameterError, CheckpointError, CheckpointMismatchError
from ikrl.rl.checkpoint import (
    CHECKPOINT_FILE,
    Checkpoint,
    env_record,
    kinematics_fingerprint,
    load_checkpoint,
    robot_record,
)
from ikrl.rl.policy import Policy
from tests.conftest import CR5_URDF


def _checkpoint(env, policy: Policy) -> Checkpoint:
    return Checkpoint(
        algorithm="apg",
        spec=str(env.resolved_spec),
        fingerprint=kinematics_fingerprint(env.chain),
        robot=robot_record(env.chain),
        env=env_record(env),
        policy_config=policy.config(),
        policy_state=policy.state_dict(),
        train_config={"seed": 3},
        progress={"steps": 10},
    )


def test_policy_actions_stay_within_max_delta_and_config_rebuilds_it():
    torch.manual_seed(0)
    policy = Policy(5, [0.1, 0.2], hidden=(8, 8), activation="tanh")
    with torch.no_grad():
        for layer in policy.net:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(50)  # saturate
        action = policy(torch.randn(100, 5) * 10)
    assert action.shape == (100, 2)
    assert bool((action.abs() <= torch.tensor([0.1, 0.2]) + 1e-7).all())
    assert action[:, 1].abs().max() > 0.15  # per-joint scale, not one scale for all
    rebuilt = Policy(**policy.config())
    rebuilt.load_state_dict(policy.state_dict())
    x = torch.randn(4, 5)
    assert torch.equal(rebuilt(x), policy(x))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"observation_size": 0, "max_delta": [0.1]}, "observation_size"),
        ({"observation_size": 3, "max_delta": [0.1, -1.0]}, "max_delta"),
        ({"observation_size": 3, "max_delta": [0.1], "hidden": ()}, "hidden"),
        ({"observation_size": 3, "max_delta": [0.1], "activation": "gelu2"}, "activation must be one of"),
    ],
)
def test_policy_rejects_bad_arguments(kwargs, message):
    with pytest.raises(BadParameterError, match=message):
        Policy(**kwargs)


def test_policy_names_the_width_it_expects():
    with pytest.raises(BadParameterError, match="width 3"):
        Policy(3, [0.1])(torch.zeros(2, 4))


def test_fingerprint_is_the_same_for_the_same_kinematics_in_any_dtype():
    a = ikrl.load_chain(CR5_URDF)
    b = ikrl.load_chain(CR5_URDF, dtype=torch.float64)
    assert kinematics_fingerprint(a) == kinematics_fingerprint(b) == kinematics_fingerprint(a.to(dtype=torch.float64))
    assert re.fullmatch(r"[0-9a-f]{16}", kinematics_fingerprint(a))


def _cr5_text_with(old: str, new: str) -> str:
    text = open(CR5_URDF).read()
    assert old in text
    return text.replace(old, new, 1)


def test_fingerprint_changes_with_an_origin_a_limit_or_the_tip():
    base = kinematics_fingerprint(ikrl.load_chain(CR5_URDF))
    text = open(CR5_URDF).read()
    limit = re.search(r'upper="([-0-9.e]+)"', text).group(0)
    changed_limit = ikrl.load_chain(text.replace(limit, 'upper="1.0"', 1))
    origin = re.search(r'<origin xyz="([-0-9.e]+) ', text).group(0)
    value = float(origin.split('"')[1])
    moved = ikrl.load_chain(text.replace(origin, f'<origin xyz="{value + 1e-6!r} ', 1))
    assert kinematics_fingerprint(changed_limit) != base
    assert kinematics_fingerprint(moved) != base
    shorter = ikrl.load_chain(CR5_URDF, tip="Link5")
    assert kinematics_fingerprint(shorter) != base


def test_checkpoint_round_trip_rebuilds_the_same_policy_and_env(tmp_path):
    env = make_env("dobot_cr5+geodesic+sincos", batch_size=4, max_delta=0.05, position_tolerance=0.002)
    policy = Policy(env.observation_spec["observation"].shape[-1], env.max_delta, hidden=(16,))
    saved = _checkpoint(env, policy).save(tmp_path)
    assert saved == tmp_path / CHECKPOINT_FILE
    loaded = load_checkpoint(tmp_path)
    assert loaded.spec == str(env.resolved_spec)
    assert loaded.train_config == {"seed": 3} and loaded.progress == {"steps": 10}
    assert set(loaded.versions) >= {"ikrl", "torch", "torchrl", "tensordict", "python"}
    observation = torch.randn(3, policy.observation_size)
    assert torch.equal(loaded.policy()(observation), policy(observation))
    rebuilt = loaded.make_env(batch_size=2, seed=0)
    assert str(rebuilt.resolved_spec) == str(env.resolved_spec)
    assert torch.allclose(rebuilt.max_delta, env.max_delta) and rebuilt.position_tolerance == 0.002
    assert load_checkpoint(saved).fingerprint == loaded.fingerprint  # the file itself works too


def test_checkpoint_for_another_robot_is_a_clear_error(tmp_path):
    env = make_env("dobot_cr5", batch_size=2)
    policy = Policy(env.observation_spec["observation"].shape[-1], env.max_delta, hidden=(8,))
    checkpoint = _checkpoint(env, policy)
    checkpoint.save(tmp_path)
    with pytest.raises(CheckpointMismatchError, match="trained for robot 'dobot_cr5'.*not 'panda'"):
        load_checkpoint(tmp_path).check_chain(make_env("panda", batch_size=1).chain)


def test_checkpoint_for_a_changed_urdf_is_a_clear_error(tmp_path):
    env = make_env("dobot_cr5", batch_size=2)
    policy = Policy(env.observation_spec["observation"].shape[-1], env.max_delta, hidden=(8,))
    _checkpoint(env, policy).save(tmp_path)
    text = open(CR5_URDF).read()
    origin = re.search(r'<origin xyz="([-0-9.e]+) ', text).group(0)
    changed = ikrl.load_chain(text.replace(origin, '<origin xyz="0.05 ', 1))
    changed.name = "dobot_cr5"
    with pytest.raises(CheckpointMismatchError, match="kinematics of 'dobot_cr5' changed since training"):
        load_checkpoint(tmp_path).check_chain(changed)


def test_loading_what_is_not_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nowhere")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable ikrl checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no 'format' entry"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(tmp_path / "future.pt")


def test_an_anchored_policy_does_not_move_an_arm_on_target():
    torch.manual_seed(0)
    policy = Policy(7, [0.1, 0.1, 0.2], hidden=(16, 16), goal_features=(2, 3, 4))
    with torch.no_grad():
        policy.net[-1].weight.normal_()  # not the small initial layer: any weights
        policy.net[-1].bias.normal_()
    observation = torch.randn(50, 7)
    on_target = observation.clone()
    on_target[:, 2:5] = 0.0
    assert torch.equal(policy(on_target), torch.zeros(50, 3))
    assert policy(observation).abs().min() > 0
    rebuilt = Policy(**policy.config())
    rebuilt.load_state_dict(policy.state_dict())
    assert rebuilt.goal_features == (2, 3, 4) and torch.equal(rebuilt(observation), policy(observation))
    with pytest.raises(BadParameterError, match="goal_features must be distinct column indices below 7"):
        Policy(7, [0.1], goal_features=(7,))


def test_training_anchors_the_policy_on_the_error_columns():
    from ikrl.rl.training.run import goal_features

    env = make_env("dobot_cr5+weighted_pose+sincos", batch_size=2)  # target (9), error (6), sincos
    assert goal_features(env) == tuple(range(9, 15))
    assert goal_features(make_env("dobot_cr5+raw+target", batch_size=2)) == ()
    td = env.reset()
    assert torch.equal(td["observation"][:, 9:15], td["error"])


def _crafted(tmp_path, change):
    """A real checkpoint's dict, changed by ``change(data)``, saved as a file."""
    env = make_env("dobot_cr5+geodesic+sincos", batch_size=2)
    policy = Policy(env.observation_spec["observation"].shape[-1], env.max_delta, hidden=(16,))
    data = _checkpoint(env, policy).to_dict()
    change(data)
    path = tmp_path / "crafted.pt"
    torch.save(data, path)
    return path


def _set(path: str, value):
    def change(data):
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("spec", 5), "spec must be a non-empty string; got 5"),
        (_set("env.max_steps", 10**9), "env.max_steps must be an int from 1 to 10,000; got 1000000000"),
        (_set("env.max_steps", 1e9), "env.max_steps must be an int from 1 to 10,000; got 1000000000.0"),
        (_set("env.max_delta", [0.1, float("nan")]), "env.max_delta must be a list of positive numbers, one per joint; got [0.1, nan]"),
        (_set("env.rotation_tolerance", -1.0), "env.rotation_tolerance must be a positive number; got -1.0"),
        (_set("env.dtype", "float16"), "env.dtype must be 'float32' or 'float64'; got 'float16'"),
        (_set("policy.state", {}), "policy.state must be a non-empty dict of names to tensors (a state dict); got {}"),
        (_set("policy.kind", 3), "policy.kind must be one of goal, mlp; got 3"),
        (_set("robot", "cr5"), "robot must be a dict (name, joints); got 'cr5'"),
    ],
)
def test_a_crafted_checkpoint_is_refused_when_loaded_naming_the_field(tmp_path, change, message):
    _assert_refused_when_loaded(tmp_path, change, message)


def _assert_refused_when_loaded(tmp_path, change, message):
    path = _crafted(tmp_path, change)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("policy.config.hidden", [200000, 200000]),
         r"its policy config describes 40,\d{3},\d{3},\d{3} parameters but its state holds \d[\d,]* numbers \(at most 50,000,000 are read\)"),
        (_set("policy.config.colour", "red"), r"its policy cannot be rebuilt from what it stores \(TypeError: .*unexpected keyword argument 'colour'"),
        (_set("policy.config.observation_size", "x"), r"its mlp policy config is malformed \(ValueError: invalid literal"),
        (_set("policy.state", {"net.0.weight": torch.zeros(16, 21)}), r"its policy config describes 550 parameters but its state holds 336 numbers"),
        (_set("policy.kind", "tree"), r"holds a policy of kind 'tree'; this ikrl knows goal, mlp"),
    ],
)
def test_a_crafted_policy_is_refused_before_anything_is_allocated(tmp_path, change, message):
    path = _crafted(tmp_path, change)
    checkpoint = load_checkpoint(path)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.policy()


def test_the_parameter_count_of_a_config_is_the_built_policys(tmp_path):
    from ikrl.rl.goal.policy import GoalPolicy
    from ikrl.rl.training.goal import GoalTraining

    env = make_env("panda+weighted_pose+sincos", batch_size=2)
    mlp = Policy(env.observation_spec["observation"].shape[-1], env.max_delta, hidden=(32, 16))
    assert Policy.parameter_count(mlp.config()) == sum(p.numel() for p in mlp.parameters())
    goal = GoalTraining.policy_for(env, hidden=(32, 16), seed=0, goal_width=24, goal_depth=2, heads=3)
    assert isinstance(goal, GoalPolicy)
    assert GoalPolicy.parameter_count(goal.config()) == sum(p.numel() for p in goal.parameters())


def test_training_keeps_episodes_within_what_a_checkpoint_may_hold():
    from ikrl.rl.training.run import TrainConfig

    with pytest.raises(BadParameterError, match=r"^TrainConfig: max_steps must be an int from 1 to 10000; got 20000$"):
        TrainConfig(max_steps=20_000)


def _state(fn):
    return lambda data: fn(data["policy"]["state"])


def _seven_joints(data):
    data["policy"]["config"]["max_delta"] = [0.1] * 7
    state = data["policy"]["state"]
    state["max_delta"] = torch.full((7,), 0.1)
    state["net.2.weight"] = torch.zeros(7, state["net.2.weight"].shape[1])
    state["net.2.bias"] = torch.zeros(7)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_state(lambda s: s["net.2.weight"].fill_(float("nan"))), "policy.state['net.2.weight'] holds values that are not finite (NaN or inf): the weights are damaged"),
        (_state(lambda s: s["net.0.bias"].fill_(float("inf"))), "policy.state['net.0.bias'] holds values that are not finite (NaN or inf): the weights are damaged"),
        (_state(lambda s: s.__setitem__("net.2.weight", s["net.2.weight"].to(torch.complex64) + 0.5j)),
         "policy.state['net.2.weight'] must be a dense real floating-point tensor (weights) or a bool mask; got 'a torch.complex64 tensor'"),
        (_state(lambda s: s.__setitem__("net.2.weight", s["net.2.weight"].long())),
         "policy.state['net.2.weight'] must be a dense real floating-point tensor (weights) or a bool mask; got 'a torch.int64 tensor'"),
        (_set("env.rotation_tolerance", 100.0), "env.rotation_tolerance must be radians in (0, pi]; got 100.0"),
    ],
)
def test_damaged_weights_and_tolerances_are_refused_when_loaded(tmp_path, change, message):
    _assert_refused_when_loaded(tmp_path, change, message)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_seven_joints, r"its policy acts on 7 joints \(policy config's max_delta has 7 values\) but its environment's max_delta has 6, one per joint"),
        (_state(lambda s: s["max_delta"].fill_(100.0)),
         r"its policy state's max_delta is \[100.0, .*\], but its environment's max_delta is \[0.1, .*\]: they must be equal"),
        (_state(lambda s: s["max_delta"].fill_(-0.1)), r"its policy state's max_delta is \[-0.1, .*\], but its environment's max_delta"),
        (_set("policy.config.hidden", "abc"), r"its policy config's hidden must be a list of positive ints \(layer widths\); got 'abc'"),
        (_set("policy.config.goal_features", ["a"]), r"its policy config's goal_features must be a list of ints \(observation columns\); got \['a'\]"),
    ],
)
def test_a_policy_that_does_not_fit_its_environment_is_refused(tmp_path, change, message):
    path = _crafted(tmp_path, change)
    with pytest.raises(CheckpointError, match=rf"^checkpoint {re.escape(str(path))}: {message}"):
        load_checkpoint(path).policy()


def test_a_float64_checkpoint_builds_its_mlp_in_float64(tmp_path):
    path = _crafted(tmp_path, _set("env.dtype", "float64"))
    checkpoint = load_checkpoint(path)
    env = checkpoint.make_env(batch_size=2, seed=0)
    policy = checkpoint.policy()
    assert env.dtype == torch.float64 and all(p.dtype == torch.float64 for p in policy.parameters())
    assert policy(env.reset()["observation"]).dtype == torch.float64


def test_a_checkpoint_whose_environment_cannot_be_built_says_so_with_its_path(tmp_path):
    path = _crafted(tmp_path, _set("spec", "pandaa"))
    with pytest.raises(CheckpointError, match=rf"^checkpoint {re.escape(str(path))}: cannot build its environment \(spec 'pandaa'\): unknown robot 'pandaa'"):
        load_checkpoint(path).make_env(batch_size=1)
    path = _crafted(tmp_path, _set("spec", "dobot_cr5+geodesic+raw+target+error"))
    with pytest.raises(CheckpointError, match=r"its policy reads observations of width 27, but its spec .* gives observations of width 21"):
        load_checkpoint(path).make_env(batch_size=1)


def test_a_file_torch_cannot_read_is_named_in_one_line(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == f"{path} is not a readable ikrl checkpoint: not a torch.save file of plain data (tensors, numbers, strings, lists, dicts)"
