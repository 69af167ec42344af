"""The environment: :class:`IKEnv` (a batched TorchRL ``EnvBase``) and :func:`make_env`."""

from __future__ import annotations

from ikrl.env.ikenv import IKEnv
from ikrl.env.make import ENV_OPTIONS, make_env

__all__ = ["ENV_OPTIONS", "IKEnv", "make_env"]
