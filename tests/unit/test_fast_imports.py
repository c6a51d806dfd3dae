"""armload and armkill run hundreds of times per group start: their imports are a budget.

This checks what they load, not how long it takes (timings are in bench/suite.py): in a bare
interpreter (`python -I -S`, as the daemon's launchers run them) importing the commands must
load no stdlib module beyond the few C and path modules listed here. A new `import re`,
`json`, `socket`, `enum`, `typing` or `dataclasses` on this path fails the test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import rearm

SRC = str(Path(rearm.__file__).resolve().parent.parent)
ALLOWED_STDLIB = {
    "__future__",
    "_collections_abc",
    "_json",
    "_socket",
    "_stat",
    "genericpath",
    "os",
    "os.path",
    "posixpath",
    "stat",
}


def _loaded_by(statement: str) -> set[str]:
    probe = (
        f"import sys; sys.path.insert(0, {SRC!r}); before = set(sys.modules); {statement}; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_arm_commands_import_nothing_heavy() -> None:
    loaded = _loaded_by("import rearm.cli.arm")
    stdlib = {name for name in loaded if name.split(".")[0] != "rearm"}
    assert stdlib <= ALLOWED_STDLIB, f"new imports on armload's path: {stdlib - ALLOWED_STDLIB}"
    # And rearm's own heavy modules stay out too.
    assert "rearm.model" not in loaded and "rearm.config" not in loaded


def test_parsing_an_armload_line_imports_nothing_more() -> None:
    loaded = _loaded_by(
        "import rearm.cli.arm; from rearm.arm import parse_armload, parse_armkill; "
        "before = set(sys.modules); "
        "parse_armload(['W', '/R', '3', '/H', '2', '/INT', '5', '/bin/sleep', '9']); "
        "parse_armkill(['W', '/T', '5'])"
    )
    assert not {name for name in loaded if name.split(".")[0] != "rearm"}
