import numpy as np
import pytest

from modelhost.monitoring.drift import chi2_categories, detect, is_categorical, psi


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift(rng: np.random.Generator) -> None:
    ref = rng.normal(0, 1, 5000)
    assert psi(ref, rng.normal(0, 1, 2000)) < 0.02
    assert 0.1 < psi(ref, rng.normal(0.35, 1, 2000)) < 0.3
    assert psi(ref, rng.normal(1.5, 1, 2000)) > 1.0


def test_psi_matches_a_hand_computation() -> None:
    ref = np.repeat([0.0, 1.0], 50)  # two bins, 50/50
    cur = np.repeat([0.0, 1.0], [80, 20])
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert psi(ref, cur, bins=2) == pytest.approx(expected, rel=1e-3)


def test_categorical_detection_and_chi2(rng: np.random.Generator) -> None:
    ref = rng.choice([0, 1, 2], 3000, p=[0.5, 0.3, 0.2])
    assert is_categorical(ref) and not is_categorical(rng.normal(size=100))
    _, p_same = chi2_categories(ref, rng.choice([0, 1, 2], 1000, p=[0.5, 0.3, 0.2]))
    _, p_shift = chi2_categories(ref, rng.choice([0, 1, 2], 1000, p=[0.2, 0.3, 0.5]))
    assert p_same > 0.01 and p_shift < 1e-10


def test_detect_flags_only_the_shifted_feature_and_predictions(rng: np.random.Generator) -> None:
    ref = np.column_stack([rng.normal(0, 1, 3000), rng.normal(5, 2, 3000), rng.choice([0, 1], 3000)])
    cur = np.column_stack([rng.normal(0, 1, 800), rng.normal(7, 2, 800), rng.choice([0, 1], 800)])
    report = detect(
        "m", 1, ["a", "b", "c"], ref, cur, rng.choice([0, 1], 3000), rng.choice([0, 1], 800, p=[0.9, 0.1])
    )
    by_name = {f.feature: f for f in report.features}
    assert not by_name["a"].drifted and not by_name["c"].drifted
    assert by_name["b"].severity == "major" and by_name["b"].score > 0.2
    assert by_name["prediction"].drifted
    assert report.drifted and report.to_dict()["features"][1]["drifted"] is True


def test_no_false_alarm_on_unshifted_data(rng: np.random.Generator) -> None:
    ref = rng.normal(size=(3000, 4))
    flagged = sum(detect("m", 1, list("abcd"), ref, rng.normal(size=(500, 4))).drifted for _ in range(10))
    assert flagged <= 1


def test_too_few_rows_is_a_note_not_a_verdict(rng: np.random.Generator) -> None:
    report = detect("m", 1, ["a"], rng.normal(size=(100, 1)), rng.normal(size=(5, 1)))
    assert not report.drifted and "at least 30" in report.note
