"""``queues.conf``: the human agents' queue (the design's extension 200)."""

from __future__ import annotations

from operadora.config import DialplanSettings
from operadora.dialplan.conf import Option, section


def queue_section(dp: DialplanSettings) -> str:
    options: list[Option] = [
        ("strategy", "ringall"),
        ("timeout", "15"),
        ("retry", "5"),
        ("wrapuptime", "0"),
        ("joinempty", "yes"),
        ("leavewhenempty", "no"),
        ("ringinuse", "no"),
        ("musicclass", "default"),
    ]
    options += [("member", member) for member in dp.queue_members]
    return section(dp.queue_name, options, "Human agents (extension 200)")
