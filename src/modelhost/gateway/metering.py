"""Usage metering: requests, tokens, rows, errors and cost per key, model, version and UTC day.

Requests add to in-memory counters (no database write on the request path); ``flush`` adds them
to the ``usage`` table, which the server does every MODELHOST_USAGE_FLUSH_S and on shutdown.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelhost.gateway.tables import UsageRow

_FIELDS = ("requests", "input_tokens", "output_tokens", "rows", "errors")


@dataclass(frozen=True)
class Price:
    """Price of one request and of 1,000 input/output tokens, in the operator's currency."""

    request: float = 0.0
    input_1k: float = 0.0
    output_1k: float = 0.0

    def cost(self, input_tokens: int = 0, output_tokens: int = 0) -> float:
        return self.request + input_tokens * self.input_1k / 1000 + output_tokens * self.output_1k / 1000


def price_for(prices: dict[str, dict[str, float]], model: str, version: str | None) -> Price:
    """The price of ``model/version`` if set, else of ``model``, else free."""
    name = model.partition("@")[0]
    spec = (prices.get(f"{name}/{version}") if version else None) or prices.get(name) or {}
    return Price(
        request=float(spec.get("request", 0.0)),
        input_1k=float(spec.get("input_1k", 0.0)),
        output_1k=float(spec.get("output_1k", 0.0)),
    )


@dataclass
class UsageRecord:
    key_id: str
    model: str
    version: str
    day: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    rows: int = 0
    errors: int = 0
    cost: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Meter:
    """Aggregates usage in memory and flushes it to the database."""

    def __init__(self, sessions: Callable[[], Session], clock: Callable[[], datetime] | None = None) -> None:
        self._sessions = sessions
        self._clock = clock
        self._day_number, self._day = -1, ""  # the UTC day of the real clock, formatted once a day
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str, str, str], UsageRecord] = {}

    def record(
        self,
        key_id: str,
        model: str,
        version: str,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        rows: int = 0,
        error: bool = False,
        cost: float = 0.0,
    ) -> None:
        day = self._today()
        name = model.partition("@")[0]
        with self._lock:
            rec = self._pending.get((key_id, name, version, day))
            if rec is None:
                rec = self._pending[(key_id, name, version, day)] = UsageRecord(key_id, name, version, day)
            rec.requests += 1
            rec.input_tokens += input_tokens
            rec.output_tokens += output_tokens
            rec.rows += rows
            rec.errors += int(error)
            rec.cost += cost

    def _today(self) -> str:
        """The UTC day usage is booked under; recorded per request, so formatted once per day."""
        if self._clock is not None:
            return self._clock().strftime("%Y-%m-%d")
        number = int(time.time() // 86400)
        if number != self._day_number:
            self._day = datetime.fromtimestamp(number * 86400, UTC).strftime("%Y-%m-%d")
            self._day_number = number
        return self._day

    def flush(self) -> int:
        """Add pending counters to the database; returns how many buckets were written."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            with self._sessions() as s:
                for (key_id, model, version, day), rec in pending.items():
                    row = s.scalar(
                        select(UsageRow).where(
                            UsageRow.key_id == key_id,
                            UsageRow.model == model,
                            UsageRow.version == version,
                            UsageRow.day == day,
                        )
                    )
                    if row is None:
                        row = UsageRow(key_id=key_id, model=model, version=version, day=day, cost=0.0)
                        for f in _FIELDS:
                            setattr(row, f, 0)
                        s.add(row)
                    for f in _FIELDS:
                        setattr(row, f, getattr(row, f) + getattr(rec, f))
                    row.cost = row.cost + rec.cost
                s.commit()
        except Exception:
            with self._lock:  # keep the counts for the next flush rather than lose them
                for k, rec in pending.items():
                    cur = self._pending.setdefault(k, UsageRecord(*k))
                    for f in _FIELDS:
                        setattr(cur, f, getattr(cur, f) + getattr(rec, f))
                    cur.cost += rec.cost
            raise
        return len(pending)

    def report(
        self,
        *,
        key_id: str | None = None,
        model: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[UsageRecord]:
        """Usage rows (flushed ones) filtered by key, model and day range (YYYY-MM-DD, inclusive)."""
        stmt = select(UsageRow).order_by(UsageRow.day, UsageRow.key_id, UsageRow.model, UsageRow.version)
        if key_id:
            stmt = stmt.where(UsageRow.key_id == key_id)
        if model:
            stmt = stmt.where(UsageRow.model == model)
        if since:
            stmt = stmt.where(UsageRow.day >= since)
        if until:
            stmt = stmt.where(UsageRow.day <= until)
        with self._sessions() as s:
            return [
                UsageRecord(
                    r.key_id,
                    r.model,
                    r.version,
                    r.day,
                    r.requests,
                    r.input_tokens,
                    r.output_tokens,
                    r.rows,
                    r.errors,
                    round(r.cost, 6),
                )
                for r in s.scalars(stmt)
            ]


def to_csv(records: list[UsageRecord]) -> str:
    """Usage as CSV with a header line (what `modelhost usage --csv` and `?format=csv` return)."""
    buf = io.StringIO()
    names = list(UsageRecord.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow(r.to_dict())
    return buf.getvalue()
