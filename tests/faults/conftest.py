"""Fixtures of the fault-injection suite: a cluster per test and a seed printed for replay."""

from __future__ import annotations

import os
import random
import secrets

import pytest

# The same real-daemon fixtures as the integration tests.
from tests.integration.conftest import cluster, offline_cluster  # noqa: F401


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """REARM_FAULT_SEED=N replays a run; otherwise a fresh seed, printed (shown with -s or on
    failure, since pytest prints the captured output of a failed test)."""
    seed = int(os.environ.get("REARM_FAULT_SEED") or secrets.randbits(32))
    print(f"\n{request.node.name}: REARM_FAULT_SEED={seed}")
    return random.Random(seed)


@pytest.fixture
def prefix() -> str:
    """Watch IDs unique to this test, so the /proc scan never sees another run's targets."""
    return f"F{secrets.token_hex(3).upper()}_"
