"""Process-wide settings for the long-running servers."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any


def freeze_heap() -> None:
    """Move everything alive now (modules, models, tokenizers: tens of thousands of objects
    that live as long as the process) out of the garbage collector's reach.

    A full collection walking them stalls the event loop 20-50 ms on a 2-core VM, which on a
    media server is two late frames for every call at once. Collected first, so no garbage is
    frozen with it; call it once start-up has loaded what the process keeps.
    """
    gc.collect()
    gc.freeze()


_URGENT: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, list[weakref.WeakMethod[Callable[[], None]]]
] = weakref.WeakKeyDictionary()


def add_urgent_work(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """Register ``callback`` (a bound method, held weakly) as work on ``loop`` that must not
    wait behind long computations: the media server's paced writes. Code that runs long on
    the loop (a VAD batch of many calls) calls :func:`run_urgent_work` between its chunks."""
    refs = _URGENT.setdefault(loop, [])
    refs[:] = [ref for ref in refs if ref() is not None]
    refs.append(weakref.WeakMethod(callback))


def remove_urgent_work(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    refs = _URGENT.get(loop, [])
    refs[:] = [ref for ref in refs if ref() not in (None, callback)]
    if not refs:
        _URGENT.pop(loop, None)


def has_urgent_work(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether anything on ``loop`` registered urgent work (the asyncio media server's pacer
    does; the native engine writes from its own thread and does not)."""
    return any(ref() is not None for ref in _URGENT.get(loop, ()))


def run_urgent_work() -> None:
    """Run the running loop's urgent work now (each callback is cheap when nothing is due;
    those whose owner is gone are skipped). Neither the loops nor the owners are kept alive
    by being registered."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    refs = _URGENT.get(loop)
    if not refs:
        return
    for ref in tuple(refs):  # a callback may add or remove urgent work
        callback = ref()
        if callback is not None:
            callback()


def blas_on_one_thread() -> None:
    """Hold numpy's BLAS to one thread for the rest of this process (the engines' process:
    every matrix product on a call's path is small).

    The per-use :func:`one_blas_thread` contexts set a process-wide limit and give back what
    they found, so two threads that enter and leave in turn can leave BLAS threads free; an
    OpenBLAS worker then spins after each product. Measured in the capacity benchmark's
    engine at one call (10 s): that thread took 450 ms of CPU, the event loop 352.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - depends on the installed packages
        return
    threadpool_limits(1, user_api="blas")


class _OneBlasThread:
    __slots__ = ("_libs", "_saved")

    def __init__(self, libs: Sequence[Any]) -> None:
        self._libs = libs
        self._saved: list[int] = []

    def __enter__(self) -> None:
        self._saved = saved = [lib.get_num_threads() for lib in self._libs]
        for lib, threads in zip(self._libs, saved, strict=True):
            if threads != 1:
                lib.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        for lib, threads in zip(self._libs, self._saved, strict=True):
            if threads != 1:
                lib.set_num_threads(threads)


def one_blas_thread() -> AbstractContextManager[object]:
    """A reusable context that holds numpy's BLAS to one thread while it is entered, then
    gives back what it had (one per user: it is not re-entrant).

    The small matrix products of the VAD batch and the sentence encoder gain nothing from
    BLAS threads, and on a busy 2-core machine those threads spin: the batched VAD cost twice
    the CPU, one sentence took 300 ms instead of 30. ~1 us per use (threadpoolctl's
    ``limit()``, which looks the libraries up each time, costs ~7 us); call it after numpy
    is imported.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - depends on the installed packages
        return nullcontext()
    return _OneBlasThread(ThreadpoolController().select(user_api="blas").lib_controllers)
