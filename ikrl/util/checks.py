"""Parameter checks shared by every layer: numbers, ints, devices.

Each raises :class:`~ikrl.errors.BadParameterError` naming the component, the parameter,
what is accepted and the value given, and returns the value in its checked type.

Examples:
    >>> check_number("near_target", "noise", 0.3, accepted="a number >= 0", low=0)
    0.3
    >>> check_int("solve", "max_iters", 0, low=1)
    Traceback (most recent call last):
    ...
    ikrl.errors.BadParameterError: solve: max_iters must be an int >= 1; got 0
"""

from __future__ import annotations

import math

import torch

from ikrl.errors import BadParameterError

__all__ = ["FLOAT_DTYPES", "MAX_SEED", "check_device", "check_dtype", "check_int", "check_number", "check_seed", "is_finite_number"]

#: Seeds are ints from 0 to this (numpy's and most libraries' range; room for seed + k offsets).
MAX_SEED = 2**32 - 1
#: The dtypes of chains, environments and solutions.
FLOAT_DTYPES = (torch.float32, torch.float64)


def is_finite_number(value: object) -> bool:
    """An int or float that is finite. Not a bool: ``bonus=true`` is a mistake, not the number 1."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def check_number(
    component: str,
    name: str,
    value: object,
    *,
    accepted: str,
    low: float = -math.inf,
    low_open: bool = False,
    high: float = math.inf,
) -> float:
    """``value`` as a float if it is a finite number in the range, else a BadParameterError
    naming the component, the parameter, what is ``accepted`` and the value given.

    For factories: ``self.noise = check_number("near_target", "noise", noise, accepted="a number >= 0", low=0)``.
    """
    x = float(value) if is_finite_number(value) else math.nan  # type: ignore[arg-type]
    # NaN fails every comparison, so anything that is not a finite number is rejected.
    if not ((x > low if low_open else x >= low) and x <= high):
        raise BadParameterError(component=component, parameter=name, accepted=accepted, value=value)
    return x


def check_device(device: object, *, meta: bool = False) -> torch.device:
    """``device`` as a :class:`torch.device` that this machine has, else a BadParameterError
    saying what was wrong (not a device name, or a kind this torch build or machine lacks).
    ``meta=True`` also accepts the meta device (shapes without values: chains, for tests)."""
    try:
        resolved = torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError, ValueError):
        raise BadParameterError(f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:1'; got {device!r}") from None
    if resolved.type == "cpu" or (meta and resolved.type == "meta"):
        return resolved
    module = getattr(torch, resolved.type, None)
    available = getattr(module, "is_available", None)
    if available is None or not available():
        raise BadParameterError(f"device {device!r} is not available here (torch.{resolved.type}.is_available() is False); use 'cpu'")
    count = getattr(module, "device_count", None)
    if resolved.index is not None and count is not None and resolved.index >= count():
        raise BadParameterError(f"device {device!r} does not exist: this machine has {count()} {resolved.type} device(s)")
    return resolved


def check_dtype(component: str, dtype: object) -> torch.dtype:
    """``dtype`` if it is ``torch.float32`` or ``torch.float64``, else a BadParameterError.

    >>> check_dtype("load_chain", "float32")
    Traceback (most recent call last):
    ...
    ikrl.errors.BadParameterError: load_chain: dtype must be torch.float32 or torch.float64; got 'float32'
    """
    if not isinstance(dtype, torch.dtype) or dtype not in FLOAT_DTYPES:
        raise BadParameterError(component=component, parameter="dtype", accepted="torch.float32 or torch.float64", value=dtype)
    return dtype


def check_int(component: str, name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` if it is an int (not a bool) within ``[low, high]``, else a BadParameterError
    naming the component, the parameter and the range."""
    if low is not None and high is not None:
        accepted = f"an int from {low} to {high}"
    elif low is not None:
        accepted = f"an int >= {low}"
    elif high is not None:
        accepted = f"an int <= {high}"
    else:
        accepted = "an int"
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or (low is not None and value < low) or (high is not None and value > high):  # type: ignore[operator]
        raise BadParameterError(component=component, parameter=name, accepted=accepted, value=value)
    return value  # type: ignore[return-value]


def check_seed(component: str, seed: object) -> int:
    """``seed`` if it is an int from 0 to :data:`MAX_SEED`, else a BadParameterError.

    >>> check_seed("make_env", -1)
    Traceback (most recent call last):
    ...
    ikrl.errors.BadParameterError: make_env: seed must be an int from 0 to 4294967295; got -1
    """
    return check_int(component, "seed", seed, low=0, high=MAX_SEED)
