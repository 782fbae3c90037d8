"""Shared fixtures of the GRU tests (slot arrays: ``gru_state.make_state``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.fixture
def params():
    return lambda hidden=8, seed=0, scale_head=False: SimpleNamespace(hidden=hidden, seed=seed, scale_head=scale_head)
