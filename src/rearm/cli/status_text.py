"""`rearm status` as text, laid out like the original Manager's tree: the cluster, its server,
its groups and their watches, then monitors -- each with Online / Offline / Error.

Pure: the status JSON (SPEC §9, `rearm status --json`) in, lines out.
"""

from __future__ import annotations

from typing import Any

# The original's words for what rearm calls a state, and rearm's word after them where it
# says more (a failed watch is in Error, and "failed" says how).
GROUP_WORDS = {
    "online": "Online",
    "offline": "Offline",
    "error": "Error",
    "starting": "Starting",
    "stopping": "Stopping",
}
WATCH_WORDS = {
    "running": "Online",
    "starting": "Starting",
    "restarting": "Restarting",
    "stopped": "Offline",
    "failed": "Error",
    "escalated": "Error",
}
OUTPUT_LINES = 5  # the last lines of a failed script shown under its group


def state_word(state: str, words: dict[str, str]) -> str:
    word = words.get(state, state.capitalize())
    return word if word.lower() == state else f"{word} ({state})"


def policy_text(w: dict[str, Any]) -> str:
    """A watch's restart policy as the armload options that made it, e.g. /R 3 /H 1 /INT 5
    (the Manager shows it the same way)."""
    if not w.get("retry"):
        return "no restart"
    text = f"/R {w['retry']}"
    if w.get("hours"):
        text += f" /H {w['hours']}"
    text += f" /INT {w.get('interval', 0)}"
    return text + (" /SCR" if w.get("script") else "")


def watch_line(w: dict[str, Any]) -> str:
    state = "Stopping" if w.get("stopping") else state_word(w["state"], WATCH_WORDS)
    pid = w["pid"] if w["pid"] is not None else "-"
    faults = f"{w['faults_in_window']}" + (f" of {w['retry']}" if w.get("retry") else "")
    line = (
        f"Watch    {w['id']:<14} {state:<20} pid {pid!s:<8} restarts {w['restarts']:<3} "
        f"faults {faults:<7} {policy_text(w):<20} {w['target']}"
    )
    if w.get("definition_changed"):
        line += "  [runs an older definition than the file on disk: 'rearm restart " + (
            f"{w['id']}' to apply it]"
        )
    if w.get("detail") and w["state"] != "running":
        line += f"  [{w['detail']}]"
    return line


def group_lines(g: dict[str, Any], indent: str = "  ") -> list[str]:
    detail = f"  {g['detail']}" if g.get("detail") else ""
    lines = [f"{indent}Group    {g['name']:<14} {state_word(g['state'], GROUP_WORDS)}{detail}"]
    output = g.get("output") or []
    if output:
        lines.append(f"{indent}    last lines of its script's output:")
        lines += [f"{indent}      | {line}" for line in output[-OUTPUT_LINES:]]
    lines += [f"{indent}  {watch_line(w)}" for w in g["watches"]]
    return lines


def cluster_lines(status: dict[str, Any]) -> list[str]:
    c = status["cluster"]
    drill = "drill on (final actions recorded, not executed)" if c["drill"] else "drill OFF"
    lines = [f"Cluster  {c['name']:<14} final action {c['final_action']}, {drill}"]
    daemon = status.get("daemon") or {}
    server = f"  Server   {c['server']:<14} Online"
    if daemon:
        server += f"   daemon pid {daemon.get('pid')}, version {daemon.get('version')}"
    lines.append(server)
    state = status.get("state") or {}
    if state.get("writable") is False:
        lines.append(
            f"  STATE NOT WRITTEN since {state.get('since')}: {state.get('error')} -- services "
            f"are still watched and restarted; {state.get('pending_writes')} write(s) wait "
            "for var/"
        )
    manager = c.get("manager") or {}
    if c.get("manager_url"):
        lines.append(f"  Manager  {c['manager_url']}  Online")
    elif manager.get("problem"):
        lines.append(f"  Manager  {'':<14} Error   {manager['problem']}")
    reboots = c.get("reboots")
    if reboots:
        other = reboots["drill_count"] if reboots["mode"] == "real" else reboots["real"]
        other_mode = "drill" if reboots["mode"] == "real" else "real"
        lines.append(
            f"  Reboots  {reboots['count']} of {reboots['max']} {reboots['mode']} within "
            f"{reboots['window']} s"
            + (f" ({other} {other_mode} counted apart)" if other else "")
            + ("  -- the guard holds: the next one becomes stopgroup" if reboots["guard"] else "")
        )
    return lines


def render(status: dict[str, Any]) -> list[str]:
    """The whole tree."""
    lines = cluster_lines(status)
    for g in status["groups"]:
        lines += group_lines(g)
    if status["watches"]:
        lines.append("  Watches outside any group")
        lines += [f"    {watch_line(w)}" for w in status["watches"]]
    monitors = status.get("monitors") or []
    if monitors:
        lines.append("  Monitors")
        for m in monitors:
            word = state_word(str(m.get("state", "unknown")), WATCH_WORDS | GROUP_WORDS)
            detail = f"  {m['detail']}" if m.get("detail") else ""
            lines.append(f"    Monitor  {m.get('name', m.get('id', '?'))!s:<14} {word}{detail}")
    if not status["groups"] and not status["watches"]:
        lines.append("  (no groups: create one with 'rearm group create NAME')")
    return lines


def select(status: dict[str, Any], name: str) -> dict[str, Any] | None:
    """`rearm status NAME`: the group named NAME, else the watch with ID NAME (any case, with
    its group's name under "group"); None when there is neither."""
    for g in status["groups"]:
        if g["name"] == name:
            return {"group": g}
    for g in status["groups"]:
        for w in g["watches"]:
            if w["id"].upper() == name.upper():
                return {"watch": w, "group": g["name"]}
    for w in status["watches"]:
        if w["id"].upper() == name.upper():
            return {"watch": w, "group": None}
    return None
