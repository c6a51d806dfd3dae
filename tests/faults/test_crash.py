"""kill -9 of the daemon at random moments, then the invariants of DESIGN principle 4.

N=200 watches keeps the regular run short; bench/soak.py runs the same scenarios with N=1000
and more rounds. The seed is printed (REARM_FAULT_SEED=...) so that a failure can be replayed.
"""

from __future__ import annotations

import random

from tests.integration.harness import Cluster

from . import scenarios

N = 200


def test_kill_during_group_start(cluster: Cluster, rng: random.Random, prefix: str) -> None:
    print(scenarios.group_start_crash(cluster, rng, N, prefix).line())


def test_kill_during_restart_interval(cluster: Cluster, rng: random.Random, prefix: str) -> None:
    print(scenarios.restart_wait_crash(cluster, rng, N, prefix).line())


def test_kill_during_fault_bursts(cluster: Cluster, rng: random.Random, prefix: str) -> None:
    print(scenarios.burst_crash(cluster, rng, N, prefix).line())


def test_kill_during_final_actions(cluster: Cluster, rng: random.Random, prefix: str) -> None:
    print(scenarios.final_action_crash(cluster, rng, N, prefix).line())


def test_kill_during_armkill(cluster: Cluster, rng: random.Random, prefix: str) -> None:
    print(scenarios.armkill_crash(cluster, rng, N, prefix).line())


def test_kill_during_state_writes(cluster: Cluster, rng: random.Random, prefix: str) -> None:
    print(scenarios.state_write_crash(cluster, rng, N, prefix).line())
