"""ikrl's own plugins: rewards, samplers, observation transforms and robots, each against
hand computations, plus their hooks, protocols and parameter validation."""

from __future__ import annotations

import math
import re

import ikrl_robots
import numpy as np
import pytest
import torch
from ikrl_plugins import rewards, robots, samplers, transforms

import ikrl
from ikrl import se3
from ikrl.errors import BadParameterError
from ikrl.extend.components import (
    JOINTS,
    TARGET,
    ObservationTransform,
    PoseError,
    RewardShape,
    Sampler,
    State,
    concatenated,
)

F64 = torch.float64

# A continuous, a revolute (limits [-1, 2]) and a prismatic joint (limits [0, 0.5] m).
TINY_URDF = """<robot name="tiny">
  <link name="base"/><link name="l1"/><link name="l2"/><link name="l3"/><link name="tip"/>
  <joint name="spin" type="continuous"><parent link="base"/><child link="l1"/><axis xyz="0 0 1"/></joint>
  <joint name="elbow" type="revolute"><parent link="l1"/><child link="l2"/>
    <origin xyz="0 0 0.3"/><axis xyz="0 1 0"/><limit lower="-1" upper="2" effort="1" velocity="1"/></joint>
  <joint name="slide" type="prismatic"><parent link="l2"/><child link="l3"/>
    <origin xyz="0.2 0 0"/><axis xyz="1 0 0"/><limit lower="0" upper="0.5" effort="1" velocity="1"/></joint>
  <joint name="tool" type="fixed"><parent link="l3"/><child link="tip"/><origin xyz="0.1 0 0"/></joint>
</robot>"""


@pytest.fixture(scope="module")
def arms() -> dict[str, ikrl.Chain]:
    return {name: ikrl_robots.load(name, dtype=F64) for name in ikrl_robots.names()}


@pytest.fixture(scope="module")
def tiny() -> ikrl.Chain:
    return ikrl.load_chain(TINY_URDF, tip="tip", dtype=F64)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def pose_error(twist, position=None, rotation=None, dtype=F64) -> PoseError:
    """A hand-made error; position and rotation default to the norms of the twist's halves."""
    twist = torch.as_tensor(twist, dtype=dtype)
    position = twist[:, :3].norm(dim=-1) if position is None else torch.as_tensor(position, dtype=dtype)
    rotation = twist[:, 3:].norm(dim=-1) if rotation is None else torch.as_tensor(rotation, dtype=dtype)
    return PoseError(twist, position, rotation)


def close(actual: torch.Tensor, expected) -> None:
    """``actual`` equals the hand-computed ``expected`` (a nested list), in its own dtype."""
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype))


def zero_error(n: int = 2, dtype=F64) -> PoseError:
    return PoseError(torch.zeros(n, 6, dtype=dtype), torch.zeros(n, dtype=dtype), torch.zeros(n, dtype=dtype))


NO_SUCCESS = torch.tensor([False, False])

# ---------------------------------------------------------------------- hooks and protocols


def test_hooks_return_exactly_the_builtin_names():
    assert set(robots.ikrl_robots()) == {"dobot_cr5", "panda", "ur5e"}
    assert set(rewards.ikrl_rewards()) == {"weighted_pose", "geodesic", "position", "sparse", "progress"}
    assert set(samplers.ikrl_samplers()) == {"uniform", "near_target", "fixed"}
    assert set(transforms.ikrl_transforms()) == {"sincos", "raw", "normalize", "error", "target"}


def test_entry_points_reach_the_hooks():
    from ikrl.extend.plugins import load_plugins

    hook = load_plugins(autoload=False).manager.hook
    assert rewards.ikrl_rewards() in hook.ikrl_rewards()
    assert samplers.ikrl_samplers() in hook.ikrl_samplers()
    assert transforms.ikrl_transforms() in hook.ikrl_transforms()
    assert any(set(d) == {"dobot_cr5", "panda", "ur5e"} for d in hook.ikrl_robots())


def test_robot_factories_take_nothing_and_load_float64_chains():
    dofs = {"dobot_cr5": 6, "panda": 7, "ur5e": 6}
    for name, factory in robots.ikrl_robots().items():
        chain = factory()
        assert isinstance(chain, ikrl.Chain)
        assert (chain.name, chain.dof, chain.dtype, chain.device.type) == (name, dofs[name], F64, "cpu")
        assert (chain.base, chain.tip) == (ikrl_robots.info(name).base, ikrl_robots.info(name).tip)
        with pytest.raises(TypeError):
            factory(dtype=torch.float32)


def test_every_factory_with_default_parameters_satisfies_its_protocol(tmp_path):
    table = tmp_path / "targets.npy"
    np.save(table, np.zeros((2, 6)))
    for factory in rewards.ikrl_rewards().values():
        assert isinstance(factory(), RewardShape)
    for name, factory in samplers.ikrl_samplers().items():
        assert isinstance(factory(file=str(table)) if name == "fixed" else factory(), Sampler)
    for factory in transforms.ikrl_transforms().values():
        x = factory()
        assert isinstance(x, ObservationTransform)
        assert isinstance(x.shows, frozenset) and x.shows <= {JOINTS, TARGET}
        with pytest.raises(TypeError):
            factory(scale=2)


# ---------------------------------------------------------------------- rewards

TWIST = [[0.1, -0.2, 0.3, 0.5, -1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [-0.4, 0.0, 0.0, 0.0, 0.0, 2.0]]


def test_weighted_pose_sums_weighted_absolute_twist_of_the_error_after():
    before = pose_error(torch.ones(3, 6))
    after = pose_error(TWIST)
    success = torch.zeros(3, dtype=torch.bool)
    close(rewards.WeightedPose()(before, after, success), [-(0.6 + 0.2 * 1.5), 0.0, -(0.4 + 0.2 * 2.0)])
    close(rewards.WeightedPose(w=(2, 0, 0, 0, 0, 1))(before, after, ~success), [-0.2, 0.0, -2.8])


def test_geodesic_and_position_use_the_error_after():
    before = pose_error(torch.ones(3, 6), [9.0, 9.0, 9.0], [3.0, 3.0, 3.0])
    after = pose_error(torch.zeros(3, 6), [0.3, 0.0, 0.3], [0.0, 0.5, 0.4])
    success = torch.zeros(3, dtype=torch.bool)
    close(rewards.Geodesic()(before, after, success), [-0.3, -0.1, -math.hypot(0.3, 0.08)])
    close(rewards.Geodesic(rotation_weight=1)(before, after, success), [-0.3, -0.5, -0.5])
    close(rewards.Position()(before, after, success), [-0.3, 0.0, -0.3])


def test_sparse_pays_the_bonus_on_success_only_in_the_errors_dtype():
    for dtype in (torch.float32, F64):
        error = zero_error(3, dtype)
        out = rewards.Sparse(bonus=2.5)(error, error, torch.tensor([True, False, True]))
        assert out.dtype == dtype
        close(out, [2.5, 0.0, 2.5])
    close(rewards.Sparse()(error, error, torch.tensor([True, False, False])), [1.0, 0.0, 0.0])


def test_progress_is_discounted_change_of_distance():
    # distances: before 0.5 (3-4-5 with weight 0.1), after 0.3
    before = pose_error(torch.zeros(2, 6), [0.3, 0.3], [4.0, 0.0])
    after = pose_error(torch.zeros(2, 6), [0.3, 0.5], [0.0, 4.0])
    out = rewards.Progress(gamma=0.9, rotation_weight=0.1)(before, after, NO_SUCCESS)
    close(out, [0.5 - 0.9 * 0.3, 0.3 - 0.9 * math.hypot(0.5, 0.4)])
    assert out[0] > 0 and out[1] < 0  # shrinking error pays, growing error costs
    # gamma = 1: exactly the decrease of the distance; zero for zero error.
    out = rewards.Progress(gamma=1)(zero_error(), zero_error(), NO_SUCCESS)
    torch.testing.assert_close(out, torch.zeros(2, dtype=F64))


def test_progress_sign_follows_the_error_with_default_gamma():
    shaped = rewards.Progress()
    small, large = pose_error(torch.zeros(1, 6), [0.1], [0.2]), pose_error(torch.zeros(1, 6), [0.3], [0.5])
    assert shaped(large, small, NO_SUCCESS[:1]) > 0
    assert shaped(small, large, NO_SUCCESS[:1]) < 0


def test_rewards_keep_dtype_and_batch():
    for dtype in (torch.float32, F64):
        error = pose_error(torch.tensor(TWIST, dtype=dtype), dtype=dtype)
        success = torch.tensor([True, False, True])
        for factory in rewards.ikrl_rewards().values():
            out = factory()(error, error, success)
            assert out.shape == (3,) and out.dtype == dtype


@pytest.mark.parametrize(
    "shape", [rewards.WeightedPose(w=(1, 2, 3, 0.5, 0.25, 0.1)), rewards.Geodesic(rotation_weight=0.3),
              rewards.Position(), rewards.Progress(gamma=0.95, rotation_weight=0.7)],
    ids=repr,
)  # fmt: skip
def test_smooth_rewards_pass_gradcheck(shape):
    # Away from zero components, where |x| and the norm are smooth.
    g = gen(1)
    twist = (torch.rand(4, 6, dtype=F64, generator=g) + 0.1) * torch.tensor([1, -1, 1, -1, 1, 1], dtype=F64)
    twist0 = torch.rand(4, 6, dtype=F64, generator=g) + 0.1
    values = [twist, twist[:, :3].norm(dim=-1), twist[:, 3:].norm(dim=-1), twist0[:, 0], twist0[:, 1]]
    inputs = tuple(v.clone().requires_grad_(True) for v in values)
    success = torch.zeros(4, dtype=torch.bool)

    def reward(twist, position, rotation, position0, rotation0):
        before = PoseError(twist0, position0, rotation0)
        return shape(before, PoseError(twist, position, rotation), success)

    assert torch.autograd.gradcheck(reward, inputs)


@pytest.mark.parametrize("name", ["weighted_pose", "geodesic", "position", "progress"])
def test_gradients_are_finite_at_zero_error(name):
    shape = rewards.ikrl_rewards()[name]()
    parts = [torch.zeros(2, 6, dtype=F64), torch.zeros(2, dtype=F64), torch.zeros(2, dtype=F64)]
    after = PoseError(*(p.clone().requires_grad_(True) for p in parts))
    before = PoseError(*(p.clone().requires_grad_(True) for p in parts))
    out = shape(before, after, NO_SUCCESS)
    torch.testing.assert_close(out, torch.zeros(2, dtype=F64))
    grads = torch.autograd.grad(out.sum(), [*after, *before], allow_unused=True)
    assert all(g is None or bool(torch.isfinite(g).all()) for g in grads)
    assert any(g is not None for g in grads)


def test_geodesic_gradient_through_pose_errors_is_finite_at_the_target():
    # The real pipeline: errors computed from poses, tip exactly at the target.
    xi = torch.zeros(2, 6, dtype=F64, requires_grad=True)
    target = se3.se3_exp(torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]] * 2, dtype=F64))
    tip = target @ se3.se3_exp(xi)
    position, rotation = se3.pose_errors(tip, target)
    after = PoseError(se3.error_twist(tip, target), position, rotation)
    (grad,) = torch.autograd.grad(rewards.Geodesic()(after, after, NO_SUCCESS).sum(), [xi])
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize(
    ("factory", "kwargs", "match"),
    [
        (rewards.WeightedPose, {"w": (1, 2)},
         r"^weighted_pose: w must be 6 non-negative numbers \(translation x, y, z then rotation x, y, z\); "
         r"got \(1, 2\)$"),
        (rewards.WeightedPose, {"w": (1, 1, 1, -0.2, 0.2, 0.2)},
         r"weighted_pose: w must be 6 non-negative .*got \(1, 1, 1, -0.2, 0.2, 0.2\)"),
        (rewards.WeightedPose, {"w": 1.0}, r"weighted_pose: w must be 6 non-negative numbers .*; got 1.0"),
        (rewards.WeightedPose, {"w": (1, 1, 1, 1, 1, "a")}, r"weighted_pose: w .*got \(1, 1, 1, 1, 1, 'a'\)"),
        (rewards.Geodesic, {"rotation_weight": -0.1},
         r"^geodesic: rotation_weight must be a finite number >= 0 \(metres per radian\); got -0.1$"),
        (rewards.Geodesic, {"rotation_weight": "big"}, r"geodesic: rotation_weight must be .*; got 'big'"),
        (rewards.Geodesic, {"rotation_weight": math.inf}, r"geodesic: rotation_weight .*; got inf"),
        (rewards.Sparse, {"bonus": True}, r"^sparse: bonus must be a finite number from -3.40282e\+38 to 3.40282e\+38 \(a float32 reward holds it\); got True$"),
        (rewards.Sparse, {"bonus": math.nan}, r"sparse: bonus must be a finite number from .*; got nan"),
        (rewards.Progress, {"gamma": 0}, r"^progress: gamma must be a number in \(0, 1\]; got 0$"),
        (rewards.Progress, {"gamma": 1.5}, r"progress: gamma must be a number in \(0, 1\]; got 1.5"),
        (rewards.Progress, {"rotation_weight": -1},
         r"progress: rotation_weight must be a finite number >= 0 .*got -1"),
    ],
)  # fmt: skip
def test_reward_parameters_are_validated(factory, kwargs, match):
    with pytest.raises(BadParameterError, match=match):
        factory(**kwargs)


def test_reward_parameter_edges_are_accepted():
    rewards.Progress(gamma=1, rotation_weight=0)
    rewards.Geodesic(rotation_weight=0)
    rewards.WeightedPose(w=(0, 0, 0, 0, 0, 0))
    rewards.Sparse(bonus=-1)


# ---------------------------------------------------------------------- samplers


def assert_in_range(chain: ikrl.Chain, q: torch.Tensor) -> None:
    cont = chain.continuous
    assert bool((q[:, ~cont] >= chain.lower[~cont]).all() and (q[:, ~cont] <= chain.upper[~cont]).all())
    assert bool((q[:, cont] >= -math.pi).all() and (q[:, cont] < math.pi).all())


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("spec", ["uniform", "near_target", "near_target_wide"])
def test_samplers_give_shape_dtype_and_stay_within_limits(arms, tiny, spec, dtype):
    sampler = {"uniform": samplers.Uniform(), "near_target": samplers.NearTarget(),
               "near_target_wide": samplers.NearTarget(noise=5.0)}[spec]  # fmt: skip
    for chain in [*arms.values(), tiny]:
        chain = chain.to(dtype=dtype)
        start, target = sampler(chain, 500, gen())
        for q in (start, target):
            assert q.shape == (500, chain.dof) and q.dtype == dtype and q.device == chain.device
            assert_in_range(chain, q)


def test_uniform_covers_the_whole_range(arms, tiny):
    for chain in [*arms.values(), tiny]:
        start, target = samplers.Uniform()(chain, 4000, gen(3))
        low = torch.where(chain.continuous, -math.pi, chain.lower)
        span = torch.where(chain.continuous, 2 * math.pi, chain.upper - chain.lower)
        for q in (start, target):
            u = (q - low) / span  # should be uniform on [0, 1)
            assert (u.min(0).values < 0.01).all() and (u.max(0).values > 0.99).all()
            assert ((u.mean(0) - 0.5).abs() < 0.03).all()
        assert not torch.equal(start, target)
        assert (torch.corrcoef(torch.cat([start, target], 1).T)[: chain.dof, chain.dof :].abs() < 0.1).all()


@pytest.mark.parametrize("sampler", [samplers.Uniform(), samplers.NearTarget(noise=0.2)], ids=repr)
def test_samplers_repeat_with_the_seed_and_ignore_the_global_rng(arms, sampler):
    chain = arms["panda"]
    torch.manual_seed(1)
    first = sampler(chain, 64, gen(7))
    torch.manual_seed(2)
    again = sampler(chain, 64, gen(7))
    other = sampler(chain, 64, gen(8))
    for a, b, c in zip(first, again, other, strict=True):
        assert torch.equal(a, b)
        assert not torch.equal(a, c)
    # Drawn in float64 and then converted: a float32 chain sees the same values, rounded.
    for a, b in zip(first, sampler(chain.to(dtype=torch.float32), 64, gen(7)), strict=True):
        torch.testing.assert_close(b, a.float())


def test_near_target_spread_matches_noise_away_from_limits(arms):
    chain = arms["ur5e"]  # limits +-2 pi (elbow +-pi)
    start, target = samplers.NearTarget(noise=0.05)(chain, 20000, gen(4))
    far = ((target - chain.lower) > 0.5) & ((chain.upper - target) > 0.5)
    for j in range(chain.dof):
        d = (start - target)[far[:, j], j]
        assert d.numel() > 10000
        assert abs(float(d.std()) - 0.05) < 0.005, (j, float(d.std()))
        assert abs(float(d.mean())) < 0.002


def test_near_target_clamps_bounded_and_wraps_continuous_joints(tiny):
    start, target = samplers.NearTarget(noise=0.5)(tiny, 20000, gen(5))
    spin, elbow = 0, 1
    # Clamping piles starts onto the limits of the bounded joint...
    assert (start[:, elbow] == tiny.upper[elbow]).sum() > 100
    # ... while the continuous joint wraps: no pile-up at +-pi, and the wrapped
    # difference keeps the full spread even for targets near +-pi.
    assert (start[:, spin].abs() >= math.pi - 1e-12).sum() < 5
    near_pi = target[:, spin].abs() > math.pi - 0.3
    wrapped = torch.remainder(start[:, spin] - target[:, spin] + math.pi, 2 * math.pi) - math.pi
    assert abs(float(wrapped[near_pi].std()) - 0.5) < 0.05
    assert (start[near_pi, spin] - target[near_pi, spin]).abs().max() > math.pi  # some did wrap


def test_near_target_without_noise_starts_at_the_target(arms):
    start, target = samplers.NearTarget(noise=0)(arms["panda"], 16, gen())
    assert torch.equal(start, target)


def test_continuous_joints_stay_below_pi_in_float32(tiny):
    # float32 rounds pi up, so a value just under pi in float64 becomes pi unless wrapped.
    chain = tiny.to(dtype=torch.float32)
    start, target = samplers.NearTarget(noise=3.0)(chain, 5000, gen(6))
    assert_in_range(chain, start)
    assert_in_range(chain, target)


# ---------------------------------------------------------------------- fixed

PANDA_ROWS = [
    [0.0, 0.0, 0.0, -1.5, 0.0, 1.5, 0.7],
    [1.0, -0.5, 0.3, -2.0, 0.2, 2.0, -1.0],
    [-2.0, 1.0, -0.3, -0.5, 1.0, 3.0, 2.5],
]


def write_csv(path, rows, header=None):
    lines = ([",".join(header)] if header else []) + [", ".join(repr(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("kind", ["csv", "csv_header", "npy", "pt"])
def test_fixed_draws_targets_from_the_rows_of_the_file(arms, tmp_path, kind):
    chain = arms["panda"]
    rows = torch.tensor(PANDA_ROWS, dtype=F64)
    if kind == "csv":
        file = write_csv(tmp_path / "t.csv", PANDA_ROWS)
    elif kind == "csv_header":
        file = write_csv(tmp_path / "t.csv", PANDA_ROWS, chain.joint_names)
    elif kind == "npy":
        file = str(tmp_path / "t.npy")
        np.save(file, rows.numpy())
    else:
        file = str(tmp_path / "t.pt")
        torch.save(rows.float(), file)  # float32 in the file: converted
    sampler = samplers.Fixed(file=file)
    for dtype in (F64, torch.float32):
        start, target = sampler(chain.to(dtype=dtype), 60, gen(2))
        assert start.shape == target.shape == (60, 7) and start.dtype == target.dtype == dtype
        # Every target is a row of the file; with replacement, every row turns up.
        index = (target.double()[:, None, :] - rows[None]).abs().amax(-1).argmin(-1)
        torch.testing.assert_close(target.double(), rows[index], atol=1e-6, rtol=0)
        assert set(index.tolist()) == {0, 1, 2}
        assert_in_range(chain, start.double())
    again = samplers.Fixed(file=file)(chain, 60, gen(2))
    assert all(torch.equal(a, b) for a, b in zip(sampler(chain, 60, gen(2)), again, strict=True))
    assert not torch.equal(sampler(chain, 60, gen(3))[1], again[1])


def test_fixed_starts_near_the_target(arms, tmp_path):
    chain = arms["panda"]
    file = write_csv(tmp_path / "t.csv", PANDA_ROWS[:1])
    start, target = samplers.Fixed(file=file, starts="near")(chain, 4000, gen())
    d = (start - target)[:, 0]  # joint 1 of row 0 is 0.0, far from its limits (+-2.9)
    assert abs(float(d.std()) - 0.3) < 0.03
    assert_in_range(chain, start)


def test_fixed_reads_the_file_once(arms, tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.array(PANDA_ROWS))
    sampler = samplers.Fixed(file=str(path))
    path.unlink()
    assert sampler(arms["panda"], 5, gen())[1].shape == (5, 7)


def test_fixed_clamps_rows_within_tolerance_and_wraps_continuous_joints(tiny, tmp_path):
    file = write_csv(tmp_path / "t.csv", [[4.0, 2.00005, -0.00005]])
    _, target = samplers.Fixed(file=file)(tiny, 3, gen())
    torch.testing.assert_close(target, torch.tensor([[4.0 - 2 * math.pi, 2.0, 0.0]] * 3, dtype=F64))


def test_fixed_errors_at_construction(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(BadParameterError, match=r"^fixed: file '.*nope\.csv' does not exist"):
        samplers.Fixed(file=str(missing))
    with pytest.raises(BadParameterError, match=r"fixed: file '.*t\.txt' must end in \.csv, \.npy or \.pt"):
        samplers.Fixed(file=str(tmp_path / "t.txt"))
    np.save(tmp_path / "flat.npy", np.zeros(7))
    with pytest.raises(
        BadParameterError, match=r"file '.*flat\.npy' must hold a non-empty 2-D table.*shape \(7,\)"
    ):
        samplers.Fixed(file=str(tmp_path / "flat.npy"))
    bad = write_csv(tmp_path / "nan.csv", [[0.0, 1.0], [float("nan"), 0.0]])
    with pytest.raises(
        BadParameterError, match=r"file '.*nan\.csv' holds values that are not finite \(first in row 1\)"
    ):
        samplers.Fixed(file=bad)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1, 2\n3\n")
    with pytest.raises(BadParameterError, match=r"ragged\.csv' has rows of different lengths"):
        samplers.Fixed(file=str(ragged))
    (tmp_path / "junk.pt").write_text("not a tensor file")
    with pytest.raises(BadParameterError, match=r"junk\.pt' could not be read"):
        samplers.Fixed(file=str(tmp_path / "junk.pt"))
    torch.save({"q": torch.zeros(2, 7)}, tmp_path / "dict.pt")
    with pytest.raises(
        BadParameterError, match=r"dict\.pt' must hold a tensor of joint values; it holds a dict"
    ):
        samplers.Fixed(file=str(tmp_path / "dict.pt"))
    good = write_csv(tmp_path / "ok.csv", PANDA_ROWS)
    with pytest.raises(BadParameterError, match=r"^fixed: starts must be 'uniform' or 'near'; got 'random'$"):
        samplers.Fixed(file=good, starts="random")
    with pytest.raises(TypeError):
        samplers.Fixed()  # file is required


def test_fixed_errors_against_the_chain(arms, tmp_path):
    panda, ur5e = arms["panda"], arms["ur5e"]
    wrong_header = write_csv(tmp_path / "h.csv", PANDA_ROWS, [f"j{i}" for i in range(7)])
    match = r"h\.csv' names columns \(j0, .*, j6\) but chain 'panda' has joints \(panda_joint1, "
    with pytest.raises(BadParameterError, match=match):
        samplers.Fixed(file=wrong_header)(panda, 4, gen())
    file = write_csv(tmp_path / "w.csv", PANDA_ROWS)
    sampler = samplers.Fixed(file=file)
    with pytest.raises(
        BadParameterError, match=r"w\.csv' has 7 values per row but chain 'ur5e' has 6 joints"
    ):
        sampler(ur5e, 4, gen())
    assert sampler(panda, 4, gen())[1].shape == (4, 7)  # the same sampler still fits the Panda
    outside = write_csv(tmp_path / "o.csv", [PANDA_ROWS[0], [0, 0, 0, 0.5, 0, 1, 0]])
    match = (
        r"o\.csv' has 1 row\(s\) outside the limits of chain 'panda'; "
        r"first: row 1, panda_joint4 = 0\.5 not in \[-3\.07\d*, -0\.0698\d*\]"
    )
    with pytest.raises(BadParameterError, match=match):
        samplers.Fixed(file=outside)(panda, 4, gen())


def test_near_target_noise_is_validated():
    for bad in (-0.1, "wide", math.nan, True, 10**400):
        match = (
            r"^near_target: noise must be a finite number >= 0 \(radians, or metres for prismatic joints\); "
            rf"got {re.escape(repr(bad))}$"
        )
        with pytest.raises(BadParameterError, match=match):
            samplers.NearTarget(noise=bad)


# ---------------------------------------------------------------------- transforms


def hand_state(chain: ikrl.Chain, q: torch.Tensor, target: torch.Tensor) -> State:
    tip = chain.forward_kinematics(q)
    position, rotation = se3.pose_errors(tip, target)
    return State(chain, q, target, tip, PoseError(se3.error_twist(tip, target), position, rotation))


def rot_z_pose(angle: float, xyz: tuple[float, float, float]) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0, xyz[0]], [s, c, 0, xyz[1]], [0, 0, 1, xyz[2]], [0, 0, 0, 1]], dtype=F64)


@pytest.fixture(scope="module")
def tiny_state(tiny) -> State:
    q = torch.tensor([[0.0, 0.5, 0.25], [3.0, 2.0, 0.5], [-3.1, -1.0, 0.0]], dtype=F64)
    poses = [rot_z_pose(0.3, (0.1, 0.2, 0.3)), rot_z_pose(-2.0, (-0.5, 0.0, 1.0)), torch.eye(4, dtype=F64)]
    target = torch.stack(poses)
    return hand_state(tiny, q, target)


def test_joint_transforms_by_hand(tiny_state):
    q = tiny_state.q
    sincos = [[math.sin(v) for v in row] + [math.cos(v) for v in row] for row in q.tolist()]
    sin, cos = transforms.SinCos()(tiny_state)  # two blocks, for the environment's one concatenation
    torch.testing.assert_close(concatenated((sin, cos)), torch.tensor(sincos, dtype=F64))
    # The forward kinematics' own sin q and cos q, when the state carries them, are handed on.
    shared = (torch.sin(q), torch.cos(q))
    assert all(a is b for a, b in zip(transforms.SinCos()(tiny_state._replace(sin_cos=shared)), shared, strict=True))
    assert torch.equal(transforms.Raw()(tiny_state), q)
    # spin: q / pi; elbow [-1, 2]: 2 (q + 1) / 3 - 1; slide [0, 0.5]: 4 q - 1
    expected = [[0.0, 0.0, 0.0], [3.0 / math.pi, 1.0, 1.0], [-3.1 / math.pi, -1.0, -1.0]]
    torch.testing.assert_close(transforms.Normalize()(tiny_state), torch.tensor(expected, dtype=F64))


def test_normalize_spans_minus_one_to_one_on_a_real_arm(arms):
    chain = arms["panda"]
    q = torch.stack([chain.lower, chain.upper, 0.5 * (chain.lower + chain.upper)])
    state = hand_state(chain, q, chain.forward_kinematics(q))
    out = transforms.Normalize()(state)
    torch.testing.assert_close(out, torch.tensor([[-1.0] * 7, [1.0] * 7, [0.0] * 7], dtype=F64))


def test_target_transform_is_position_then_two_rotation_columns(tiny_state):
    c, s = math.cos(0.3), math.sin(0.3)
    c2, s2 = math.cos(-2.0), math.sin(-2.0)
    expected = [
        [0.1, 0.2, 0.3, c, s, 0, -s, c, 0],
        [-0.5, 0.0, 1.0, c2, s2, 0, -s2, c2, 0],
        [0, 0, 0, 1, 0, 0, 0, 1, 0],
    ]
    blocks = transforms.Target()(tiny_state)
    assert [tuple(b.shape) for b in blocks] == [(3, 3)] * 3
    torch.testing.assert_close(concatenated(blocks), torch.tensor(expected, dtype=F64))


def test_error_transform_is_the_twist_to_the_target_in_the_tip_frame(tiny):
    q = torch.tensor([[0.2, 0.1, 0.3], [-1.0, 1.5, 0.1]], dtype=F64)
    xi = torch.tensor([[0.05, -0.02, 0.1, 0.2, -0.1, 0.3], [0.0, 0.3, 0.0, 0.0, 0.0, -1.0]], dtype=F64)
    target = tiny.forward_kinematics(q) @ se3.se3_exp(xi)  # target = tip exp(xi)
    torch.testing.assert_close(transforms.Error()(hand_state(tiny, q, target)), xi)


def test_transform_sizes_shows_and_dtypes(arms, tiny):
    expected_shows = {"sincos": JOINTS, "raw": JOINTS, "normalize": JOINTS, "error": TARGET, "target": TARGET}
    sizes = {"sincos": lambda d: 2 * d, "raw": lambda d: d, "normalize": lambda d: d, "error": lambda d: 6,
             "target": lambda d: 9}  # fmt: skip
    for chain in [arms["panda"], arms["dobot_cr5"], tiny]:
        for dtype in (torch.float32, F64):
            c = chain.to(dtype=dtype)
            q = samplers.Uniform()(c, 5, gen())[0]
            state = hand_state(c, q, c.forward_kinematics(q.flip(0)))
            for name, factory in transforms.ikrl_transforms().items():
                x = factory()
                assert x.shows == frozenset({expected_shows[name]})
                assert x.size(c) == sizes[name](c.dof)
                out = concatenated(x(state))
                assert out.shape == (5, x.size(c)) and out.dtype == dtype


# ---------------------------------------------------------------------- other devices


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_components_run_on_cuda(arms):
    chain = arms["ur5e"].to(device="cuda")
    for g in (gen(), torch.Generator(device="cuda").manual_seed(0)):
        for sampler in (samplers.Uniform(), samplers.NearTarget()):
            start, target = sampler(chain, 8, g)
            assert start.device.type == target.device.type == "cuda"
            assert_in_range(chain, start)
    state = hand_state(chain, start, chain.forward_kinematics(target))
    for factory in transforms.ikrl_transforms().values():
        assert factory()(state).device.type == "cuda"
    success = torch.zeros(8, dtype=torch.bool, device="cuda")
    for factory in rewards.ikrl_rewards().values():
        assert factory()(state.error, state.error, success).device.type == "cuda"


def test_parameter_check_helpers_for_plugin_authors():
    from ikrl.util.checks import check_number, is_finite_number

    assert is_finite_number(3) and is_finite_number(0.5)
    assert not is_finite_number(True) and not is_finite_number(math.inf) and not is_finite_number("1")
    assert not is_finite_number(10**400)  # too large for a float
    assert check_number("thing", "noise", 2, accepted="a number >= 0", low=0) == 2.0
    with pytest.raises(BadParameterError, match=r"thing: noise must be a number > 0; got 0"):
        check_number("thing", "noise", 0, accepted="a number > 0", low=0, low_open=True)
    with pytest.raises(BadParameterError, match=r"thing: gamma must be in \(0, 1\]; got 1\.5"):
        check_number("thing", "gamma", 1.5, accepted="in (0, 1]", low=0, low_open=True, high=1)


def test_device_check_names_what_is_wrong(monkeypatch):
    from ikrl.util.checks import check_device

    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(BadParameterError, match=r"device must be a torch device such as 'cpu', 'cuda' or 'cuda:1'; got 'gpu'"):
        check_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BadParameterError, match=r"device 'cuda' is not available here \(torch.cuda.is_available\(\) is False\); use 'cpu'"):
        check_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(BadParameterError, match=r"device 'cuda:2' does not exist: this machine has 2 cuda device\(s\)"):
        check_device("cuda:2")


def test_parameter_checks_raise_errors_that_carry_their_data():
    from ikrl.errors import BadParameterError
    from ikrl.util.checks import check_int, check_number

    with pytest.raises(BadParameterError) as caught:
        check_number("geodesic", "rotation_weight", -1.0, accepted="a finite number >= 0", low=0)
    error = caught.value
    assert (error.component, error.parameter, error.accepted, error.value) == ("geodesic", "rotation_weight", "a finite number >= 0", -1.0)
    assert str(error) == "geodesic: rotation_weight must be a finite number >= 0; got -1.0"
    with pytest.raises(BadParameterError) as caught:
        check_int("solve", "restarts", True, low=0)
    assert (caught.value.parameter, caught.value.value, caught.value.accepted) == ("restarts", True, "an int >= 0")
