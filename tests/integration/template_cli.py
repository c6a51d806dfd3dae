"""`rearm template ...` and `rearm group template ...` for tests, through the `rearm` command."""

from __future__ import annotations

import subprocess

from .harness import Cluster


def template_cmd(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return cluster.run("rearm", *args)


def template_ok(cluster: Cluster, *args: str) -> str:
    r = template_cmd(cluster, *args)
    assert r.returncode == 0, f"{args} failed ({r.returncode}): {r.stderr}{r.stdout}"
    return r.stdout
