"""Gateway commands: ``init``, ``keys``, ``usage``, ``audit`` and ``encryption``.

They work on the registry database directly (like the registry commands), as the operator of
this machine; every change is written to the audit log with actor ``cli``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from modelhost.cli.common import JsonOpt, err, json_mode, out, print_json, registry, run, settings
from modelhost.errors import InvalidInput

if TYPE_CHECKING:
    from modelhost.gateway.keys import KeyService

keys_app = typer.Typer(help="API keys: create, list, show, revoke, rotate.", no_args_is_help=True)
encryption_app = typer.Typer(help="Encryption of artifacts at rest.", no_args_is_help=True)


def _keys() -> KeyService:
    from modelhost.gateway.keys import KeyService

    return KeyService(registry().session, settings())


def _show_secret(raw: str, as_json: bool, info: dict[str, object]) -> None:
    if json_mode(as_json):
        print_json({"key": raw, **info})
        return
    out.print(f"key id [bold]{info['key_id']}[/] ({info['name']}, scopes {', '.join(info['scopes'])})")  # type: ignore[arg-type]
    out.print("The key is shown only now; store it safely:", highlight=False)
    print(raw)


def init(as_json: JsonOpt = False) -> None:
    """Create the registry and, if there is no active admin key, the first admin key (printed once)."""

    def body() -> None:
        raw = _keys().ensure_admin_key("init")
        if raw is None:
            err.print("an active admin key already exists; create more with 'modelhost keys create'")
            if json_mode(as_json):
                print_json({"key": None})
            return
        from modelhost.gateway.keys import KeyService

        key_id = KeyService.key_id_of(raw)
        _show_secret(raw, as_json, {"key_id": key_id, "name": "admin", "scopes": ["admin"]})

    run(body)


def _parse_expiry(expires: str | None) -> datetime | None:
    if expires is None:
        return None
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if expires[-1:] in units and expires[:-1].isdigit():
        return datetime.now(UTC) + timedelta(**{units[expires[-1]]: int(expires[:-1])})
    try:
        when = datetime.fromisoformat(expires)
    except ValueError:
        raise InvalidInput(f"--expires takes 30d, 12h, 90m or an ISO time, got {expires!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", "-n", help="What the key is for (shown in listings).")],
    scope: Annotated[
        list[str],
        typer.Option(help="admin | models:read | models:load | infer | infer:<model pattern> (repeatable)."),
    ],
    owner: Annotated[str, typer.Option(help="Who the key belongs to.")] = "",
    expires: Annotated[str | None, typer.Option(help="Expiry: 30d, 12h, 90m or an ISO 8601 time.")] = None,
    limits: Annotated[
        str | None,
        typer.Option(
            help='JSON limits, e.g. \'{"rpm": 600, "requests_per_day": 10000, "budget_per_month": 50}\'.'
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key; the key is printed once and never stored in clear."""

    def body() -> None:
        try:
            parsed = json.loads(limits) if limits else {}
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--limits is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise InvalidInput("--limits must be a JSON object")
        key, raw = _keys().create(
            name, scope, owner=owner, expires_at=_parse_expiry(expires), limits=parsed, actor="cli"
        )
        _show_secret(raw, as_json, key.to_dict())

    run(body)


@keys_app.command("list")
def keys_list(
    include_revoked: Annotated[bool, typer.Option("--all/--active", help="Include revoked keys.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """List keys (ids, names, scopes, state; never the secrets)."""

    def body() -> None:
        keys = _keys().list(include_revoked=include_revoked)
        if json_mode(as_json):
            print_json([k.to_dict() for k in keys])
            return
        table = Table("key id", "name", "owner", "scopes", "state", "expires", "last used")
        now = datetime.now(UTC)
        for k in keys:
            state = (
                "revoked"
                if k.revoked_at
                else ("expired" if k.expires_at and k.expires_at <= now else "active")
            )
            table.add_row(
                k.key_id,
                k.name,
                k.owner,
                " ".join(k.scopes),
                state,
                k.expires_at.isoformat(timespec="seconds") if k.expires_at else "-",
                k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "-",
            )
        out.print(table)

    run(body)


@keys_app.command("show")
def keys_show(key_id: Annotated[str, typer.Argument(help="The key id.")], as_json: JsonOpt = False) -> None:
    """Show one key (never its secret)."""
    from modelhost.cli.registry_cmds import show_record

    info = run(lambda: _keys().get(key_id)).to_dict()
    print_json(info) if json_mode(as_json) else show_record(info)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (mh_live_<key id>_...).")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key: requests with it are refused (401)."""
    key = run(lambda: _keys().revoke(key_id, actor="cli"))
    if json_mode(as_json):
        print_json(key.to_dict())
    else:
        out.print(f"revoked key {key_id}")


@keys_app.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="The key id to replace.")], as_json: JsonOpt = False
) -> None:
    """Replace a key by a new one with the same name, scopes and limits; the old one is revoked."""

    def body() -> None:
        key, raw = _keys().rotate(key_id, actor="cli")
        _show_secret(raw, as_json, key.to_dict())

    run(body)


def usage(
    key_id: Annotated[str | None, typer.Option("--key", help="Only this key id.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    since: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD.")] = None,
    until: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD.")] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV (for spreadsheets and billing).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Usage per key, model, version and day: requests, tokens, rows, errors, cost."""
    from modelhost.gateway.metering import Meter, to_csv

    def body() -> None:
        for name, value in (("--since", since), ("--until", until)):
            if value is not None:
                try:
                    datetime.strptime(value, "%Y-%m-%d")
                except ValueError:
                    raise InvalidInput(f"{name} takes a day as YYYY-MM-DD, got {value!r}") from None
        records = Meter(registry().session).report(key_id=key_id, model=model, since=since, until=until)
        if csv:
            print(to_csv(records), end="")
        elif json_mode(as_json):
            print_json([r.to_dict() for r in records])
        else:
            table = Table(
                "day", "key id", "model", "version", "requests", "in tok", "out tok", "rows", "errors", "cost"
            )
            for r in records:
                table.add_row(
                    r.day, r.key_id, r.model, r.version, str(r.requests), str(r.input_tokens),
                    str(r.output_tokens), str(r.rows), str(r.errors), f"{r.cost:.6g}",
                )  # fmt: skip
            out.print(table)

    run(body)


def audit(
    actor: Annotated[str | None, typer.Option(help="Only this actor (cli, key:<id>(name), ...).")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action (key.create, alias.set, ...).")] = None,
    target: Annotated[str | None, typer.Option(help="Target prefix (model:iris, key:).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The audit log: who registered, promoted, rolled back or deleted what, and key changes."""
    from modelhost.gateway.audit import AuditLog

    def body() -> None:
        events = AuditLog(registry().session).query(actor=actor, action=action, target=target, limit=limit)
        if json_mode(as_json):
            print_json([e.to_dict() for e in events])
            return
        table = Table("at", "actor", "action", "target", "details")
        for e in events:
            table.add_row(
                e.at.isoformat(timespec="seconds"), e.actor, e.action, e.target, json.dumps(e.details)
            )
        out.print(table)

    run(body)


@encryption_app.command("new-key")
def encryption_new_key() -> None:
    """Print a new random key for MODELHOST_ENCRYPTION_KEY (or a line of the key file)."""
    from modelhost.gateway.crypto import generate_key

    print(generate_key())


@encryption_app.command("rewrap")
def encryption_rewrap() -> None:
    """Key rotation: rewrap every encrypted local artifact's data key with the current key."""
    from modelhost.gateway.crypto import is_encrypted

    def body() -> None:
        store = registry().store
        if store.cipher is None:
            raise InvalidInput("no encryption key is configured (MODELHOST_ENCRYPTION_KEY or _KEY_FILE)")
        if not store.is_local:
            raise InvalidInput("rewrap works on a local artifact store; run it where the store is mounted")
        done = seen = 0
        for path in Path(store.root, "objects").rglob("*.enc"):
            if is_encrypted(path):
                seen += 1
                done += store.cipher.rewrap(path)
        out.print(f"rewrapped {done} of {seen} encrypted artifacts with key {store.cipher.current}")

    run(body)


def register(app: typer.Typer) -> None:
    """Add the gateway commands to the CLI (one line in cli/__init__.py)."""
    app.command()(init)
    app.add_typer(keys_app, name="keys")
    app.command()(usage)
    app.command()(audit)
    app.add_typer(encryption_app, name="encryption")
