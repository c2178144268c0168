"""API keys: never stored in clear, verified in constant time, scoped, revocable, rotatable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from modelhost.config import Settings
from modelhost.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from modelhost.gateway.keys import KEY_RE, KeyService
from modelhost.gateway.tables import ApiKeyRow
from modelhost.registry import Registry


def test_keys_are_never_stored_in_clear(keys: KeyService, registry: Registry, settings: Settings) -> None:
    key, raw = keys.create("svc", ["infer"])
    match = KEY_RE.match(raw)
    assert match is not None and match.group(1) == key.key_id
    secret = raw[len("mh_live_") + 13 :]
    assert len(secret) >= 43  # 256 random bits, base64url
    with registry.session() as s:
        row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == key.key_id))
        assert row is not None
        stored = " ".join(str(getattr(row, c.key)) for c in ApiKeyRow.__table__.columns)
    assert raw not in stored and secret not in stored and row.digest == keys.digest(raw)
    db_bytes = b"".join(p.read_bytes() for p in Path(settings.home).glob("registry.db*"))
    assert raw.encode() not in db_bytes and secret.encode() not in db_bytes
    assert "key" not in key.to_dict() and keys.verify(raw).key_id == key.key_id


def test_two_keys_differ_and_the_secret_is_random(keys: KeyService) -> None:
    raws = {keys.create(f"k{i}", ["infer"])[1] for i in range(5)}
    assert len(raws) == 5


@pytest.mark.parametrize(
    "presented, message",
    [
        ("", "malformed"),
        ("sk-openai-style-key", "malformed"),
        ("mh_live_0123456789ab_" + "A" * 43, "invalid API key"),
    ],
)
def test_bad_keys_are_rejected(keys: KeyService, presented: str, message: str) -> None:
    with pytest.raises(Unauthorized, match=message):
        keys.verify(presented)


def test_a_tampered_secret_with_a_real_id_is_rejected(keys: KeyService) -> None:
    _, raw = keys.create("svc", ["infer"])
    flipped = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    with pytest.raises(Unauthorized, match="invalid API key"):
        keys.verify(flipped)


def test_revoked_key_is_rejected_at_once_even_when_cached(keys: KeyService) -> None:
    key, raw = keys.create("svc", ["infer"])
    assert keys.verify(raw).key_id == key.key_id and keys.cached(raw) is not None
    keys.revoke(key.key_id, actor="test")
    assert keys.cached(raw) is None
    with pytest.raises(Unauthorized, match="revoked"):
        keys.verify(raw)


def test_revocation_by_another_process_applies_within_the_cache_time(
    settings: Settings, registry: Registry
) -> None:
    now = [0.0]
    server = KeyService(registry.session, settings, clock=lambda: now[0])
    cli = KeyService(registry.session, settings)
    key, raw = cli.create("svc", ["infer"])
    assert server.verify(raw).key_id == key.key_id
    cli.revoke(key.key_id)
    assert server.cached(raw) is not None  # still cached in the server...
    now[0] += settings.key_cache_s + 0.01
    assert server.cached(raw) is None  # ...until the cache time has passed
    with pytest.raises(Unauthorized, match="revoked"):
        server.verify(raw)


def test_expired_key_is_rejected(keys: KeyService, registry: Registry) -> None:
    key, raw = keys.create("svc", ["infer"], expires_at=datetime.now(UTC) + timedelta(hours=1))
    with registry.session() as s:
        row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == key.key_id))
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        s.commit()
    with pytest.raises(Unauthorized, match="expired"):
        keys.verify(raw)
    with pytest.raises(InvalidInput, match="future"):
        keys.create("old", ["infer"], expires_at=datetime.now(UTC) - timedelta(days=1))


def test_rotation_revokes_the_old_key_and_keeps_scopes_and_limits(keys: KeyService) -> None:
    old, old_raw = keys.create("svc", ["infer:iris*"], limits={"rpm": 5})
    new, new_raw = keys.rotate(old.key_id, actor="test")
    assert new.key_id != old.key_id and new.rotated_from == old.key_id
    assert new.scopes == ("infer:iris*",) and new.limits == {"rpm": 5}
    assert keys.verify(new_raw).key_id == new.key_id
    with pytest.raises(Unauthorized, match="revoked"):
        keys.verify(old_raw)
    with pytest.raises(InvalidInput, match="revoked"):
        keys.rotate(old.key_id)
    with pytest.raises(NotFound):
        keys.revoke("ffffffffffff")


def test_scopes(keys: KeyService) -> None:
    iris_only = keys.create("a", ["infer:iris*"])[0]
    assert iris_only.can_infer("iris") and iris_only.can_infer("iris@production")
    assert iris_only.can_infer("iris-v2") and not iris_only.can_infer("digits")
    with pytest.raises(Forbidden, match="digits"):
        iris_only.require_infer("digits@production")
    assert iris_only.can_read("iris") and not iris_only.can_read()
    reader = keys.create("r", ["models:read"])[0]
    assert reader.can_read() and not reader.can_infer("iris")
    with pytest.raises(Forbidden):
        reader.require_load()
    admin = keys.create("adm", ["admin"])[0]
    assert admin.can_infer("anything") and admin.can_read() and admin.is_admin
    for bad in ([], ["root"], ["infer:"], ["infer:a b"]):
        with pytest.raises(InvalidInput, match="scope"):
            keys.create("bad", bad)
    for limits in ({"rpm": -1}, {"rpm": 1.5}, {"rmp": 3}, {"models": {"iris": {"nope": 1}}}):
        with pytest.raises(InvalidInput):
            keys.create("bad", ["infer"], limits=limits)


def test_first_admin_key_is_created_once(keys: KeyService) -> None:
    raw = keys.ensure_admin_key()
    assert raw is not None and keys.verify(raw).is_admin
    assert keys.ensure_admin_key() is None
    keys.revoke(KeyService.key_id_of(raw))
    assert keys.ensure_admin_key() is not None  # no active admin left: a new one


def test_server_secret_file_is_private_and_stable(settings: Settings, registry: Registry) -> None:
    a = KeyService(registry.session, settings)
    _, raw = a.create("svc", ["infer"])
    secret_file = Path(settings.home) / "gateway.secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert KeyService(registry.session, settings).verify(raw).name == "svc"
    other = settings.model_copy(update={"key_secret": "another-secret"})
    with pytest.raises(Unauthorized):
        KeyService(registry.session, other).verify(raw)


def test_last_used_is_recorded(keys: KeyService) -> None:
    key, raw = keys.create("svc", ["infer"])
    assert key.last_used_at is None
    keys.verify(raw)
    used = keys.get(key.key_id).last_used_at
    assert used is not None and abs((datetime.now(UTC) - used).total_seconds()) < 60
