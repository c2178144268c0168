"""The OpenAI-compatible routes, in process, on SmolLM2-135M-Instruct and all-MiniLM-L6-v2."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

CHAT = [{"role": "user", "content": "What is the capital of France?"}]


def events(text: str) -> list[Any]:
    """The SSE ``data:`` payloads, JSON-decoded except the final [DONE]."""
    out: list[Any] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        payload = block[len("data: ") :]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


def test_models_lists_llm_and_embeddings_by_name_and_alias(llm_client: TestClient) -> None:
    ids = {m["id"] for m in llm_client.get("/v1/models").json()["data"]}
    assert {"smollm2", "smollm2@production", "minilm", "minilm@production"} <= ids
    assert llm_client.get("/v1/models/smollm2@production").json()["id"] == "smollm2@production"
    assert error_of(llm_client.get("/v1/models/nope"), 404)["param"] == "model"


@pytest.fixture(scope="module")
def paris(llm_client: TestClient) -> dict[str, Any]:
    """One greedy chat answer, shared by the tests that compare against it (CPU time is scarce)."""
    r = llm_client.post(
        "/v1/chat/completions",
        json={"model": "smollm2@production", "messages": CHAT, "temperature": 0, "max_tokens": 10},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_chat_greedy_answers_and_counts_usage_exactly(paris: dict[str, Any]) -> None:
    body = paris
    choice = body["choices"][0]
    assert body["object"] == "chat.completion" and choice["message"]["role"] == "assistant"
    assert "Paris" in choice["message"]["content"]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # The template wraps the message in <|im_start|>…<|im_end|> turns and opens the assistant's.
    assert usage["prompt_tokens"] > 8
    assert usage["completion_tokens"] >= 6


def test_completion_length_stop_and_echo(llm_client: TestClient) -> None:
    base = {"model": "smollm2", "prompt": "The capital of France is", "temperature": 0}
    r = llm_client.post("/v1/completions", json={**base, "max_tokens": 3}).json()
    assert r["choices"][0]["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 3
    full = r["choices"][0]["text"]
    assert full.strip()
    word = full.strip().split()[0]
    cut = llm_client.post("/v1/completions", json={**base, "max_tokens": 3, "stop": [word]}).json()
    assert cut["choices"][0]["finish_reason"] == "stop"
    assert word not in cut["choices"][0]["text"]
    assert full.startswith(cut["choices"][0]["text"])
    echoed = llm_client.post("/v1/completions", json={**base, "max_tokens": 3, "echo": True}).json()
    assert echoed["choices"][0]["text"] == "The capital of France is" + full


def test_seed_reproducible_and_n_choices(llm_client: TestClient) -> None:
    body = {
        "model": "smollm2",
        "prompt": "Once upon a time",
        "max_tokens": 3,
        "temperature": 1.0,
        "seed": 7,
        "n": 2,
    }
    a = llm_client.post("/v1/completions", json=body).json()
    b = llm_client.post("/v1/completions", json=body).json()
    assert [c["text"] for c in a["choices"]] == [c["text"] for c in b["choices"]]
    assert [c["index"] for c in a["choices"]] == [0, 1]
    assert a["usage"]["prompt_tokens"] == 4  # counted once per prompt, not per choice


def test_logprobs_on_completions_and_chat(llm_client: TestClient) -> None:
    r = llm_client.post(
        "/v1/completions",
        json={"model": "smollm2", "prompt": "Hello", "max_tokens": 3, "temperature": 0, "logprobs": 2},
    ).json()
    lp = r["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == 3 and all(x <= 0 for x in lp["token_logprobs"])
    assert all(len(t) == 2 for t in lp["top_logprobs"])
    # Greedy picks the most likely token, so it is the top alternative.
    assert all(
        max(t.values()) == pytest.approx(v)
        for t, v in zip(lp["top_logprobs"], lp["token_logprobs"], strict=True)
    )
    r = llm_client.post(
        "/v1/chat/completions",
        json={"model": "smollm2", "messages": CHAT, "max_tokens": 2, "logprobs": True, "top_logprobs": 3},
    ).json()
    content = r["choices"][0]["logprobs"]["content"]
    assert len(content) == 2 and len(content[0]["top_logprobs"]) == 3


def test_streaming_chat_ends_with_done_and_usage(llm_client: TestClient, paris: dict[str, Any]) -> None:
    r = llm_client.post(
        "/v1/chat/completions",
        json={
            "model": "smollm2",
            "messages": CHAT,
            "temperature": 0,
            "max_tokens": 10,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = events(r.text)
    assert evs[-1] == "[DONE]"
    chunks = evs[:-1]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert "Paris" in text
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
    assert finish == paris["choices"][0]["finish_reason"]
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"] == paris["usage"]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert paris["choices"][0]["message"]["content"] == text  # same text as without streaming


def test_streaming_completion_stop_never_in_output(llm_client: TestClient) -> None:
    body = {"model": "smollm2", "prompt": "1, 2, 3, 4,", "temperature": 0, "max_tokens": 4}
    full = llm_client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    stop = full.strip()[:2]
    r = llm_client.post("/v1/completions", json={**body, "stop": stop, "stream": True})
    evs = events(r.text)
    assert evs[-1] == "[DONE]"
    text = "".join(e["choices"][0]["text"] for e in evs[:-1])
    assert stop not in text and full.startswith(text)
    assert evs[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"prompt": "hi", "best_of": 3}, "best_of", "best_of"),
        ({"prompt": "hi", "foo": 1}, "foo", "unsupported parameter 'foo'"),
        ({"prompt": "hi", "temperature": 3}, "temperature", "temperature"),
        ({"prompt": "hi", "max_tokens": -1}, "max_tokens", "max_tokens"),
        ({"prompt": "hi", "n": 50}, "n", "n must be at most"),
        ({"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"prompt": ""}, "prompt", "empty"),
        ({"prompt": "hi", "logit_bias": {"x": 1}}, "logit_bias", "token ids"),
        ({"prompt": "hi", "stream_options": {"include_usage": True}}, None, "stream"),
    ],
)
def test_completion_bad_params_are_400_with_param(
    llm_client: TestClient, body: dict[str, Any], param: str | None, fragment: str
) -> None:
    err = error_of(llm_client.post("/v1/completions", json={"model": "smollm2", **body}), 400)
    assert fragment in err["message"]
    if param is not None:
        assert err["param"] == param
    assert err["type"] == "invalid_request_error"


def test_chat_errors(llm_client: TestClient) -> None:
    err = error_of(
        llm_client.post("/v1/chat/completions", json={"model": "smollm2", "messages": [{"role": "wizard"}]}),
        400,
    )
    assert err["param"].startswith("messages")
    err = error_of(llm_client.post("/v1/chat/completions", json={"model": "smollm2", "messages": []}), 400)
    assert err["param"] == "messages"
    err = error_of(
        llm_client.post("/v1/chat/completions", json={"model": "smollm2", "messages": CHAT, "tools": []}), 400
    )
    assert "unsupported parameter 'tools'" in err["message"]
    err = error_of(llm_client.post("/v1/chat/completions", json={"model": "missing", "messages": CHAT}), 404)
    assert err["param"] == "model" and err["code"] == "model_not_found"
    err = error_of(llm_client.post("/v1/chat/completions", json={"model": "minilm", "messages": CHAT}), 400)
    assert "embeddings model" in err["message"]


def test_context_length_exceeded_names_the_limits(llm_client: TestClient) -> None:
    long_prompt = "hello " * 5000
    err = error_of(llm_client.post("/v1/completions", json={"model": "smollm2", "prompt": long_prompt}), 400)
    assert "maximum context length is 4096" in err["message"] and err["code"] == "context_length_exceeded"
    err = error_of(
        llm_client.post("/v1/completions", json={"model": "smollm2", "prompt": "hi", "max_tokens": 5000}), 400
    )
    assert "you requested 5001 tokens" in err["message"]


def test_embeddings_float_base64_order_and_usage(llm_client: TestClient) -> None:
    texts = ["a cat sits on the mat", "the stock market fell", "a kitten rests on a rug"]
    r = llm_client.post("/v1/embeddings", json={"model": "minilm", "input": texts}).json()
    assert [d["index"] for d in r["data"]] == [0, 1, 2]
    vecs = np.array([d["embedding"] for d in r["data"]], dtype=np.float32)
    assert vecs.shape == (3, 384)
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    assert unit[0] @ unit[2] > unit[0] @ unit[1]  # order kept: the cat sentences are the similar pair
    assert r["usage"]["prompt_tokens"] == r["usage"]["total_tokens"] > len(texts) * 3
    b64 = llm_client.post(
        "/v1/embeddings", json={"model": "minilm", "input": texts, "encoding_format": "base64"}
    ).json()
    decoded = np.frombuffer(base64.b64decode(b64["data"][1]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, vecs[1], rtol=1e-5, atol=1e-6)
    single = llm_client.post(
        "/v1/embeddings", json={"model": "minilm", "input": texts[1], "dimensions": 384}
    ).json()
    np.testing.assert_allclose(single["data"][0]["embedding"], vecs[1], rtol=1e-4, atol=1e-5)


def test_embeddings_errors(llm_client: TestClient) -> None:
    err = error_of(
        llm_client.post("/v1/embeddings", json={"model": "minilm", "input": "x", "dimensions": 64}), 400
    )
    assert err["param"] == "dimensions" and "384" in err["message"]
    err = error_of(llm_client.post("/v1/embeddings", json={"model": "minilm", "input": ["ok", ""]}), 400)
    assert err["param"] == "input"
    err = error_of(
        llm_client.post("/v1/embeddings", json={"model": "minilm", "input": "x", "encoding_format": "int8"}),
        400,
    )
    assert err["param"] == "encoding_format"
    err = error_of(llm_client.post("/v1/embeddings", json={"model": "smollm2", "input": "x"}), 400)
    assert err["param"] == "model"


def test_openai_sdk_in_process(llm_client: TestClient) -> None:
    from openai import BadRequestError, NotFoundError, OpenAI

    client = OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=llm_client, max_retries=0)
    chat = client.chat.completions.create(
        model="smollm2", messages=CHAT, temperature=0, max_completion_tokens=2
    )  # type: ignore[arg-type]
    assert chat.choices[0].finish_reason == "length" and chat.usage and chat.usage.completion_tokens == 2
    emb = client.embeddings.create(model="minilm", input=["one", "two"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 384
    with pytest.raises(NotFoundError):
        client.completions.create(model="nope", prompt="x")
    with pytest.raises(BadRequestError) as info:
        client.completions.create(model="smollm2", prompt="x", presence_penalty=5)
    assert info.value.body["param"] == "presence_penalty"  # type: ignore[index]


def test_llm_metrics_move(llm_client: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(llm_client.get("/metrics").text):
            for s in family.samples:
                if s.labels.get("model") == "smollm2":
                    key = (s.name, s.labels.get("kind") or s.labels.get("state") or "")
                    out[key] = out.get(key, 0.0) + s.value
        return out

    before = scrape()
    r = llm_client.post("/v1/completions", json={"model": "smollm2", "prompt": "Hello", "max_tokens": 4,
                                                  "stream": True, "temperature": 0})  # fmt: skip
    assert r.status_code == 200 and "[DONE]" in r.text
    after = scrape()
    first = ("modelhost_time_to_first_token_seconds_count", "")
    assert after[first] == before.get(first, 0) + 1
    assert (
        after[("modelhost_tokens_total", "completion")]
        >= before.get(("modelhost_tokens_total", "completion"), 0) + 1
    )
    assert ("modelhost_llm_sequences", "running") in after and (
        "modelhost_llm_kv_cache_usage_ratio",
        "",
    ) in after
