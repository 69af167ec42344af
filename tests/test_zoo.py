"""The zoo (``plugins/zoo``, the distribution ``ikrl-zoo``): example-robot-data's arms as
robots. Installed by the test set-up, like example-robot-data itself: missing it must fail,
not skip. Every zoo robot passes TorchRL's spec check in float32 and float64 and agrees with
Pinocchio on the same URDF file (this suite's harness, ``test_against_pinocchio``: the whole
robot's model and its frames); the zoo's own tests (another Pinocchio reference, limits,
missing dependency) run against a real install of the package."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from torchrl.envs.utils import check_env_specs
from typer.testing import CliRunner

import ikrl
from ikrl.cli.app import app
from ikrl.extend.plugins import load_plugins
from ikrl.extend.registry import Registry, default_registry

from .test_against_pinocchio import Reference, _check_against, _sample

REPO = Path(__file__).resolve().parents[1]
ZOO = REPO / "plugins" / "zoo"
EXAMPLE = REPO / "plugins" / "example_thirdparty"
#: The checkout's catalogue, read as data so that tests can be parametrised before the plugin is imported.
CATALOG = tomllib.loads((ZOO / "ikrl_zoo" / "zoo.toml").read_text(encoding="utf-8"))
ROBOTS = {robot["name"]: robot for robot in CATALOG["robot"]}
NOT_INSTALLED = "ikrl-zoo is part of the test set-up: make setup installs it (pip install --no-deps -e plugins/zoo)"


def _zoo_rows() -> dict[str, dict]:
    """``ikrl list --json``'s robots, by name."""
    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.output) if row["kind"] == "robot"}


def test_ikrl_list_shows_the_zoo_s_robots_from_its_distribution():
    rows = _zoo_rows()
    zoo = sorted(name for name, row in rows.items() if row["distribution"] == "ikrl-zoo")
    assert zoo, NOT_INSTALLED
    assert zoo == sorted(ROBOTS), "the installed ikrl-zoo is not this checkout's (reinstall: pip install --no-deps -e plugins/zoo)"
    own = {name for name, row in rows.items() if row["distribution"] == "ikrl"}
    assert {"dobot_cr5", "panda", "ur5e"} <= own and len(zoo) >= 10  # at least ten robots more


def test_zoo_names_clash_with_no_other_plugin_s(monkeypatch):
    # ikrl refuses a name two plugins provide (DuplicateNameError), so building the registry
    # with the example plugin added (from its source) is the test; the names are then all there.
    before = set(sys.modules)
    try:
        with monkeypatch.context() as patch:  # the source on the path for the import only (not as a distribution)
            patch.syspath_prepend(str(EXAMPLE))
            example = importlib.import_module("ikrl_example")
        registry = Registry.from_plugins(load_plugins(extra=[(example, "ikrl-example")]))
    finally:
        for name in set(sys.modules) - before:
            if name.split(".")[0] == "ikrl_example":
                del sys.modules[name]
    names = registry.names("robot")
    own = Registry.from_plugins(load_plugins(autoload=False)).names("robot")
    assert {"panda", "toy_arm", "panda_hand", "panda_tcp", "ur5e", "ur5"} <= set(names)
    assert len(names) == len(own) + 2 + len(ROBOTS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("robot", sorted(ROBOTS))
def test_every_zoo_robot_passes_torchrl_s_spec_check(robot, dtype):
    env = ikrl.make_env(f"{robot}+weighted_pose+sincos", batch_size=4, dtype=dtype, seed=0)
    assert default_registry().robot(robot).distribution == "ikrl-zoo", NOT_INSTALLED
    check_env_specs(env, seed=0)
    assert env.chain.dof == ROBOTS[robot]["dof"] and env.observation_spec["observation"].dtype == dtype


@pytest.mark.parametrize("robot", sorted(ROBOTS))
def test_every_zoo_robot_matches_pinocchio_on_the_same_urdf(robot):
    from ikrl_zoo import data  # the installed plugin: where it really finds the file

    entry = ROBOTS[robot]
    chain = default_registry().robot(robot).build({})
    path = data.urdf_path(entry["urdf"], robot=robot)
    assert path.is_file() and (chain.name, chain.base, chain.tip) == (robot, entry["base"], entry["tip"])
    reference = Reference(path.read_text(encoding="utf-8"), entry["base"], entry["tip"])
    assert chain.joint_names == reference.variables
    # 1e-9 m, 1e-9 rad, Jacobian entries 1e-8, on both batch code paths (100 and 300 rows).
    _check_against(chain, reference, _sample(chain, 300, seed=11))


@pytest.fixture(scope="module")
def zoo_site(tmp_path_factory):
    """The zoo, really installed (not editable: its catalogue as package data) into a folder
    put first on the path."""
    site = tmp_path_factory.mktemp("zoo-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site), str(ZOO)],
        check=True,
    )
    return site


@pytest.mark.slow
def test_the_zoo_s_own_tests_pass(zoo_site, tmp_path):
    # What its author runs, against the installed package (its entry point found by ikrl).
    env = {k: v for k, v in os.environ.items() if not k.startswith("IKRL_DISABLE_PLUGIN")}
    env["PYTHONPATH"] = os.pathsep.join([str(zoo_site), *filter(None, [os.environ.get("PYTHONPATH")])])
    where = subprocess.run(
        [sys.executable, "-c", "import ikrl_zoo; print(ikrl_zoo.__file__)"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert where.stdout.startswith(str(zoo_site)), where.stdout + where.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", str(ZOO / "tests")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"\b(\d+) passed\b", result.stdout)
    # At least five tests per robot: Pinocchio, limits, soft limits, float32 and float64 specs.
    assert passed and int(passed[1]) >= 5 * len(ROBOTS), result.stdout
