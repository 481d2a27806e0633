"""Whisper's queue as bench_capacity's server records it: the wait each turn's end-of-turn
silence hid, the speculative decodes the session dropped, and the spreads the engine model
draws from. Synthetic records, no timing."""

from __future__ import annotations

import pytest

from operadora.capacity.ramp import LIGHT_RETRIES, OTHERS_LIMIT_CORES, measure_again
from operadora.capacity.records import Spread, cancel_after_ms, quantile, turn_slack_ms

pytestmark = pytest.mark.unit


def test_slack_is_the_time_from_the_answering_decode_to_the_transcript_being_needed() -> None:
    turns = [
        ("a", 10.0, 10.16),  # the decode ended 60 ms before the end of turn wanted it
        ("b", 20.0, 20.30),  # its decode ended at the very moment: nothing hidden
        ("a", 30.0, 30.28),  # no decode of call a around this turn: left out
    ]
    requests = [
        ("a", 9.5, 9.5, 9.6),  # an earlier speculative decode, dropped
        ("a", 10.03, 10.03, 10.10),  # the one that answered
        ("a", 10.5, 10.5, 10.6),  # the next utterance's, after the transcript was in hand
        ("b", 20.05, 20.10, 20.299),  # the loop sees the end a moment after the thread
        ("c", 29.9, 29.9, 30.1),  # another call's decode
    ]
    slack = turn_slack_ms(turns, requests)
    assert slack == pytest.approx([60.0, 1.0])
    assert turn_slack_ms([("a", 1.0, 1.2)], [("a", 1.0, 1.0, 1.25)]) == []  # ended too late


def test_cancel_times_and_quantiles() -> None:
    assert cancel_after_ms([("a", 1.0, 1.08), ("b", 2.0, 1.99)]) == pytest.approx([80.0, 0.0])
    values = [float(v) for v in range(11)]  # 0..10
    assert quantile(values, 0.5) == 5.0 and quantile(values, 0.1) == 1.0
    assert quantile(values, 0.95) == pytest.approx(9.5)
    assert quantile([], 0.5) == 0.0


def test_spread_draws_through_its_percentiles_and_nothing_beyond() -> None:
    spread = Spread.of([float(v) for v in range(11)])
    assert (spread.p10, spread.p50, spread.p90) == (1.0, 5.0, 9.0)
    assert spread.draw(0.0) == 1.0 and spread.draw(0.05) == 1.0  # flat below the 10th
    assert spread.draw(0.3) == pytest.approx(3.0)
    assert spread.draw(0.7) == pytest.approx(7.0)
    assert spread.draw(0.99) == 9.0  # flat above the 90th
    mean = Spread.mean_of([(Spread(0, 10, 20), 1.0), (Spread(10, 20, 30), 3.0)])
    assert (mean.p10, mean.p50, mean.p90) == pytest.approx((7.5, 17.5, 27.5))
    assert Spread.mean_of([]) == Spread() == Spread.mean_of([(Spread(1, 2, 3), 0.0)])


def test_a_light_load_disturbed_by_other_processes_is_measured_again() -> None:
    assert not measure_again([])
    assert not measure_again([OTHERS_LIMIT_CORES])  # at the limit: kept
    assert measure_again([0.45])
    assert not measure_again([0.45, 0.02])  # a quiet try came
    noisy = [0.45] * (1 + LIGHT_RETRIES)
    assert measure_again(noisy[:-1]) and not measure_again(noisy)  # at most LIGHT_RETRIES more
