"""The Manager shows why a group failed (issue 13): the last lines of its script's output on
the group's page, in Chromium, right after "Start group" -- and the reboot-loop counter on the
cluster page, cleared from there."""

from __future__ import annotations

import re
from typing import Any

from .manager import Manager, wait_event
from .test_browser import _expect, _log_in


def test_the_group_page_shows_the_last_lines_of_a_failed_start(
    manager: Manager, browser: Any
) -> None:
    expect = _expect()
    manager.cluster.write_group(
        "BROKEN",
        'echo "myapp: cannot read /etc/myapp.conf: No such file or directory" >&2\nexit 1',
    )
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _log_in(page, manager)
    page.goto(manager.url + "/groups/BROKEN")
    expect(page.locator("#group-output")).to_have_count(0)
    page.get_by_role("button", name="Start group").click()
    page.get_by_role("button", name="Start group BROKEN").click()
    expect(page.locator("#group-head .badge")).to_have_text("error")
    output = page.locator("#group-output pre")
    expect(output).to_contain_text("myapp: cannot read /etc/myapp.conf: No such file or directory")
    expect(page.locator("#group-head")).to_contain_text("start.sh exited with status 1")
    # A fresh load shows it too (it is the daemon's state, not the flash of the action).
    page.reload()
    expect(output).to_contain_text("myapp: cannot read /etc/myapp.conf")
    assert errors == [], errors


def test_the_cluster_page_shows_and_clears_the_reboot_counter(manager: Manager) -> None:
    c = manager.client()
    c.login()
    page = c.get("/cluster")
    assert page.status == 200 and "Reboot-loop counter" in page.body
    assert re.search(r'id="reboot-count">0 of 3 drill reboots or panics within 3600 s', page.body)
    asked = c.action("/cluster/reboots/clear")
    assert asked.status == 200 and "Clear the reboot-loop counter?" in asked.body
    done = c.action("/cluster/reboots/clear", {"confirm": "yes"})
    assert done.status == 303
    event = wait_event(manager, "reboots_cleared")
    assert "Manager user admin" in event["message"]


def test_restart_of_a_watch_from_the_manager_is_not_a_fault(manager: Manager) -> None:
    from .manager import GROUP, WATCH

    c = manager.client()
    c.login()
    before = manager.cluster.wait_running(WATCH)
    path = f"/groups/{GROUP}/watches/{WATCH}/restart"
    asked = c.action(path)
    assert asked.status == 200 and f"Restart {WATCH}?" in asked.body
    assert c.action(path, {"confirm": "yes"}).status == 303
    after = manager.cluster.wait_running(WATCH, other_than=before["pid"])
    assert after["restarts"] == before["restarts"] + 1 and after["faults_in_window"] == 0
    assert wait_event(manager, "manager_watch_restart")["data"]["user"] == "admin"
    assert not manager.events("fault")
