"""An example third-party ikrl plugin: two robots, a reward shape, a sampler and an
observation transform. The hooks are here; each component lives in its own module."""

from __future__ import annotations

import ikrl
from ikrl_example.rewards import LogDistance
from ikrl_example.robots import toy_arm, toy_arm_py
from ikrl_example.samplers import NearHome
from ikrl_example.transforms import TipOffset


@ikrl.hookimpl
def ikrl_robots():
    return {"toy_arm": toy_arm, "toy_arm_py": toy_arm_py}


@ikrl.hookimpl
def ikrl_rewards():
    return {"log_distance": LogDistance}


@ikrl.hookimpl
def ikrl_samplers():
    return {"near_home": NearHome}


@ikrl.hookimpl
def ikrl_transforms():
    return {"tip_offset": TipOffset}
