"""``queues.conf``: the queues ``Queue()`` rings (strategy, timeout, static members)."""

from __future__ import annotations

from dataclasses import dataclass, field

from operadora.sim.dialplan.conf import parse_sections


@dataclass(frozen=True, slots=True)
class QueueMember:
    interface: str  # e.g. Local/agent1@queue-agents/n
    penalty: int = 0
    name: str = ""


@dataclass(slots=True)
class QueueConfig:
    name: str
    strategy: str = "ringall"
    timeout: float = 15.0
    retry: float = 5.0
    musicclass: str = "default"
    members: list[QueueMember] = field(default_factory=list)


def parse_queues(text: str, source: str = "queues.conf") -> dict[str, QueueConfig]:
    queues: dict[str, QueueConfig] = {}
    for sec in parse_sections(text, source):
        if sec.name == "general" or sec.is_template:
            continue
        queue = QueueConfig(sec.name)
        for key, value in sec.items:
            if key == "strategy":
                queue.strategy = value
            elif key == "timeout":
                queue.timeout = float(value or 15)
            elif key == "retry":
                queue.retry = float(value or 5)
            elif key == "musicclass":
                queue.musicclass = value
            elif key == "member":
                parts = [p.strip() for p in value.split(",")]
                penalty = int(parts[1]) if len(parts) > 1 and parts[1] else 0
                name = parts[2] if len(parts) > 2 else ""
                queue.members.append(QueueMember(parts[0], penalty, name))
        queues[queue.name] = queue
    return queues
