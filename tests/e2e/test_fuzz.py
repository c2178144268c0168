"""Property-based fuzzing of every REST operation in /openapi.json (schemathesis + hypothesis),
against a real server of its own: no 5xx, and status codes, content types and bodies as the schema
declares — with the admin token and without."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.specs.openapi import checks as oas_checks  # noqa: E402

from .conftest import Server, run_server  # noqa: E402

pytestmark = pytest.mark.e2e
CHECKS = [
    schemathesis.checks.not_a_server_error,
    oas_checks.status_code_conformance,
    oas_checks.content_type_conformance,
    oas_checks.response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("fuzz-home"), MODELHOST_PREDICTION_LOG_RATE="0") as running:
        yield running


@pytest.mark.parametrize("auth", [True, False], ids=["admin", "anonymous"])
def test_every_operation_conforms(fuzz_server: Server, auth: bool) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_server.admin_key}"} if auth else {}
    failures: list[str] = []
    cases = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def run(case) -> None:  # type: ignore[no-untyped-def]
            nonlocal cases
            cases += 1
            try:
                case.call_and_validate(headers=headers, checks=CHECKS)
            except Exception as exc:  # collected (check failures are exception groups): one report per case
                failures.append(f"{case.method} {case.path}: {str(exc)[:400]}")

        run()
    assert cases >= 300
    assert not failures, "\n".join(failures[:10])
