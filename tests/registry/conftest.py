"""The registry suite runs twice: on SQLite (the default) and on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.config import Settings


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    database_url = None
    if request.param == "postgres":
        database_url = request.getfixturevalue("postgres_server").new_database()
    return Settings(home=tmp_path / "home", load_on_start=True, grpc_port=0, database_url=database_url)
