"""operadora.runtime's urgent work: what long computations on the loop let go first."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from operadora.runtime import add_urgent_work, remove_urgent_work, run_urgent_work

pytestmark = pytest.mark.unit


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def serve_due(self) -> None:
        self.calls += 1


async def test_urgent_work_runs_for_its_own_loop_only_and_is_held_weakly() -> None:
    loop = asyncio.get_running_loop()
    kept, dropped = Counter(), Counter()
    add_urgent_work(loop, kept.serve_due)
    add_urgent_work(loop, dropped.serve_due)
    other = Counter()
    other_loop = asyncio.new_event_loop()
    try:
        add_urgent_work(other_loop, other.serve_due)  # another loop's work is not run here
        run_urgent_work()
        assert (kept.calls, dropped.calls, other.calls) == (1, 1, 0)
        gone = weakref.ref(dropped)
        del dropped
        gc.collect()
        assert gone() is None  # the registry does not keep its owner alive
        run_urgent_work()  # and skips it
        assert kept.calls == 2
        remove_urgent_work(loop, kept.serve_due)
        run_urgent_work()
        assert kept.calls == 2
    finally:
        remove_urgent_work(other_loop, other.serve_due)
        other_loop.close()


def test_without_a_running_loop_there_is_nothing_to_run() -> None:
    run_urgent_work()  # no loop: returns, raises nothing


def test_a_loop_with_urgent_work_registered_can_still_be_collected() -> None:
    loop = asyncio.new_event_loop()
    work = Counter()
    add_urgent_work(loop, work.serve_due)  # never removed
    loop.close()
    gone = weakref.ref(loop)
    del loop
    gc.collect()
    assert gone() is None  # the registry holds loops weakly
