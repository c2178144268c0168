"""Summarization: extractive (the sentences most central in embedding space, in their original order)
or abstractive (an LLM asked with a prompt template)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from modelhost.dataplane.generation import complete
from modelhost.dataplane.sampling import SamplingParams
from modelhost.errors import ContextLengthExceeded, InvalidInput
from modelhost.runtimes.embeddings import EmbeddingsRuntime
from modelhost.runtimes.llm import LLMRuntime

# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) and whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+")
DEFAULT_PROMPT = (
    "Summarize the following text in at most {sentences} sentences. Answer with the summary only.\n\n{text}"
)


@dataclass(frozen=True)
class Summary:
    text: str
    mode: str
    # Extractive: indexes of the chosen sentences in the split text (empty for abstractive).
    sentence_indexes: tuple[int, ...] = ()
    sentence_count: int = 0


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (paragraph breaks also end one); blank pieces dropped."""
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        pieces.extend(s.strip() for s in _SENTENCE_END.split(paragraph.strip()))
    return [p for p in pieces if p]


def centrality_ranking(vectors: np.ndarray) -> np.ndarray:
    """Sentence indexes by decreasing centrality: the sum of cosine similarities to all the others
    (degree centrality of the similarity graph, as in LexRank without the threshold)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, 1e-12)
    sims = unit @ unit.T
    np.fill_diagonal(sims, 0.0)
    scores = sims.sum(axis=1)
    # Stable sort: among equally central sentences the earlier one wins.
    return np.argsort(-scores, kind="stable")


def extractive(runtime: EmbeddingsRuntime, text: str, sentences: int) -> Summary:
    """The ``sentences`` most central sentences, joined in the order they appear."""
    parts = split_sentences(text)
    if not parts:
        raise InvalidInput("text is empty", param="text")
    if len(parts) <= sentences:
        return Summary(" ".join(parts), "extractive", tuple(range(len(parts))), len(parts))
    chosen = sorted(int(i) for i in centrality_ranking(runtime.embed(parts))[:sentences])
    return Summary(" ".join(parts[i] for i in chosen), "extractive", tuple(chosen), len(parts))


async def abstractive(
    runtime: LLMRuntime, text: str, sentences: int, max_tokens: int, prompt: str = DEFAULT_PROMPT
) -> Summary:
    """The LLM's greedy answer to ``prompt`` (``{text}`` and ``{sentences}`` filled in)."""
    if not text.strip():
        raise InvalidInput("text is empty", param="text")
    content = prompt.replace("{sentences}", str(sentences)).replace("{text}", text.strip())
    ids = runtime.chat_prompt([{"role": "user", "content": content}])
    if len(ids) + max_tokens > runtime.context_length:
        raise ContextLengthExceeded(
            f"the text and prompt take {len(ids)} tokens; with max_tokens {max_tokens} that exceeds the "
            f"model's context of {runtime.context_length}; use mode 'extractive' for long texts",
            param="text",
        )
    chunk = await complete(runtime, ids, SamplingParams(temperature=0.0), max_tokens)
    return Summary(chunk.text.strip(), "abstractive", (), len(split_sentences(text)))
