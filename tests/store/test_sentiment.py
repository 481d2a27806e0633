import pytest

from operadora.store.sentiment import SentimentTracker, score

pytestmark = pytest.mark.unit


def test_english_and_spanish_hits_ignore_accents_and_case() -> None:
    assert score("This is TERRIBLE service") == (1, ["terrible"])
    assert score("Es un servicio pésimo, estoy harto")[0] == 2
    assert score("Quiero hablar con un supervisor")[1] == ["quiero hablar con un supervisor"]


def test_neutral_turns_score_nothing() -> None:
    assert score("I would like to book an appointment for Tuesday") == (0, [])
    assert score("Hola, quisiera saber mi saldo por favor") == (0, [])


def test_shouting_adds_a_point() -> None:
    assert score("WHY IS NOBODY ANSWERING")[0] == 1
    assert score("hello!!")[0] == 1


def test_call_turns_negative_once_over_a_window_of_turns() -> None:
    tracker = SentimentTracker()
    assert tracker.add("hello, I have a problem with my bill") is False
    assert tracker.add("this is ridiculous") is False
    assert tracker.add("honestly unacceptable") is True
    assert tracker.negative
    assert tracker.add("terrible, awful, horrible") is False  # only the first time


def test_old_complaints_fall_out_of_the_window() -> None:
    tracker = SentimentTracker(threshold=2, window=2)
    for text in ("that is awful", "ok", "fine thanks", "this is terrible"):
        assert tracker.add(text) is False
    assert not tracker.negative
