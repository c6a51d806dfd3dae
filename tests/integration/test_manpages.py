"""The man pages rearm(8), armload(1), armkill(1), armem(1) and rearm.toml(5): made from the
same source as --help (rearm.manpages), shipped as they are made, rendered by `man -l` without
a warning, and installed with the package into share/man (issue 13)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest

from rearm import manpages

ROOT = Path(__file__).parents[2]
PAGES = {
    "rearm.8": [
        "rearm [--home DIR] COMMAND",
        "group start",
        "rearm reboots --clear",
        "EXIT STATUS",
    ],
    "armload.1": ["armload WATCHID /S", "/WAIT time", "armload TEL /S /A /R 2 /H 1 /INT 5 tel"],
    "armkill.1": ["armkill WATCHID", "armkill TEL /T 10"],
    "armem.1": ["armem /M MODE", "stopgroup"],
    "rearm.toml.5": ["max_reboots", "stop_command", "[[watches]]", "script_timeout"],
}


def _man(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["man", "--warnings", "-P", "cat", "-l", str(path)],
        env={**os.environ, "MANWIDTH": "100", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_shipped_pages_are_the_ones_made_from_the_parsers_now() -> None:
    shipped = files("rearm").joinpath("man")
    made = manpages.pages()
    assert sorted(made) == sorted(PAGES)
    for name, text in made.items():
        assert shipped.joinpath(name).read_text(encoding="utf-8") == text, (
            f"{name} is out of date: python -m rearm.manpages --write src/rearm/man"
        )


@pytest.mark.parametrize("name", sorted(PAGES))
def test_man_renders_each_page_without_a_warning(name: str) -> None:
    r = _man(Path(str(files("rearm").joinpath("man", name))))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = " ".join(r.stdout.replace("\u2010", "-").split())
    assert "NAME" in text and "SEE ALSO" in text
    for words in PAGES[name]:
        assert " ".join(words.split()) in text, words


def test_the_package_installs_them_into_share_man(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = glob.glob(str(tmp_path / "rearm-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for name in PAGES:
        section = name.rsplit(".", 1)[1]
        member = next(n for n in names if n.endswith(f".data/data/share/man/man{section}/{name}"))
        out = tmp_path / name
        out.write_bytes(zipfile.ZipFile(wheel).read(member))
        assert _man(out).returncode == 0
