"""The Manager in a real browser (Debian's chromium, driven by Playwright), as an operator uses
it: log in, see the group online in green, watch a crash being recovered live, stop the group,
edit its start script, start it again, change a property. The screenshots are taken here, into
a temporary folder; `REARM_SCREENSHOTS=docs/screenshots` refreshes the ones the docs show (a
test run never changes the checkout by itself).

Every wait is on a condition (Playwright's expect and wait_for, with deadlines), never a sleep.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
from pathlib import Path
from typing import Any

from tests.integration.harness import wait_for

from .manager import ADMIN, GROUP, VIEWER, WATCH, Manager, wait_event

SHOTS = Path(
    os.environ.get("REARM_SCREENSHOTS") or Path(tempfile.gettempdir()) / "rearm-screenshots"
)
GREEN = "rgb(31, 122, 54)"  # --green in manager.css: the guide's "icon should be Green"


def _expect() -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    return expect


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _log_in(page: Any, manager: Manager, user: tuple[str, str] = ADMIN) -> None:
    page.goto(manager.url + "/")
    page.wait_for_url(re.compile(r"/login"))
    page.get_by_label("User name").fill(user[0])
    page.get_by_label("Password").fill(user[1])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(manager.url + "/")


def test_an_operator_recovers_stops_edits_and_restarts_a_group(
    manager: Manager, browser: Any
) -> None:
    expect = _expect()
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    # --- log in ---------------------------------------------------------------------------
    page.goto(manager.url + "/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    _shot(page, "login")
    _log_in(page, manager)

    # --- the tree: the group online, in green, live --------------------------------------
    group = page.locator(f'[data-group="{GROUP}"]')
    badge = group.locator(".badge").first
    expect(badge).to_have_text("online")
    expect(badge).to_have_css("background-color", GREEN)
    expect(group.locator(f'[data-watch="{WATCH}"] .badge')).to_have_text("running")
    expect(page.locator("#live-status")).to_have_text("live")
    _shot(page, "tree")

    # --- a crash, recovered, seen without reloading --------------------------------------
    page.get_by_role("link", name=f"Group {GROUP}").click()
    expect(page.get_by_role("heading", name=f"Group {GROUP}")).to_be_visible()
    expect(page.locator("#live-status")).to_have_text("live")
    row = page.locator(f'#watches tr[data-watch="{WATCH}"]')
    first = manager.cluster.watch(WATCH)
    assert first is not None
    expect(row.locator('[data-field="pid"]')).to_have_text(str(first["pid"]))
    page.evaluate("window.rearmNoReload = true")  # gone if the page were loaded again
    os.kill(first["pid"], signal.SIGKILL)
    second = manager.cluster.wait_running(WATCH, other_than=first["pid"])
    expect(row.locator('[data-field="pid"]')).to_have_text(str(second["pid"]))
    expect(row.locator('[data-field="restarts"]')).to_have_text("1")
    expect(page.locator("#faults li").first).to_contain_text("SLEEPER ended")
    assert page.evaluate("window.rearmNoReload") is True
    assert int(page.locator("body").get_attribute("data-live-updates") or "0") >= 1

    # --- the drill button: a fault injected from the page, confirmed first ----------------
    page.get_by_role("button", name=f"Inject fault into {WATCH}").click()
    expect(page.get_by_role("heading", name=f"Inject a fault into {WATCH}?")).to_be_visible()
    page.get_by_role("button", name=f"Kill {WATCH} now").click()
    expect(page.locator(".flash").first).to_contain_text(f"{WATCH} (pid {second['pid']})")
    expect(row.locator('[data-field="restarts"]')).to_have_text("2")
    drill = wait_event(manager, "drill_fault")
    assert drill["data"]["user"] == "admin" and drill["data"]["pid"] == second["pid"]
    _shot(page, "group")

    # --- stop the group (confirmed) ---------------------------------------------------------
    page.get_by_role("button", name="Stop group").click()
    expect(page.get_by_role("heading", name=f"Stop group {GROUP}?")).to_be_visible()
    page.get_by_role("button", name=f"Stop group {GROUP}").click()
    state = page.locator("#group-head .badge")
    expect(state).to_have_text("offline")
    expect(page.locator("#watches")).to_contain_text("No watches")

    # --- edit the start script while the group is offline ---------------------------------
    page.get_by_role("link", name="start.sh").click()
    editor = page.get_by_label("Script text (start.sh)")
    expect(editor).to_be_editable()
    text = editor.input_value().replace("/bin/sleep 1000", "/bin/sleep 2000")
    editor.fill(text)
    _shot(page, "script-editor")
    page.get_by_role("button", name="Save start.sh").click()
    expect(page.locator(".flash.success")).to_contain_text("start.sh of group WEBGRP saved")
    saved = manager.script().read_text()
    assert "/bin/sleep 2000" in saved and "\r" not in saved
    assert wait_event(manager, "manager_script_edit")["data"]["user"] == "admin"

    # --- start it again: online, with the edited command -----------------------------------
    page.get_by_role("link", name=f"Group {GROUP}").click()
    page.get_by_role("button", name="Start group").click()
    expect(page.get_by_role("heading", name=f"Start group {GROUP}?")).to_be_visible()
    page.get_by_role("button", name=f"Start group {GROUP}").click()
    expect(state).to_have_text("online")
    expect(state).to_have_css("background-color", GREEN)
    expect(row.locator("td.target")).to_contain_text("/bin/sleep 2000")
    expect(page.locator("#group-stop")).to_be_enabled()

    # --- change a property: the final action, confirmed because it reboots ------------------
    page.get_by_role("link", name="Cluster").click()
    page.get_by_label("Final action (armem /M)").select_option("reboot")
    page.get_by_label("Heartbeat timeout (s)").fill("120")
    page.get_by_role("button", name="Save properties").click()
    expect(page.get_by_role("heading", name=re.compile("takes the server down"))).to_be_visible()
    expect(page.locator("main")).to_contain_text("Drill mode is on")
    page.get_by_role("button", name=re.compile("^Save final_action=reboot")).click()
    expect(page.locator(".flash.success")).to_contain_text("final_action=reboot")
    expect(page.get_by_label("Final action (armem /M)")).to_have_value("reboot")
    _shot(page, "properties")
    status = manager.cluster.status()["cluster"]
    assert status["final_action"] == "reboot"
    assert manager.cluster.rearm("cluster", "show", "--json").count('"heartbeat_timeout": 120')

    # --- the event log, filtered ----------------------------------------------------------
    page.get_by_role("link", name="Events").click()
    page.get_by_label("Group").select_option(GROUP)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(rf"group={GROUP}"))
    rows = page.locator("#events tbody tr")
    expect(rows.first).to_be_visible()
    kinds = set(rows.evaluate_all("rows => rows.map(r => r.dataset.kind)"))
    assert {"fault", "restart", "drill_fault", "manager_group_stop"} <= kinds
    assert "manager_cluster_set" not in kinds  # a cluster event has no group
    _shot(page, "events")

    page.goto(manager.url + "/licenses")
    expect(page.get_by_role("heading", name="Licenses")).to_be_visible()
    _shot(page, "licenses")

    # --- a narrow screen: one column, no sideways scrolling ---------------------------------
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{manager.url}/groups/{GROUP}")
    expect(page.locator("#live-status")).to_have_text("live")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(row.locator('[data-field="pid"]')).to_be_visible()
    _shot(page, "narrow-group")
    assert errors == [], errors


def test_requests_without_a_session_or_a_csrf_token_are_refused(
    manager: Manager, browser: Any
) -> None:
    """Through the browser's own request API: the session cookie goes along, a token does not."""
    expect = _expect()
    stop = f"{manager.url}/groups/{GROUP}/stop"
    headers = {"Origin": manager.url}
    anonymous = browser.request.post(stop, form={"confirm": "yes"}, headers=headers)
    assert anonymous.status == 403
    page = browser.new_page()
    _log_in(page, manager, VIEWER)
    expect(page.locator(f'[data-group="{GROUP}"] .badge').first).to_have_text("online")
    expect(page.get_by_role("button", name="Create group")).to_have_count(0)
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login"))
    _log_in(page, manager, ADMIN)
    without_token = browser.request.post(stop, form={"confirm": "yes"}, headers=headers)
    assert without_token.status == 403
    assert "security token" in without_token.text()
    assert manager.group_state() == "online"
    token = page.locator('input[name="csrf"]').first.get_attribute("value")
    with_token = browser.request.post(
        stop, form={"confirm": "yes", "csrf": token}, headers=headers, max_redirects=0
    )
    assert with_token.status == 303
    wait_for("the group offline", lambda: manager.group_state() == "offline")
