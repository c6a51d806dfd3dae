from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Cluster
from .unix_users import Accounts, accounts, open_folder


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A configured cluster with its daemon running (drill mode)."""
    c = Cluster(tmp_path / "home")
    c.create()
    c.start_daemon()
    try:
        yield c
    finally:
        c.cleanup()


@pytest.fixture
def offline_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A configured cluster whose daemon the test starts itself."""
    c = Cluster(tmp_path / "home")
    c.create()
    try:
        yield c
    finally:
        c.cleanup()


@pytest.fixture
def unix() -> Iterator[Accounts]:
    """Make users and groups for this test (unique names); they are removed after it."""
    with accounts() as made:
        yield made


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A temporary folder that other users may enter (mode 0755)."""
    with open_folder() as folder:
        yield folder
