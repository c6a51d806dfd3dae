"""The daemon's armload launchers (run/bin): their text, and where they may be written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rearm.daemon.launchers import COMMANDS, launcher_text, write_launchers


def test_launcher_text_runs_python_without_site() -> None:
    text = launcher_text("/usr/bin/python3", ["/opt/rearm/src", "/opt/site"], "armload_main")
    assert text is not None
    lines = text.splitlines()
    assert lines[0] == "#!/usr/bin/python3 -IS"
    assert "sys.path[:0] = ['/opt/rearm/src', '/opt/site']" in lines
    assert lines[-1] == "sys.exit(armload_main())"


def test_no_launcher_for_an_interpreter_a_shebang_cannot_name() -> None:
    assert launcher_text("/opt/my python/bin/python3", [], "armload_main") is None
    assert launcher_text("/" + "p" * 260, [], "armload_main") is None


def test_written_launchers_run(tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    assert write_launchers(str(folder))
    for command in COMMANDS:
        path = folder / command
        assert os.access(path, os.X_OK)
        # --help needs no daemon: the launcher finds rearm without site-packages on its own.
        out = subprocess.run(
            [str(path), "--help"], capture_output=True, text=True, env={}, timeout=30
        )
        assert out.returncode == 0 and out.stdout.startswith("usage: " + command), out.stderr


def test_not_written_where_others_could_replace_them(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # writable by all and not sticky: anyone could swap armload
    assert not write_launchers(str(shared / "bin"))


def test_the_interpreter_is_this_one() -> None:
    text = launcher_text(sys.executable, [], "armkill_main")
    assert text is not None and text.startswith(f"#!{sys.executable} -IS\n")
