from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Cluster


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
