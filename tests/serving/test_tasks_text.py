"""Summarization (extractive with MiniLM, abstractive with SmolLM2) and zero-shot classification."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from modelhost.dataplane.summarize import centrality_ranking, split_sentences

ARTICLE = (
    "The city council approved a new budget for public transport on Monday. "
    "The budget adds forty electric buses and extends two tram lines to the suburbs. "
    "My neighbour's cat likes to sleep on warm car roofs. "
    "Council members said the transport plan will cut commuting times and emissions. "
    "Construction of the tram extensions starts next spring and the buses arrive in the summer."
)


def test_split_sentences_and_centrality() -> None:
    assert split_sentences("One. Two! Three?\n\nFour") == ["One.", "Two!", "Three?", "Four"]
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.95, 0.05]])
    assert list(centrality_ranking(vectors))[-1] == 2  # the odd one out is least central


def test_extractive_summary_keeps_central_sentences_in_order(llm_client: TestClient) -> None:
    r = llm_client.post("/v1/summaries", json={"model": "minilm", "text": ARTICLE, "sentences": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "extractive" and body["sentence_count"] == 5
    idx = body["sentence_indexes"]
    assert len(idx) == 2 and idx == sorted(idx) and 2 not in idx  # the cat is off topic
    assert "cat" not in body["summary"]


def test_abstractive_summary_uses_the_llm(llm_client: TestClient) -> None:
    r = llm_client.post(
        "/v1/summaries",
        json={"model": "smollm2", "text": ARTICLE, "mode": "abstractive", "sentences": 1, "max_tokens": 24},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "abstractive" and body["summary"].strip()
    assert body["summary"] not in ARTICLE  # generated, not extracted


def test_summary_bad_requests(llm_client: TestClient) -> None:
    r = llm_client.post("/v1/summaries", json={"model": "minilm", "text": "   "})
    assert r.status_code == 400 and "empty" in r.json()["error"]["message"]
    r = llm_client.post("/v1/summaries", json={"model": "smollm2", "text": ARTICLE})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"  # extractive needs embeddings
    r = llm_client.post(
        "/v1/summaries",
        json={"model": "smollm2", "text": ARTICLE, "mode": "abstractive", "prompt": "no slot"},
    )
    assert r.status_code == 400 and "{text}" in r.json()["error"]["message"]


def test_zero_shot_classification_with_descriptions(llm_client: TestClient) -> None:
    plane = llm_client.app.state.plane  # type: ignore[attr-defined]
    batched = [
        e.batcher.stats.rows for e in plane.repository.loaded() if e.info.model == "minilm" and e.batcher
    ]
    r = llm_client.post(
        "/v1/classifications",
        json={
            "model": "minilm",
            "input": [
                "The striker scored twice in the final minutes of the match.",
                "Shares fell 3% after earnings.",
            ],
            "labels": {
                "sports": "a text about sports, games, teams and players",
                "finance": "a text about money, markets, stocks and companies",
                "cooking": "a text about food, recipes and cooking",
            },
        },
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["label"] for d in data] == ["sports", "finance"]
    assert all(abs(sum(d["scores"].values()) - 1.0) < 1e-3 for d in data)
    # the texts and the label descriptions went through the model's adaptive batcher
    entry = next(e for e in plane.repository.loaded() if e.info.model == "minilm")
    assert entry.batcher is not None and entry.batcher.stats.rows == (batched[0] if batched else 0) + 5


def test_zero_shot_bad_requests(llm_client: TestClient) -> None:
    r = llm_client.post("/v1/classifications", json={"model": "minilm", "input": "x", "labels": ["only"]})
    assert r.status_code == 400 and "labels" in r.json()["error"]["message"]
    r = llm_client.post("/v1/classifications", json={"model": "minilm", "input": [""], "labels": ["a", "b"]})
    assert r.status_code == 400


def test_few_shot_head_trained_from_csv_and_served_as_a_graph(llm_client: TestClient, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from modelhost.fewshot import train_text_classifier

    rows = [
        ("I love this product, it works perfectly", "positive"),
        ("Fantastic service and a friendly team", "positive"),
        ("Great value, I would buy it again", "positive"),
        ("Absolutely wonderful experience", "positive"),
        ("Terrible quality, it broke after a day", "negative"),
        ("The worst support I have ever had", "negative"),
        ("Awful, a complete waste of money", "negative"),
        ("I am very disappointed and angry", "negative"),
    ]
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text("text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in rows))
    registry = llm_client.app.state.plane.registry  # type: ignore[attr-defined]
    trained = train_text_classifier(registry, "sentiment", csv_path, "minilm")
    assert trained.classes == ("negative", "positive") and trained.train_accuracy == 1.0
    r = llm_client.post(
        "/v2/models/sentiment/infer",
        json={
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [2],
                    "data": ["What a delightful purchase, very happy", "Broken on arrival, horrible"],
                }
            ]
        },
    )
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["label"]["data"] == ["positive", "negative"]
    assert out["probabilities"]["shape"] == [2, 2]
    assert [s["step"] for s in r.json()["parameters"]["steps"]] == ["embed", "head"]
