#!/usr/bin/env python3
"""Soak run of the crash scenarios of tests/faults: more watches, more rounds, figures printed.

    .venv/bin/python bench/soak.py [--watches 1000] [--rounds 5] [--seed N] [--only NAME...]

Each round runs every scenario once on a fresh cluster (temporary REARM_HOME, drill mode), with
a seed drawn from the run's seed (printed: pass it back with --seed to replay). A violated
invariant is printed as VIOLATION with its details and the run goes on; the exit status is 1
when there was any.
"""

from __future__ import annotations

import argparse
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `tests.*`

from tests.faults import scenarios
from tests.integration.harness import Cluster


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watches", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--only", nargs="*", choices=sorted(scenarios.SCENARIOS))
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    print(f"soak: N={args.watches} rounds={args.rounds} seed={seed}", flush=True)
    master = random.Random(seed)
    violations = 0
    daemon_kills = process_kills = invariants = 0
    started = time.monotonic()
    for r in range(1, args.rounds + 1):
        for name in args.only or list(scenarios.SCENARIOS):
            sub = master.randrange(2**32)
            with tempfile.TemporaryDirectory(prefix="rearm-soak-") as tmp:
                cluster = Cluster(Path(tmp) / "home")
                try:
                    cluster.create()
                    cluster.start_daemon()
                    prefix = f"S{secrets.token_hex(3).upper()}_"
                    fig = scenarios.SCENARIOS[name](
                        cluster, random.Random(sub), args.watches, prefix
                    )
                    print(f"round {r} seed {sub}: {fig.line()}", flush=True)
                    daemon_kills += fig.daemon_kills
                    process_kills += fig.process_kills
                    invariants += fig.invariants
                except AssertionError as e:
                    violations += 1
                    print(f"round {r} seed {sub}: {name}: VIOLATION: {e}", flush=True)
                finally:
                    cluster.cleanup()
    print(
        f"soak: faults injected: {daemon_kills} daemon kills (SIGKILL), {process_kills} process "
        f"kills; {invariants} invariant checks passed; {violations} violation(s) in "
        f"{time.monotonic() - started:.0f} s (seed {seed})",
        flush=True,
    )
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
