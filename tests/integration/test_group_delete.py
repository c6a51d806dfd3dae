"""A deleted group leaves status at once, and after a reload (issue 13); `rearm group delete`
says which service definitions only that group used and removes them with --purge."""

from __future__ import annotations

import os
import shutil

from .harness import Cluster


def _names(cluster: Cluster) -> set[str]:
    return {g["name"] for g in cluster.status()["groups"]}


def test_a_deleted_group_leaves_status_and_its_own_definitions_can_be_purged(
    cluster: Cluster,
) -> None:
    services = cluster.home / "etc" / "services"
    cluster.write_service("mine", 'command = ["/bin/sleep", "4713.31"]\n')
    cluster.write_service("shared", 'command = ["/bin/sleep", "4713.32"]\n')
    cluster.write_group("A", "armload AM /S /R 1 mine\narmload AS /S /R 1 shared")
    cluster.write_group("B", "armload BS /S /R 1 shared")
    cluster.write_group("C", "armload CM /S /R 1 mine")
    cluster.rearm("group", "start", "A")
    cluster.rearm("group", "stop", "A")
    assert {"A", "B", "C"} <= _names(cluster)

    out = cluster.rearm("group", "delete", "C")
    assert "group C deleted" in out and "services" not in out  # mine: A uses it too
    assert "C" not in _names(cluster)
    out = cluster.rearm("group", "delete", "A")
    assert "service definitions only group A used: etc/services/mine.toml" in out
    assert "--purge" in out and (services / "mine.toml").exists()
    assert "A" not in _names(cluster)
    assert "group A" not in cluster.rearm("status")
    assert cluster.events("group_deleted")

    cluster.write_group("D", "armload DM /S /R 1 mine")
    out = cluster.rearm("group", "delete", "D", "--purge")
    assert "removed etc/services/mine.toml (only group D used it)" in out
    assert not (services / "mine.toml").exists() and (services / "shared.toml").exists()


def test_a_group_folder_removed_by_hand_leaves_status_at_once_and_at_reload(
    cluster: Cluster,
) -> None:
    cluster.write_group("E", "true")
    cluster.rearm("group", "start", "E")
    cluster.rearm("group", "stop", "E")
    shutil.rmtree(cluster.home / "etc" / "groups" / "E")
    assert "E" not in _names(cluster)
    cluster.rearm("reload")
    assert "E" not in _names(cluster)
    # A restarted daemon does not bring it back from the store either.
    cluster.stop_daemon(stop_groups=False)
    cluster.start_daemon()
    assert "E" not in _names(cluster)


def test_a_definition_a_live_watch_uses_is_kept(cluster: Cluster) -> None:
    cluster.write_service("solo", 'command = ["/bin/sleep", "4713.33"]\n')
    cluster.write_group("F", "armload FS /S /R 1 solo")
    cluster.ok("armload", "TYPED", "/S", "/R", "1", "solo")  # typed at a shell, no group
    out = cluster.rearm("group", "delete", "F", "--purge")
    assert "kept etc/services/solo.toml: used by watch TYPED of no group" in out
    assert os.path.exists(cluster.home / "etc" / "services" / "solo.toml")
