"""ikrl-zoo: the arms whose URDFs ship in example-robot-data, as ikrl robots.

One hook, ``ikrl_robots``: a factory per robot of the catalogue (``zoo.toml``, see
:mod:`ikrl_zoo.catalog`), each building its chain only when called
(:mod:`ikrl_zoo.robots`). Importing this package reads no URDF and needs no
example-robot-data, so ``ikrl list`` works without it; building a robot without it raises
:class:`ikrl.errors.MissingDependencyError`.
"""

from __future__ import annotations

from collections.abc import Callable

import ikrl
from ikrl import Chain
from ikrl_zoo import catalog
from ikrl_zoo.robots import factory

__all__ = ["ikrl_robots"]


@ikrl.hookimpl
def ikrl_robots() -> dict[str, Callable[..., Chain]]:
    """Every robot of the zoo, by name."""
    return {robot.name: factory(robot) for robot in catalog.robots()}
