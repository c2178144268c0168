"""Registry, aliases, deployments, canaries, keys, usage, audit, drift and status through the SDK,
sync and async, against the real app."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelhost import AsyncClient, Client
from modelhost.errors import Conflict, Forbidden, NotFound
from modelhost.sdk.types import AliasRecord, Deployment, KeyRecord, ModelRecord, VersionRecord
from tests.sdk.conftest import RunAsync

ROW = [[5.1, 3.5, 1.4, 0.2]]


def test_registry_reads_are_typed_and_still_read_like_dicts(sdk: Client) -> None:
    models = sdk.registered_models()
    assert [type(m) for m in models] == [ModelRecord] and models[0].name == "iris"
    assert models[0].aliases == {"production": 1, "staging": 2} and models[0]["latest_version"] == 2
    model = sdk.get_model("iris")
    assert model.latest_version == 2 and model.created_at.tzinfo is not None
    versions = sdk.versions("iris")
    assert [v.version for v in versions] == [1, 2] and [v.format for v in versions] == ["skops", "onnx"]
    assert versions[0].metrics == {"accuracy": 0.97} and versions[0]["aliases"] == ["production"]
    assert sdk.get_version("iris", 1).sha256 == versions[0].sha256
    assert {a.alias: a.version for a in sdk.aliases("iris")} == {"production": 1, "staging": 2}


def test_register_with_progress_then_promote_delete_and_roll_back(sdk: Client, iris_skops: Path) -> None:
    seen: list[tuple[int, int]] = []
    info = sdk.register(
        "iris",
        iris_skops,
        description="v3",
        metrics={"accuracy": 0.98},
        progress=lambda d, t: seen.append((d, t)),
    )
    assert isinstance(info, VersionRecord) and info.version == 3 and info.metrics == {"accuracy": 0.98}
    size = iris_skops.stat().st_size
    assert seen and seen[-1] == (size, size) and all(t == size for _, t in seen)
    moved = sdk.set_alias("iris", "production", 3, reason="promote", protect=True)
    assert isinstance(moved, AliasRecord) and moved.version == 3 and moved.protected
    assert sdk.infer("iris@production", ROW).model_version == "3"  # the alias move hot-applied
    with pytest.raises(Conflict) as exc_info:
        sdk.set_alias("iris", "production", 2)
    assert exc_info.value.status_code == 409 and "protected" in exc_info.value.message
    assert sdk.rollback_alias("iris", "production", reason="bad").version == 1
    history = sdk.alias_history("iris", "production")
    assert [(e.from_version, e.to_version) for e in history][-2:] in ([(1, 3), (3, 1)], [(3, 1), (1, 3)])
    assert sdk.delete_alias("iris", "staging") is None
    assert "staging" not in sdk.get_model("iris").aliases
    with pytest.raises(NotFound):
        sdk.alias_history("iris", "nope")


def test_deployment_and_canary(sdk: Client) -> None:
    dep = sdk.update_deployment("iris", max_batch_size=8, max_wait_ms=2)
    assert isinstance(dep, Deployment) and (dep.max_batch_size, dep.max_wait_ms, dep.workers) == (
        8,
        2.0,
        None,
    )
    dep = sdk.set_canary("iris", "production", 2, 25)
    assert dep.canaries["production"].version == 2 and dep.canaries["production"].percent == 25
    assert sdk.get_deployment("iris").canaries["production"]["percent"] == 25
    assert sdk.remove_canary("iris", "production").canaries == {}


def test_keys_usage_audit_status_and_drift(sdk: Client) -> None:
    created = sdk.create_key("svc", ["infer"], owner="team-a", limits={"rpm": 100})
    assert isinstance(created, KeyRecord) and created.key and created.key.startswith("mh_live_")
    assert sdk.get_key(created.key_id).owner == "team-a" and sdk.get_key(created.key_id).key is None
    with Client(sdk.url, api_key=created.key, http_client=sdk._http) as svc:
        assert svc.infer("iris", ROW)["predict"].tolist() == [0]
        with pytest.raises(Forbidden) as denied:  # an infer key is no admin key
            svc.registered_models()
        assert denied.value.status_code == 403 and "admin" in denied.value.message
    rotated = sdk.rotate_key(created.key_id)
    assert rotated.rotated_from == created.key_id and rotated.key != created.key
    assert sdk.revoke_key(rotated.key_id).revoked
    assert {k.key_id for k in sdk.list_keys(include_revoked=False)}.isdisjoint(
        {created.key_id, rotated.key_id}
    )
    rows = sdk.usage(key_id=created.key_id)
    assert [(r.model, r.requests) for r in rows] == [("iris", 1)]
    assert sdk.usage_csv(key_id=created.key_id).splitlines()[0].startswith("key_id,")
    actions = [e.action for e in sdk.audit(target=f"key:{created.key_id}")]
    assert "key.create" in actions and "key.rotate" in actions
    status = sdk.status()
    assert status.ready and {(m.model, m.version) for m in status.models} >= {("iris", 1)}
    report = sdk.drift("iris@production")
    assert (report.model, report.version, report.drifted) == ("iris", 1, False) and "reference" in str(
        report.note
    )
    assert "modelhost_requests_total" in sdk.metrics()


def test_async_client_registry_keys_and_rollout(run_async: RunAsync, iris_skops: Path) -> None:
    async def scenario(c: AsyncClient) -> None:
        assert [m.name for m in await c.registered_models()] == ["iris"]
        seen: list[int] = []
        info = await c.register("iris", iris_skops, progress=lambda d, t: seen.append(d))
        assert info.version == 3 and seen[-1] == iris_skops.stat().st_size
        assert (await c.set_alias("iris", "staging", 3)).version == 3
        assert (await c.infer("iris@staging", np.array(ROW))).model_version == "3"
        assert (await c.rollback_alias("iris", "staging")).version == 2
        assert [e.to_version for e in await c.alias_history("iris", "staging")][-1] in (2, 3)
        assert (await c.update_deployment("iris", workers=0)).workers == 0
        assert (await c.set_canary("iris", "production", 2, 10)).canaries["production"].percent == 10
        assert (await c.remove_canary("iris", "production")).canaries == {}
        key = await c.create_key("async", ["infer:iris*"])
        assert (await c.revoke_key(key.key_id)).revoked
        assert any(e.action == "key.revoke" for e in await c.audit(action="key.revoke"))
        assert (await c.status()).ready
        with pytest.raises(NotFound):
            await c.get_model("nope")
        await c.delete_alias("iris", "staging")
        assert "staging" not in (await c.get_model("iris")).aliases

    run_async(scenario)
