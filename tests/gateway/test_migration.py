"""The gateway migration upgrades and downgrades cleanly."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from modelhost.registry import Registry
from modelhost.registry.db import alembic_config


def test_gateway_tables_migrate_down_and_up(registry: Registry) -> None:
    assert {"api_keys", "usage", "audit_log"} <= set(inspect(registry.engine).get_table_names())
    cfg = alembic_config(registry.engine)
    command.downgrade(cfg, "0001")
    assert not {"api_keys", "usage", "audit_log"} & set(inspect(registry.engine).get_table_names())
    command.upgrade(cfg, "head")
    assert {"api_keys", "usage", "audit_log"} <= set(inspect(registry.engine).get_table_names())
