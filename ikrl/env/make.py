"""``make_env``: the environment a spec string describes, assembled from the registry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ikrl.env.ikenv import IKEnv
from ikrl.errors import BadParameterError
from ikrl.extend.registry import Registry, assemble
from ikrl.spec.grammar import EnvSpec

__all__ = ["ENV_OPTIONS", "make_env"]


#: Keyword arguments of :func:`make_env` that set environment options, not component parameters.
ENV_OPTIONS = ("max_delta", "position_tolerance", "rotation_tolerance")


def make_env(
    spec: EnvSpec | str,
    *,
    batch_size: int | Sequence[int] | torch.Size = 64,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
    max_steps: int = 100,
    registry: Registry | None = None,
    **overrides: object,
) -> IKEnv:
    """The environment a spec string describes, e.g. ``make_env("dobot_cr5+weighted_pose+sincos")``.

    Keyword ``overrides`` are environment options (``max_delta``, ``position_tolerance``,
    ``rotation_tolerance``) or, keyed by a component name of the spec, a dict of that
    component's parameters: ``make_env("panda+near_target", near_target={"noise": 0.1})``.
    The explicit spec, defaults included, is ``env.resolved_spec``.
    """
    options = {k: v for k, v in overrides.items() if k in ENV_OPTIONS}
    components = {k: v for k, v in overrides.items() if k not in ENV_OPTIONS}
    for key, value in components.items():
        if not isinstance(value, Mapping):
            raise BadParameterError(
                f"make_env got {key}={value!r}: a keyword is an environment option ({', '.join(ENV_OPTIONS)}) "
                "or the name of a component of the spec with a dict of its parameters"
            )
    assembly = assemble(spec, registry, components)  # type: ignore[arg-type]
    return IKEnv(
        assembly.chain, assembly.reward, assembly.sampler, assembly.transforms,
        batch_size=batch_size, device=device, dtype=dtype, seed=seed, max_steps=max_steps,
        spec=assembly.spec, **options,  # type: ignore[arg-type]
    )  # fmt: skip
