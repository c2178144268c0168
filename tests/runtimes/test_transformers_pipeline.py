"""Registering bring-your-own transformers directories: task inference, explicit tasks, pickle refusal
and request-parameter validation (runtimes/transformers_pipeline.py, runtimes/base.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from modelhost.errors import InvalidInput, UnsafeArtifact, UnsupportedFormat
from modelhost.registry import Registry
from modelhost.runtimes.base import parameters_column
from modelhost.runtimes.transformers_pipeline import infer_task


@pytest.mark.parametrize(
    ("config", "task"),
    [
        ({"architectures": ["BertForSequenceClassification"], "model_type": "bert"}, "text-classification"),
        ({"architectures": ["Wav2Vec2ForSequenceClassification"], "model_type": "wav2vec2"}, "audio-classification"),
        ({"architectures": ["RobertaForTokenClassification"]}, "token-classification"),
        ({"architectures": ["ViTForImageClassification"]}, "image-classification"),
        ({"architectures": ["Wav2Vec2ForCTC"]}, "automatic-speech-recognition"),
        ({"architectures": ["WhisperForConditionalGeneration"], "is_encoder_decoder": True}, "automatic-speech-recognition"),
        ({"architectures": ["MarianMTModel"], "model_type": "marian", "is_encoder_decoder": True}, "translation"),
        ({"architectures": ["BartForConditionalGeneration"], "model_type": "bart", "is_encoder_decoder": True,
          "task_specific_params": {"summarization": {"max_length": 142}}}, "summarization"),
        ({"architectures": ["T5ForConditionalGeneration"], "is_encoder_decoder": True,
          "task_specific_params": {"summarization": {}, "translation_en_to_de": {}}}, "text2text-generation"),
        ({"architectures": ["BertModel"]}, "feature-extraction"),
        ({"architectures": ["LlamaForCausalLM"]}, None),
    ],
)  # fmt: skip
def test_task_is_inferred_from_the_architecture(config: dict, task: str | None) -> None:  # type: ignore[type-arg]
    assert infer_task(config, "model") == task


def test_an_architecture_that_does_not_tell_asks_for_a_task() -> None:
    with pytest.raises(UnsupportedFormat, match="register it with a task"):
        infer_task({"architectures": ["BertForMaskedLM"]}, "mlm")


def test_registration_records_runtime_task_and_signature(hf_registry: Registry) -> None:
    expected = {
        "sentiment": ("text-classification", ["text"], ["label", "score", "top_label"]),
        "ner": ("token-classification", ["text"], ["entities"]),
        "encoder": ("feature-extraction", ["text"], ["embedding"]),
        "summarizer": ("summarization", ["text"], ["summary"]),
        "translator": ("translation", ["text"], ["translation"]),
        "vit": ("image-classification", ["image"], ["label", "score", "top_label"]),
        "ctc": ("automatic-speech-recognition", ["audio"], ["text"]),
        "sounds": ("audio-classification", ["audio"], ["label", "score", "top_label"]),
    }
    for name, (task, inputs, outputs) in expected.items():
        v = hf_registry.resolve(name)
        assert (v.format, v.runtime) == ("transformers", "transformers-pipeline"), name
        assert v.signature.extra["task"] == task and hf_registry.get_model(name).task == task
        assert [t.name for t in v.signature.inputs] == inputs
        assert [t.name for t in v.signature.outputs] == outputs
    assert hf_registry.resolve("sentiment").signature.extra["labels"] == ["negative", "neutral", "positive"]
    assert hf_registry.resolve("translator").signature.extra["pairs"] == ["en-de", "en-fr"]
    assert hf_registry.resolve("encoder").signature.output("embedding").shape == (-1, 32)  # type: ignore[union-attr]


def test_explicit_task_overrides_the_inferred_one(registry: Registry, hf_dirs: dict[str, Path]) -> None:
    v = registry.register_version("t2t", hf_dirs["summarizer"], task="text2text-generation")
    assert v.signature.extra["task"] == "text2text-generation"
    assert [t.name for t in v.signature.outputs] == ["generated_text"]
    with pytest.raises(InvalidInput, match="unknown task 'fill-the-blanks'"):
        registry.register_version("bad", hf_dirs["sentiment"], task="fill-the-blanks")


def test_causal_lm_directories_stay_with_the_llm_runtime(registry: Registry, tmp_path: Path) -> None:
    d = tmp_path / "lm"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (d / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    assert registry.register_version("lm", d).runtime == "llm"


@pytest.mark.parametrize("weights", ["pytorch_model.bin", "model.pt", "weights.pth", "last.ckpt"])
def test_pickle_weights_are_refused(
    registry: Registry, hf_dirs: dict[str, Path], tmp_path: Path, weights: str
) -> None:
    d = shutil.copytree(hf_dirs["sentiment"], tmp_path / "with-pickle")
    (d / weights).write_bytes(b"\x80\x04\x95\x00.")
    with pytest.raises(UnsafeArtifact, match="safetensors"):
        registry.register_version("pickled", d)


def test_parameters_are_validated_against_the_declared_ones() -> None:
    declared = {"top_k": {"type": "integer", "minimum": 1, "maximum": 3}, "src_lang": {"type": "string"}}
    column = parameters_column(declared, {"top_k": 2, "routing_key": "u1"}, 3)
    assert column.shape == (3,) and json.loads(column[0]) == {"top_k": 2}
    assert json.loads(parameters_column(declared, {}, 1)[0]) == {}
    for bad, message in [
        ({"temperature": 1}, "unknown parameter"),
        ({"top_k": 9}, "between 1 and 3"),
        ({"top_k": "2"}, "must be of type integer"),
        ({"top_k": True}, "must be of type integer"),
        ({"src_lang": ""}, "non-empty"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            parameters_column(declared, bad, 1)
    assert isinstance(column, np.ndarray)
