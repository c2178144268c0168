"""The sampling math: penalties as vLLM defines them, top-k/top-p, greedy, seeds, bias, logprobs."""

from __future__ import annotations

import math

import pytest
import torch

from modelhost.dataplane.sampling import (
    SamplingParams,
    apply_penalties,
    apply_top_k_top_p,
    make_generator,
    sample,
    token_counts,
)


def test_token_counts_count_generated_tokens_per_row() -> None:
    counts = token_counts([[1, 1, 3], [], [0]], vocab_size=4, device=torch.device("cpu"))
    assert counts.tolist() == [[0, 2, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]]


def test_penalties_subtract_frequency_times_count_plus_presence() -> None:
    logits = torch.zeros((2, 4))
    counts = torch.tensor([[0.0, 2.0, 0.0, 1.0], [3.0, 0.0, 0.0, 0.0]])
    out = apply_penalties(logits, counts, torch.tensor([0.5, 0.0]), torch.tensor([1.0, -1.0]))
    # row 0: token 1 -> -(0.5*2 + 1) = -2, token 3 -> -(0.5*1 + 1) = -1.5; row 1: presence -1 raises token 0
    assert out.tolist() == [[0.0, -2.0, 0.0, -1.5], [1.0, 0.0, 0.0, 0.0]]


def test_penalties_use_generated_tokens_only_and_change_the_greedy_choice() -> None:
    logits = torch.tensor([[2.0, 1.9, 0.0]])
    plain = sample(logits, [SamplingParams(temperature=0)], [[]], [None])
    assert plain.tokens == [0]
    penalised = sample(logits, [SamplingParams(temperature=0, presence_penalty=0.5)], [[0]], [None])
    assert penalised.tokens == [1]
    # A negative frequency penalty rewards repetition.
    rewarded = sample(
        torch.tensor([[1.9, 2.0]]), [SamplingParams(temperature=0, frequency_penalty=-0.1)], [[0, 0]], [None]
    )
    assert rewarded.tokens == [0]


def test_top_k_keeps_the_k_most_likely() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    out = apply_top_k_top_p(logits, torch.tensor([2]), torch.tensor([1.0]))
    assert torch.isinf(out[0, [0, 2]]).all() and out[0, 1] == 3.0 and out[0, 3] == 2.0


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    kept = ~torch.isinf(apply_top_k_top_p(logits, torch.tensor([0]), torch.tensor([0.8])))
    assert kept.tolist() == [[True, True, False, False]]
    kept = ~torch.isinf(apply_top_k_top_p(logits, torch.tensor([0]), torch.tensor([0.81])))
    assert kept.tolist() == [[True, True, True, False]]
    # The top token always survives, even with a tiny top_p.
    kept = ~torch.isinf(apply_top_k_top_p(logits, torch.tensor([0]), torch.tensor([1e-6])))
    assert kept.tolist() == [[True, False, False, False]]


def test_top_p_sampling_never_draws_outside_the_nucleus() -> None:
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    gen = make_generator(0)
    seen = {sample(logits, [SamplingParams(top_p=0.8, seed=0)], [[]], [gen]).tokens[0] for _ in range(300)}
    assert seen == {0, 1}


def test_sampling_follows_the_temperature_scaled_distribution() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p = [0.25, 0.75] at temperature 1
    gen = make_generator(123)
    draws = [sample(logits, [SamplingParams(seed=123)], [[]], [gen]).tokens[0] for _ in range(2000)]
    assert abs(sum(draws) / len(draws) - 0.75) < 0.04
    # At temperature 0.5 the logits double: p(1) = 9 / 10.
    draws = [sample(logits, [SamplingParams(temperature=0.5)], [[]], [None]).tokens[0] for _ in range(2000)]
    assert abs(sum(draws) / len(draws) - 0.9) < 0.03


def test_temperature_zero_is_greedy() -> None:
    logits = torch.randn(3, 50)
    result = sample(logits, [SamplingParams(temperature=0.0)] * 3, [[], [], []], [None] * 3)
    assert result.tokens == logits.argmax(dim=-1).tolist()


def test_seed_is_reproducible_and_independent_of_the_batch() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 1000)

    def run(batch_extra: int) -> list[int]:
        gen = make_generator(42)
        rows = logits.repeat(1 + batch_extra, 1)
        params = [SamplingParams(seed=42)] + [SamplingParams()] * batch_extra
        gens = [gen] + [None] * batch_extra
        return [sample(rows, params, [[]] * len(params), gens).tokens[0] for _ in range(20)]

    alone = run(0)
    assert alone == run(0)
    assert alone == run(3)
    assert len(set(alone)) > 1


def test_logit_bias_is_added_before_choosing() -> None:
    logits = torch.tensor([[5.0, 0.0, 0.0]])
    out = sample(logits, [SamplingParams(temperature=0, logit_bias={2: 100.0})], [[]], [None])
    assert out.tokens == [2]
    banned = sample(logits, [SamplingParams(temperature=0, logit_bias={0: -100.0})], [[]], [None])
    assert banned.tokens != [0]


def test_logprobs_are_the_raw_model_distribution() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    params = [SamplingParams(temperature=0, logprobs=2, presence_penalty=2.0), SamplingParams(temperature=0)]
    out = sample(logits, params, [[2], []], [None, None])
    expected = torch.log_softmax(logits[0], dim=-1)
    assert out.tokens[0] == 1  # the penalty moved the choice away from token 2 ...
    assert out.logprobs[0] == pytest.approx(float(expected[1]))  # ... but logprobs are the model's own
    assert [t for t, _ in out.top_logprobs[0] or []] == [2, 1]
    assert out.logprobs[1] is None and out.top_logprobs[1] is None


def test_rows_keep_their_own_parameters() -> None:
    logits = torch.tensor([[3.0, 0.0], [3.0, 0.0]])
    params = [SamplingParams(temperature=0), SamplingParams(temperature=0, logit_bias={1: 10.0})]
    assert sample(logits, params, [[], []], [None, None]).tokens == [0, 1]


def test_the_candidate_shortcut_masks_exactly_as_a_full_sort() -> None:
    """top-k/top-p look at each row's best TOP_CANDIDATES tokens and sort a row in full only when its
    nucleus reaches past them: the kept set must be the full sort's, for peaked and flat rows, top-k
    inside and beyond the candidates, and rows that keep everything."""
    from modelhost.dataplane import sampling

    gen = torch.Generator().manual_seed(0)
    vocab, cand = 5000, sampling.TOP_CANDIDATES
    assert cand < vocab
    cases = [
        (k, p)
        for k in (0, 1, 5, 50, cand, cand + 1, 2000, vocab, vocab + 10)
        for p in (1.0, 0.999, 0.9, 0.5, 1e-6)
    ]
    for scale in (0.1, 1.0, 5.0, 20.0):  # flat rows need thousands of tokens for 0.9; peaked ones a few
        # float64: both ways then agree to the last token (in float32 a token whose preceding mass
        # sits within rounding of top_p may fall either side, in either implementation)
        logits = torch.randn(len(cases), vocab, generator=gen, dtype=torch.float64) * scale
        top_k = torch.tensor([k for k, _ in cases])
        top_p = torch.tensor([p for _, p in cases])
        got = ~torch.isinf(sampling.apply_top_k_top_p(logits, top_k, top_p))
        want = sampling._top_k_top_p_sorted(logits, top_k, top_p)
        assert torch.equal(got, want), [cases[i] for i in (got != want).any(dim=1).nonzero()[:, 0].tolist()]
