"""SNMP notifications received by Debian's snmptrapd with REARM-MIB loaded, and the MIB itself
checked by smilint and snmptranslate."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rearm.alerts.mib import mib_text
from rearm.alerts.model import DeliveryError
from rearm.alerts.snmp import NOTIFICATIONS, default_engine_id, varbinds

from .conftest import TrapReceiver, eventually, tool
from .helpers import alert, sink


async def _send(config_table: dict[str, object], **event: object) -> str:
    config = sink(**config_table)  # type: ignore[arg-type]
    s = config.create()
    try:
        await s.open()
        return await s.send(alert(**event))  # type: ignore[arg-type]
    finally:
        await s.close()


@pytest.mark.asyncio
async def test_v2c_trap_decodes_with_the_mib_names(trap_receiver: TrapReceiver) -> None:
    detail = await _send(
        {
            "type": "snmp",
            "target": f"127.0.0.1:{trap_receiver.port}",
            "community": TrapReceiver.COMMUNITY,
        },
        message="WEB1 ended: killed by SIGKILL",
    )
    assert "trap sent" in detail
    text = await eventually(
        "the trap", lambda: "rearmFault" in trap_receiver.text() and trap_receiver.text()
    )
    assert "SNMPv2-MIB::snmpTrapOID.0 = OID: REARM-MIB::rearmFault" in text
    for expected in (
        "REARM-MIB::rearmCluster.0 = STRING: testcl",
        "REARM-MIB::rearmServer.0 = STRING: test-server",
        "REARM-MIB::rearmGroup.0 = STRING: web",
        "REARM-MIB::rearmWatch.0 = STRING: WEB1",
        "REARM-MIB::rearmEventKind.0 = STRING: fault",
        "REARM-MIB::rearmSeverity.0 = INTEGER: warning(2)",
        "REARM-MIB::rearmMessage.0 = STRING: WEB1 ended: killed by SIGKILL",
        "REARM-MIB::rearmEventTime.0 = STRING: ",
    ):
        assert expected in text


@pytest.mark.asyncio
async def test_v3_auth_priv_trap_decodes(trap_receiver: TrapReceiver) -> None:
    await _send(
        {
            "type": "snmp",
            "target": f"127.0.0.1:{trap_receiver.port}",
            "version": "3",
            "user": TrapReceiver.USER,
            "auth_protocol": "sha",
            "auth_password": TrapReceiver.AUTH,
            "priv_protocol": "aes",
            "priv_password": TrapReceiver.PRIV,
            "engine_id": TrapReceiver.ENGINE_ID,
        },
        kind="final_action",
        severity="critical",
        message="final action reboot (drill: recorded, not executed) for WEB1",
    )
    text = await eventually(
        "the v3 trap", lambda: "rearmFinalAction" in trap_receiver.text() and trap_receiver.text()
    )
    assert "REARM-MIB::rearmSeverity.0 = INTEGER: critical(4)" in text
    assert "final action reboot (drill: recorded, not executed) for WEB1" in text


@pytest.mark.asyncio
async def test_v3_inform_is_acknowledged(trap_receiver: TrapReceiver) -> None:
    detail = await _send(
        {
            "type": "snmp",
            "target": f"127.0.0.1:{trap_receiver.port}",
            "version": "3",
            "notify": "inform",
            "user": TrapReceiver.USER,
            "auth_password": TrapReceiver.AUTH,
            "priv_password": TrapReceiver.PRIV,
        },
        kind="threshold",
        severity="critical",
    )
    assert detail.startswith("inform acknowledged")
    await eventually("the inform", lambda: "rearmThreshold" in trap_receiver.text())


@pytest.mark.asyncio
async def test_an_unanswered_inform_fails(trap_receiver: TrapReceiver) -> None:
    # Wrong community: snmptrapd drops it silently, so only the inform's timeout tells.
    with pytest.raises(DeliveryError):
        await _send(
            {
                "type": "snmp",
                "target": f"127.0.0.1:{trap_receiver.port}",
                "notify": "inform",
                "community": "not-the-community",
                "timeout": 1,
            }
        )


def test_varbinds_cut_long_text_at_a_character_boundary() -> None:
    message = "é" * 200  # 400 bytes in UTF-8
    binds = dict(
        (oid, value) for oid, _, value in varbinds("1.3.6.1.4.1.32473", alert(message=message))
    )
    sent = binds["1.3.6.1.4.1.32473.1.7.0"]
    assert isinstance(sent, bytes) and len(sent) == 254
    assert sent.decode("utf-8") == "é" * 127


def test_default_engine_id_is_rfc3411_text_format() -> None:
    engine = default_engine_id("1.3.6.1.4.1.32473", "test")
    assert engine.hex() == TrapReceiver.ENGINE_ID
    assert default_engine_id("1.3.6.1.4.1.8072.9", "x")[:5] == bytes.fromhex("80001f8804")


# --- the MIB ---------------------------------------------------------------------------------


def _translate(mibs: Path, *args: str) -> str:
    result = subprocess.run(
        [tool("snmptranslate"), "-M", str(mibs), "-m", "REARM-MIB", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(mibs)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_mib_passes_smilint(mib_dir: Path) -> None:
    result = subprocess.run(
        [tool("smilint"), "-l", "6", "-s", str(mib_dir / "REARM-MIB.txt")],
        capture_output=True,
        text=True,
        env={**os.environ, "SMIPATH": str(mib_dir)},
        check=False,
    )
    ours = [line for line in result.stderr.splitlines() if "REARM-MIB" in line]
    assert ours == [], "\n".join(ours)


def test_mib_oids_match_what_rearm_sends(mib_dir: Path) -> None:
    names = {
        1: "rearmDaemonStart",
        2: "rearmDaemonStop",
        3: "rearmFault",
        4: "rearmRestart",
        5: "rearmThreshold",
        6: "rearmFinalAction",
        7: "rearmGroupError",
        8: "rearmHeartbeatTimeout",
        9: "rearmEvent",
        10: "rearmTest",
    }
    assert set(NOTIFICATIONS.values()) | {9} == set(names)
    for number, name in names.items():
        assert _translate(mib_dir, "-On", f"REARM-MIB::{name}") == f".1.3.6.1.4.1.32473.0.{number}"
    objects = [oid for oid, _, _ in varbinds("1.3.6.1.4.1.32473", alert())]
    for oid in objects:
        name = _translate(mib_dir, "-OS", "." + oid)
        assert name.startswith("REARM-MIB::rearm") and name.endswith(".0"), name


def test_mib_moved_under_another_enterprise(mib_dir: Path) -> None:
    (mib_dir / "REARM-MIB.txt").write_text(mib_text("1.3.6.1.4.1.8072.9999.7"))
    assert _translate(mib_dir, "-On", "REARM-MIB::rearmFault") == ".1.3.6.1.4.1.8072.9999.7.0.3"
