"""The audit log is append-only; usage aggregates per key, model, version and day and exports CSV."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from modelhost.errors import Conflict
from modelhost.gateway.audit import AuditLog
from modelhost.gateway.metering import Meter, price_for, to_csv
from modelhost.gateway.tables import AuditEntry
from modelhost.registry import Registry


def test_audit_is_append_only(registry: Registry) -> None:
    log = AuditLog(registry.session)
    log.record("alice", "model.load", "model:iris")
    with registry.session() as s:
        entry = s.scalar(select(AuditEntry))
        assert entry is not None
        entry.actor = "mallory"
        with pytest.raises(Conflict, match="append-only"):
            s.commit()
    with registry.session() as s:
        entry = s.scalar(select(AuditEntry))
        s.delete(entry)
        with pytest.raises(Conflict, match="append-only"):
            s.commit()
    assert [e.actor for e in log.query()] == ["alice"]


def test_registry_changes_are_audited_with_their_actor(iris_registry: Registry) -> None:
    events = AuditLog(iris_registry.session).query(target="model:iris")
    assert [(e.action, e.target) for e in reversed(events)] == [
        ("version.register", "model:iris/1"),
        ("alias.set", "model:iris@production"),
        ("version.register", "model:iris/2"),
        ("alias.set", "model:iris@staging"),
    ]


def test_metering_aggregates_flushes_and_exports(registry: Registry) -> None:
    day = [datetime(2026, 11, 24, 23, 59, tzinfo=UTC)]
    meter = Meter(registry.session, clock=lambda: day[0])
    meter.record("k1", "iris@production", "1", rows=2)
    meter.record("k1", "iris", "1", rows=3, error=True, cost=0.5)
    meter.record("k1", "llm", "2", input_tokens=10, output_tokens=5)
    assert meter.flush() == 2 and meter.flush() == 0
    day[0] = datetime(2026, 11, 25, 0, 1, tzinfo=UTC)
    meter.record("k1", "iris", "1", rows=1)
    meter.record("k2", "iris", "1", rows=1)
    meter.flush()
    rows = [
        (r.day, r.key_id, r.model, r.requests, r.rows, r.errors, r.cost) for r in meter.report(model="iris")
    ]
    assert rows == [
        ("2026-11-24", "k1", "iris", 2, 5, 1, 0.5),
        ("2026-11-25", "k1", "iris", 1, 1, 0, 0.0),
        ("2026-11-25", "k2", "iris", 1, 1, 0, 0.0),
    ]
    assert [r.day for r in meter.report(since="2026-11-25", key_id="k1")] == ["2026-11-25"]
    csv = to_csv(meter.report(model="llm"))
    assert csv.splitlines() == [
        "key_id,model,version,day,requests,input_tokens,output_tokens,rows,errors,cost",
        "k1,llm,2,2026-11-24,1,10,5,0,0,0.0",
    ]


def test_prices_by_model_and_version() -> None:
    prices = {"llm": {"input_1k": 1.0, "output_1k": 2.0}, "llm/3": {"request": 0.5}}
    assert price_for(prices, "llm@production", "2").cost(1000, 500) == pytest.approx(2.0)
    assert price_for(prices, "llm", "3").cost(1000, 500) == pytest.approx(0.5)
    assert price_for(prices, "iris", "1").cost(5, 5) == 0.0


def test_deployment_and_canary_changes_are_audited(iris_registry: Registry) -> None:
    iris_registry.set_deployment("iris", max_batch_size=16, actor="ops")
    iris_registry.set_canary("iris", "production", 2, 25, actor="ops")
    iris_registry.clear_canary("iris", "production", actor="ops")
    events = list(reversed(AuditLog(iris_registry.session).query(actor="ops")))
    assert [(e.action, e.target) for e in events] == [
        ("deployment.set", "model:iris"),
        ("canary.set", "model:iris@production"),
        ("canary.clear", "model:iris@production"),
    ]
    assert events[0].details["changes"]["max_batch_size"]["to"] == 16
    assert events[1].details == {"version": 2, "percent": 25.0}
    assert events[2].details["removed"] == {"version": 2, "percent": 25.0}
