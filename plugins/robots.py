"""ikrl's own robots: a factory for each robot that ships in :mod:`ikrl_robots`."""

from __future__ import annotations

from collections.abc import Callable

# Aliased: the hook below must be named ikrl_robots, like the package.
import ikrl_robots as shipped
import torch

from ikrl.extend.plugins import hookimpl
from ikrl.kinematics.chain import Chain

__all__ = ["ikrl_robots"]


def _factory(name: str) -> Callable[[], Chain]:
    """A factory taking no parameters that loads robot ``name``."""

    def load() -> Chain:
        # float64 on the CPU: the environment converts to its own dtype and device, and
        # converting from float64 loses nothing.
        return shipped.load(name, dtype=torch.float64)

    load.__name__ = load.__qualname__ = name
    load.__doc__ = (
        f"The {name} chain (float64, CPU), from the URDF that ships with ikrl; it declares the "
        "tolerances of its robot.toml as its environments' defaults (chain.env_defaults)."
    )
    return load


@hookimpl
def ikrl_robots() -> dict[str, Callable[[], Chain]]:
    """Every robot that ships with ikrl, by name."""
    return {name: _factory(name) for name in shipped.names()}
