"""Training runs: configuration, the APG algorithm, run folders, resuming."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from ikrl import make_env
from ikrl.errors import BadParameterError, CheckpointMismatchError, UnknownNameError
from ikrl.kinematics.protocol import into_limits, random_joints
from ikrl.rl.checkpoint import load_checkpoint
from ikrl.rl.evaluate import rollout_policy, summarize_errors
from ikrl.rl.policy import Policy
from ikrl.rl.training.apg import APG
from ikrl.rl.training.run import DEFAULT_MINUTES, TrainConfig, train

TINY = {"hidden": (32, 32), "batch_size": 32, "eval_targets": 20, "threads": 1}


def test_config_checks_and_round_trips():
    config = TrainConfig(steps=100, params={"lr": 1e-3})
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.replace(seed=4).seed == 4
    assert TrainConfig().budget_minutes == DEFAULT_MINUTES
    assert TrainConfig(steps=10).budget_minutes is None
    with pytest.raises(UnknownNameError, match="unknown algorithm 'apx'. Did you mean 'apg'"):
        TrainConfig(algorithm="apx")
    with pytest.raises(BadParameterError, match="minutes must be a positive finite number"):
        TrainConfig(minutes=0)
    with pytest.raises(BadParameterError, match="steps must be a positive int"):
        TrainConfig(steps=2.5)
    with pytest.raises(BadParameterError, match="dtype must be float32 or float64"):
        TrainConfig(dtype="half")
    with pytest.raises(BadParameterError, match="unknown training options colour"):
        TrainConfig.from_dict({"colour": 1})


def test_training_on_a_device_this_machine_lacks_is_refused_before_it_starts(tmp_path):
    with pytest.raises(BadParameterError, match="device must be a torch device such as 'cpu'"):
        train("dobot_cr5", TrainConfig(steps=10, device="gpu"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def _apg(**params):
    env = make_env("dobot_cr5+weighted_pose+sincos", batch_size=16, seed=0)
    policy = Policy(env.observation_spec["observation"].shape[-1], env.max_delta, hidden=(16,))
    return APG(env, policy, seed=0, **params)


def test_apg_schedules():
    apg = _apg(lr=1e-2, final_lr=0.1, curriculum_end=0.5, curriculum_noise=(0.2, 1.0))
    apg.set_progress(0.0)
    assert apg.learning_rate() < 1e-2 * 0.1  # warm-up starts low
    apg.set_progress(0.02)
    assert apg.learning_rate() == pytest.approx(1e-2)
    apg.set_progress(1.0)
    assert apg.learning_rate() == pytest.approx(1e-3)
    assert apg.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    apg.set_progress(0.0)
    assert apg.curriculum() == pytest.approx((0.2, 0.0))
    apg.set_progress(0.25)
    assert apg.curriculum() == pytest.approx((0.6, 0.5))
    apg.set_progress(0.75)
    assert apg.curriculum() == (1.0, 1.0)


def test_apg_rejects_bad_hyperparameters():
    with pytest.raises(BadParameterError, match="horizon must be an int >= 1"):
        _apg(horizon=0)
    with pytest.raises(BadParameterError, match="lr must be a positive number"):
        _apg(lr=-1.0)


def test_an_apg_update_follows_the_gradient_of_the_rollout_return():
    """One small step on the same starts raises the horizon's return: the gradient flows
    from the rewards through the environment into the policy."""
    apg = _apg(lr=1e-3, horizon=2)
    apg.set_progress(0.5)
    apg.update()  # builds the state
    start = apg._state.clone()

    def objective():
        td = start.clone()
        total = 0.0
        with torch.no_grad():
            for _ in range(apg.horizon):
                td["action"] = apg.policy(td["observation"])
                td = apg.env.step(td)["next"]
                total += float(td["reward"].mean())
        return total

    before = objective()
    apg._state = start.clone()
    apg.optimizer = torch.optim.SGD(apg.policy.parameters(), lr=1e-3)
    metrics = apg.update()
    assert metrics["transitions"] == 2 * 16 and math.isfinite(metrics["reward"])
    assert objective() > before


def test_apg_state_dict_round_trip(tmp_path):
    apg = _apg()
    for _ in range(3):
        apg.update()
    torch.save(apg.state_dict(), tmp_path / "state.pt")
    other = _apg()
    other.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert other.updates == 3
    assert torch.equal(other.generator.get_state(), apg.generator.get_state())


def test_a_run_folder_holds_everything(tmp_path):
    result = train("dobot_cr5+weighted_pose+sincos", TrainConfig(steps=3000, **TINY), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("checkpoint.pt", "config.json", "metrics.csv", "curves.png", "eval.json"):
        assert (run / name).is_file(), name
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((run / "logs").rglob("*.csv")), "TorchRL's CSV logger wrote nothing"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(rows) >= 2 and int(rows[-1]["steps"]) == result.steps >= 3000
    record = json.loads((run / "eval.json").read_text())
    assert record["spec"] == "dobot_cr5+weighted_pose+uniform+target+error+sincos"
    assert record["targets"] == 20 and record["algorithm"] == "goal"
    assert result.evaluation["success_5mm_2deg"] == record["success_5mm_2deg"]
    checkpoint = load_checkpoint(run)
    assert checkpoint.spec == record["spec"] and checkpoint.progress["steps"] == result.steps
    assert checkpoint.train_config["hidden"] == [32, 32]
    assert json.loads((run / "config.json").read_text())["config"]["steps"] == 3000


def test_resuming_continues_the_budget_and_checks_the_spec(tmp_path):
    first = train("dobot_cr5+weighted_pose+sincos", TrainConfig(steps=1000, **TINY), tmp_path / "a", progress=False)
    second = train(
        "dobot_cr5+weighted_pose+sincos", TrainConfig(steps=2000, **TINY), tmp_path / "b", resume=tmp_path / "a", progress=False
    )
    assert first.steps >= 1000 and second.steps >= 2000
    assert load_checkpoint(tmp_path / "b").progress["steps"] == second.steps
    earlier = list(csv.DictReader((tmp_path / "a" / "metrics.csv").open()))
    rows = list(csv.DictReader((tmp_path / "b" / "metrics.csv").open()))
    # The history before the resume is kept, then the run continues (not restarted).
    kept = [row for row in earlier if float(row["steps"]) <= first.steps]
    assert [float(r["steps"]) for r in rows[: len(kept)]] == [float(r["steps"]) for r in kept] and kept
    assert float(rows[len(kept)]["steps"]) > first.steps and float(rows[-1]["steps"]) == second.steps
    with pytest.raises(CheckpointMismatchError, match="trained on 'dobot_cr5\\+weighted_pose"):
        train("dobot_cr5+geodesic+sincos", TrainConfig(steps=100, **TINY), tmp_path / "c", resume=tmp_path / "a", progress=False)
    with pytest.raises(CheckpointMismatchError, match="trained for robot 'dobot_cr5'"):
        train("ur5e+weighted_pose+sincos", TrainConfig(steps=100, **TINY), tmp_path / "d", resume=tmp_path / "a", progress=False)


def _near_target_success(policy, env, seed=5):
    generator = torch.Generator().manual_seed(seed)
    target_q = random_joints(env.chain, env.batch_size[0], generator)
    start = into_limits(env.chain, target_q + 0.15 * torch.randn(target_q.shape, generator=generator))
    final, first, _ = rollout_policy(env, policy, start, env.chain.forward_kinematics(target_q))
    return summarize_errors(final["position_error"].squeeze(-1), final["rotation_error"].squeeze(-1), first, 1.0)


@pytest.mark.slow
def test_training_improves_on_the_untrained_policy(tmp_path):
    spec = "dobot_cr5+weighted_pose+sincos+near_target(noise=0.15)"
    config = TrainConfig(algorithm="apg", steps=1_500_000, batch_size=256, hidden=(128, 128), eval_targets=50, threads=1)
    train(spec, config, tmp_path, progress=False)
    checkpoint = load_checkpoint(tmp_path)
    env = checkpoint.make_env(batch_size=256, seed=0)
    torch.manual_seed(0)
    untrained = _near_target_success(Policy(**checkpoint.policy_config), env)
    trained = _near_target_success(checkpoint.policy(), env)
    assert trained["position_error_median"] < 0.5 * untrained["position_error_median"], (untrained, trained)
    assert trained["success_5mm_2deg"] > untrained["success_5mm_2deg"], (untrained, trained)


def test_read_metrics_reads_numbers_and_names_a_file_it_cannot_read(tmp_path):
    from ikrl.errors import CheckpointError
    from ikrl.rl.training.run import read_metrics

    assert read_metrics(tmp_path / "none.csv") == []
    good = tmp_path / "metrics.csv"
    good.write_text("steps,seconds,val/success\n10,1.5,\n20,3.0,0.25\n")
    rows = read_metrics(good)
    assert rows[1] == {"steps": 20.0, "seconds": 3.0, "val/success": 0.25} and math.isnan(rows[0]["val/success"])
    bad = tmp_path / "bad.csv"
    bad.write_text("steps,seconds\nten,1\n")
    with pytest.raises(CheckpointError, match=r"bad.csv: cannot read the run's metrics to keep them on resume \(could not convert string to float: 'ten'\)"):
        read_metrics(bad)
    bad.write_text("time\n1\n")
    with pytest.raises(CheckpointError, match=r"has no 'steps' column; move it away to start a new history"):
        read_metrics(bad)
