"""Group scripts are checked with `sh -n` (issue 13): `rearm group edit` after the editor
closes, offering to edit again as visudo does; `rearm doctor` for every group script."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .harness import Cluster
from .test_doctor import checks, named, units  # noqa: F401 -- the fixture

BAD = '#!/bin/sh\ncase "$REARM_EVENT" in\nSTART)\n    if true; then\n;;\nesac\n'
GOOD = "#!/bin/sh\n# fixed\nexit 0\n"


def _editor(tmp_path: Path) -> Path:
    """An editor that writes a script with a syntax error the first time, a good one next."""
    (tmp_path / "bad.sh").write_text(BAD)
    (tmp_path / "good.sh").write_text(GOOD)
    editor = tmp_path / "editor.sh"
    count = tmp_path / "edits"
    editor.write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{count}" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "{count}"\n'
        f'if [ $n -eq 1 ]; then cp "{tmp_path}/bad.sh" "$1"; '
        f'else cp "{tmp_path}/good.sh" "$1"; fi\n'
    )
    editor.chmod(0o755)
    return editor


def _edit(cluster: Cluster, editor: Path, answers: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(cluster.env["PATH"].split(":")[0]) / "rearm"), "group", "edit", "G", "start"],
        env={**cluster.env, "EDITOR": str(editor), "VISUAL": ""},
        input=answers,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_edit_offers_to_edit_again_until_the_script_parses(
    offline_cluster: Cluster, tmp_path: Path
) -> None:
    script = offline_cluster.write_group("G", "true") / "start.sh"
    r = _edit(offline_cluster, _editor(tmp_path), "e\n")
    assert r.returncode == 0, r.stderr
    assert "start.sh of group G does not parse" in r.stdout and "Syntax error" in r.stdout
    assert "(e)dit again" in r.stdout and "start.sh of group G saved" in r.stdout
    assert script.read_text() == GOOD
    assert os.access(script, os.X_OK)
    assert [p.name for p in script.parent.iterdir() if p.name.startswith(".")] == []


def test_edit_discards_a_script_that_does_not_parse(
    offline_cluster: Cluster, tmp_path: Path
) -> None:
    script = offline_cluster.write_group("G", "true") / "start.sh"
    before = script.read_text()
    for answers in ("x\n", ""):  # chosen, or no one there to answer
        (tmp_path / "edits").unlink(missing_ok=True)
        r = _edit(offline_cluster, _editor(tmp_path), answers)
        assert r.returncode == 1 and "start.sh not changed" in r.stdout
        assert script.read_text() == before
    (tmp_path / "edits").unlink()
    r = _edit(offline_cluster, _editor(tmp_path), "Q\n")  # saved anyway, with a warning
    assert r.returncode == 0 and "saving start.sh with the error" in r.stdout
    assert "if true; then" in script.read_text()


def test_doctor_checks_every_group_script(
    offline_cluster: Cluster,
    units: Path,  # noqa: F811 -- the fixture
) -> None:
    offline_cluster.write_group("OK", "true")
    folder = offline_cluster.write_group("BAD", "true")
    code, found = checks(offline_cluster, units)
    assert code == 0 and named(found, "scripts")[0]["status"] == "ok"
    (folder / "stop.sh").write_text(BAD)
    code, found = checks(offline_cluster, units)
    assert code == 1
    [problem] = named(found, "scripts")
    assert (
        problem["status"] == "FAIL" and "stop.sh of group BAD does not parse" in problem["detail"]
    )
    assert "Syntax error" in problem["detail"] and problem["fix"] == "rearm group edit BAD stop"
