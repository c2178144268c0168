"""/v1/translations with the Bergamot en↔pt models."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_batch_en_to_pt(task_client: TestClient) -> None:
    r = task_client.post(
        "/v1/translations",
        json={
            "model": "translate",
            "source": "en",
            "target": "pt",
            "text": ["The cat is on the table.", "I like to read books."],
        },
    )
    assert r.status_code == 200, r.text
    out = [d["text"].lower() for d in r.json()["data"]]
    assert "gato" in out[0] and "mesa" in out[0]
    assert "livros" in out[1] and "ler" in out[1]


def test_pt_to_en_and_single_text(task_client: TestClient) -> None:
    r = task_client.post(
        "/v1/translations",
        json={"model": "translate", "source": "pt", "target": "en", "text": "Bom dia, amigo."},
    )
    assert r.status_code == 200, r.text
    assert "friend" in r.json()["data"][0]["text"].lower()


def test_bad_requests_are_400_in_openai_shape(task_client: TestClient) -> None:
    def post(**body: object):  # type: ignore[no-untyped-def]
        return task_client.post("/v1/translations", json={"model": "translate", "source": "en", **body})

    r = post(target="de", text="hello")
    assert r.status_code == 400
    assert "en-de" in r.json()["error"]["message"] and "en-pt" in r.json()["error"]["message"]
    r = post(target="pt", text=["ok", "  "])
    assert r.status_code == 400 and "empty" in r.json()["error"]["message"]
    r = post(target="pt", text=[])
    assert r.status_code == 400
    r = post(target="pt", text="hi", beam=4)
    assert r.status_code == 400 and "beam" in r.json()["error"]["message"]


def test_oip_v2_translation_uses_the_default_pair(task_client: TestClient) -> None:
    r = task_client.post(
        "/v2/models/translate/infer",
        json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["Good morning."]}]},
    )
    assert r.status_code == 200, r.text
    assert "bom dia" in r.json()["outputs"][0]["data"][0].lower()


def test_concurrent_translations_do_not_crash_the_server(task_client: TestClient) -> None:
    """Regression: concurrent calls into one Bergamot engine crashed the process (segfault)."""
    import threading

    results: list[str] = []
    body = {"model": "translate", "source": "en", "target": "pt", "text": ["The cat is on the table."] * 4}

    def call() -> None:
        r = task_client.post("/v1/translations", json=body)
        assert r.status_code == 200, r.text
        results.extend(d["text"] for d in r.json()["data"])

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 32 and all("gato" in t for t in results)
