"""A plain (non-editable) install works from any directory, robots included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_non_editable_install_ships_the_robot_files(tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(REPO)],
        check=True, cwd=tmp_path,
    )  # fmt: skip
    code = (
        "import ikrl, ikrl_robots, torch\n"
        f"assert ikrl.__file__.startswith({str(site)!r}), ikrl.__file__\n"
        f"assert str(ikrl_robots.info('panda').urdf).startswith({str(site)!r})\n"
        "for name in ikrl_robots.names():\n"
        "    chain = ikrl_robots.load(name)\n"
        "    assert chain.forward_kinematics(torch.zeros(chain.dof)).shape == (4, 4)\n"
        "print(' '.join(ikrl_robots.names()))\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["dobot_cr5", "panda", "ur5e"]


def test_pyproject_lists_every_package_and_robot_folder():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"ikrl", "ikrl_plugins", "ikrl_robots"}
    found |= {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "ikrl").rglob("__init__.py")}
    found |= {f"ikrl_robots.{p.parent.name}" for p in (REPO / "robots").glob("*/robot.toml")}
    assert found == listed, f"missing from pyproject: {sorted(found - listed)}; listed but absent: {sorted(listed - found)}"
