"""The ``store`` fixture: every scale test that takes it runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scale.support import Store, bankhub_cli, sqlite_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A data dir and a migrated database (the data dir's SQLite file, or a fresh PostgreSQL
    database) for ``bankhub`` processes started with ``store.env``."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {"BANKHUB_DATA_DIR": str(data_dir)}
    if request.param == "sqlite":
        yield Store("sqlite", data_dir, sqlite_url(data_dir), env)
    else:
        url: str = request.getfixturevalue("postgres_url")
        env["BANKHUB_DATABASE_URL"] = url
        bankhub_cli(["migrate"], env, tmp_path)
        yield Store("postgres", data_dir, url, env)
