"""Each test starts with no cached registry and no cached file list of example-robot-data,
so a test that hides the dependency cannot leak into the next."""

from __future__ import annotations

import pytest
from ikrl_zoo import data

from ikrl.extend.registry import reset_default_registry


@pytest.fixture(autouse=True)
def fresh_state():
    reset_default_registry()
    data.clear_cache()
    yield
    reset_default_registry()
    data.clear_cache()
