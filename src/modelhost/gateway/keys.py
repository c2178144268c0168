"""API keys: creation, verification, scopes, revocation and rotation.

A key looks like ``mh_live_<key id>_<secret>``: the key id (12 hex digits) is public and shown in
listings; the secret is 256 random bits. Only HMAC-SHA256(server secret, key) is stored, and it is
compared in constant time; the key itself is shown once, on creation.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelhost.config import Settings
from modelhost.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from modelhost.gateway.audit import record as audit
from modelhost.gateway.tables import ApiKeyRow
from modelhost.registry.tables import utcnow

PREFIX = "mh_live_"
KEY_RE = re.compile(r"^mh_live_([0-9a-f]{12})_([A-Za-z0-9_-]{20,128})$")
SCOPE_RE = re.compile(r"^(admin|models:read|models:load|infer|infer:[A-Za-z0-9._*?\[\]-]{1,128})$")
LIMIT_NAMES = (
    "rpm",
    "tpm",
    "concurrency",
    "requests_per_day",
    "requests_per_month",
    "tokens_per_day",
    "tokens_per_month",
    "budget_per_day",
    "budget_per_month",
    "budget_total",
)
# last_used_at is written at most this often per key, so verification stays off the database.
_TOUCH_EVERY_S = 60.0


@dataclass(frozen=True)
class ApiKey:
    """A verified key (never the secret). ``limits`` may hold per-model limits under ``"models"``."""

    key_id: str
    name: str
    owner: str = ""
    scopes: tuple[str, ...] = ()
    limits: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    created_at: datetime | None = None
    created_by: str = ""
    last_used_at: datetime | None = None
    rotated_from: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    @property
    def actor(self) -> str:
        """How this key appears in the audit log and the registry's created_by/updated_by."""
        return f"key:{self.key_id}({self.name})"

    def can_infer(self, model: str) -> bool:
        name = model.partition("@")[0]
        for scope in self.scopes:
            if scope in ("admin", "infer"):
                return True
            if scope.startswith("infer:") and fnmatch.fnmatchcase(name, scope[6:]):
                return True
        return False

    def can_read(self, model: str | None = None) -> bool:
        if "models:read" in self.scopes or self.is_admin:
            return True
        return model is not None and self.can_infer(model)

    def require_infer(self, model: str) -> None:
        """Raise Forbidden (403) unless this key may run inference on ``model``."""
        if not self.can_infer(model):
            raise Forbidden(f"API key {self.key_id} may not use model '{model.partition('@')[0]}'")

    def require_load(self) -> None:
        """Loading and unloading models (OIP repository extension): scope models:load or admin."""
        if not (self.is_admin or "models:load" in self.scopes):
            raise Forbidden(f"API key {self.key_id} may not load or unload models (scope models:load)")

    def require_read(self, model: str | None = None) -> None:
        if not self.can_read(model):
            what = f"model '{model}'" if model else "the model list"
            raise Forbidden(f"API key {self.key_id} may not read {what} (scope models:read)")

    def to_dict(self) -> dict[str, Any]:
        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d is not None else None

        return {
            "key_id": self.key_id,
            "name": self.name,
            "owner": self.owner,
            "scopes": list(self.scopes),
            "limits": self.limits,
            "expires_at": iso(self.expires_at),
            "revoked": self.revoked_at is not None,
            "revoked_at": iso(self.revoked_at),
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "last_used_at": iso(self.last_used_at),
            "rotated_from": self.rotated_from,
        }


# The caller in auth mode "none" (loopback only, i.e. the local operator): may read, infer and
# load/unload models, but never use the admin API (registry writes, keys), which needs an admin key.
ANONYMOUS = ApiKey(key_id="anonymous", name="anonymous", scopes=("models:read", "models:load", "infer"))


def check_scopes(scopes: list[str]) -> tuple[str, ...]:
    if not scopes:
        raise InvalidInput(
            "a key needs at least one scope: admin, models:read, models:load, infer or infer:<model pattern>"
        )
    for scope in scopes:
        if not SCOPE_RE.match(scope):
            raise InvalidInput(
                f"invalid scope {scope!r}: use admin, models:read, models:load, infer (every model) or "
                "infer:<model name or pattern such as iris* >"
            )
    return tuple(dict.fromkeys(scopes))


def check_limits(limits: dict[str, Any] | None, *, nested: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in (limits or {}).items():
        if name == "models" and nested:
            if not isinstance(value, dict):
                raise InvalidInput("limits.models must map model patterns to limits")
            out["models"] = {str(p): check_limits(v, nested=False) for p, v in value.items()}
            continue
        if name not in LIMIT_NAMES:
            raise InvalidInput(f"unknown limit {name!r}; known: {', '.join(LIMIT_NAMES)}")
        is_budget = name.startswith("budget")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InvalidInput(f"limit {name} must be a non-negative number, got {value!r}")
        if not is_budget and value != int(value):
            raise InvalidInput(f"limit {name} must be a whole number, got {value!r}")
        out[name] = float(value) if is_budget else int(value)
    return out


def server_secret(settings: Settings) -> bytes:
    """The HMAC secret: MODELHOST_KEY_SECRET, else a random one made once in $MODELHOST_HOME (0600)."""
    if settings.key_secret:
        return settings.key_secret.encode()
    path: Path = settings.home / "gateway.secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_hex(32).encode())
    return path.read_bytes().strip()


def _from_row(r: ApiKeyRow) -> ApiKey:
    return ApiKey(
        key_id=r.key_id,
        name=r.name,
        owner=r.owner,
        scopes=tuple(r.scopes),
        limits=dict(r.limits),
        expires_at=r.expires_at,
        revoked_at=r.revoked_at,
        created_at=r.created_at,
        created_by=r.created_by,
        last_used_at=r.last_used_at,
        rotated_from=r.rotated_from,
    )


class KeyService:
    """Keys in the registry database, with a short in-process cache of verified keys."""

    def __init__(
        self,
        sessions: Callable[[], Session],
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._secret = server_secret(settings)
        self._cache_s = settings.key_cache_s
        self._clock = clock
        self._cache: dict[str, tuple[ApiKey, float]] = {}
        self._touched: dict[str, float] = {}

    @staticmethod
    def key_id_of(raw: str) -> str:
        """The public key id inside a key string (for display)."""
        match = KEY_RE.match(raw)
        if match is None:
            raise InvalidInput("malformed API key: expected 'mh_live_<id>_<secret>'")
        return match.group(1)

    def digest(self, raw: str) -> str:
        return hmac.new(self._secret, raw.encode(), hashlib.sha256).hexdigest()

    # --- administration ------------------------------------------------------------------------

    def create(
        self,
        name: str,
        scopes: list[str],
        *,
        owner: str = "",
        expires_at: datetime | None = None,
        limits: dict[str, Any] | None = None,
        actor: str = "",
        rotated_from: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key; returns it and the secret key string, which is not retrievable later."""
        if not name or len(name) > 128:
            raise InvalidInput("a key needs a name of 1-128 characters")
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= utcnow()):
            raise InvalidInput("expires_at must be a timezone-aware time in the future")
        checked_scopes, checked_limits = check_scopes(scopes), check_limits(limits)
        key_id = secrets.token_hex(6)
        raw = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        with self._sessions() as s:
            row = ApiKeyRow(
                key_id=key_id,
                name=name,
                owner=owner,
                digest=self.digest(raw),
                scopes=list(checked_scopes),
                limits=checked_limits,
                expires_at=expires_at,
                created_at=utcnow(),
                created_by=actor,
                rotated_from=rotated_from,
            )
            s.add(row)
            audit(s, actor, "key.create", f"key:{key_id}", name=name, scopes=list(checked_scopes))
            s.commit()
            return _from_row(row), raw

    def _row(self, s: Session, key_id: str) -> ApiKeyRow:
        row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id))
        if row is None:
            raise NotFound(f"no API key with id '{key_id}'")
        return row

    def get(self, key_id: str) -> ApiKey:
        with self._sessions() as s:
            return _from_row(self._row(s, key_id))

    def list(self, *, include_revoked: bool = True) -> list[ApiKey]:
        with self._sessions() as s:
            stmt = select(ApiKeyRow).order_by(ApiKeyRow.id)
            if not include_revoked:
                stmt = stmt.where(ApiKeyRow.revoked_at.is_(None))
            return [_from_row(r) for r in s.scalars(stmt)]

    def revoke(self, key_id: str, *, actor: str = "") -> ApiKey:
        with self._sessions() as s:
            row = self._row(s, key_id)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                audit(s, actor, "key.revoke", f"key:{key_id}", name=row.name)
                s.commit()
            key = _from_row(row)
        self.invalidate(key_id)
        return key

    def rotate(self, key_id: str, *, actor: str = "") -> tuple[ApiKey, str]:
        """Replace a key by a new one with the same name, scopes and limits; the old one is revoked."""
        old = self.get(key_id)
        if old.revoked_at is not None:
            raise InvalidInput(f"key '{key_id}' is revoked; create a new key instead")
        new, raw = self.create(
            old.name,
            list(old.scopes),
            owner=old.owner,
            expires_at=old.expires_at if old.expires_at and old.expires_at > utcnow() else None,
            limits=old.limits,
            actor=actor,
            rotated_from=key_id,
        )
        self.revoke(key_id, actor=actor)
        with self._sessions() as s:
            audit(s, actor, "key.rotate", f"key:{key_id}", new_key_id=new.key_id)
            s.commit()
        return new, raw

    def has_active_admin(self) -> bool:
        now = utcnow()
        return any(
            k.is_admin and k.revoked_at is None and (k.expires_at is None or k.expires_at > now)
            for k in self.list(include_revoked=False)
        )

    def ensure_admin_key(self, actor: str = "init") -> str | None:
        """Create the first admin key when none is active; returns it (to print once) or None."""
        if self.has_active_admin():
            return None
        return self.create("admin", ["admin"], owner="admin", actor=actor)[1]

    # --- verification ----------------------------------------------------------------------------

    def invalidate(self, key_id: str | None = None) -> None:
        if key_id is None:
            self._cache.clear()
            return
        for digest in [d for d, (k, _) in self._cache.items() if k.key_id == key_id]:
            del self._cache[digest]

    def cached(self, raw: str) -> ApiKey | None:
        """The verified key from the cache, or None (then call ``verify``, which reads the database)."""
        hit = self._cache.get(self.digest(raw))
        if hit is None or hit[1] <= self._clock():
            return None
        key = hit[0]
        if key.expires_at is not None and key.expires_at <= utcnow():
            return None
        return key

    def verify(self, raw: str) -> ApiKey:
        """Check a presented key: format, known id, HMAC match, not revoked, not expired."""
        match = KEY_RE.match(raw)
        if match is None:
            raise Unauthorized("malformed API key: expected 'mh_live_<id>_<secret>'")
        key_id = match.group(1)
        digest = self.digest(raw)
        now = utcnow()
        with self._sessions() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id))
            # compare even when the id is unknown, so timing does not tell which ids exist
            expected = row.digest if row is not None else "0" * 64
            if not hmac.compare_digest(expected, digest) or row is None:
                raise Unauthorized("invalid API key")
            if row.revoked_at is not None:
                raise Unauthorized(f"API key {key_id} was revoked")
            if row.expires_at is not None and row.expires_at <= now:
                raise Unauthorized(f"API key {key_id} expired at {row.expires_at.isoformat()}")
            mono = self._clock()
            if mono - self._touched.get(key_id, -_TOUCH_EVERY_S) >= _TOUCH_EVERY_S:
                row.last_used_at = now
                s.commit()
                self._touched[key_id] = mono
            key = _from_row(row)
        if self._cache_s > 0:
            self._cache[digest] = (key, self._clock() + self._cache_s)
        return key
