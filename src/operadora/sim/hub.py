"""Stasis applications and the events WebSocket subscribers they come from.

An application exists while at least one events WebSocket registered it (``?app=a,b``).
With ``subscribeAll=true`` a subscriber receives every event (all channels, both Local halves,
dialplan steps, dialplan bridges), as the traces were recorded; otherwise only events about
channels in its application and bridges it created.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from operadora.sim.model import Bridge, Channel, Json, Playback, ari_time

log = logging.getLogger(__name__)

ASTERISK_ID = "02:fc:00:00:00:01"
QUEUE_LIMIT = 10000


@dataclass(eq=False)
class Subscriber:
    apps: list[str]
    subscribe_all: bool
    queue: asyncio.Queue[Json | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))

    def close(self) -> None:
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            pass


class EventHub:
    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []
        self.listeners: list[Any] = []  # callables(event) for in-process observers (tests, faults)

    @property
    def apps(self) -> set[str]:
        return {app for sub in self.subscribers for app in sub.apps}

    def registered(self, app: str) -> bool:
        return app in self.apps

    def subscribe(self, apps: Iterable[str], subscribe_all: bool) -> Subscriber:
        """Register ``apps`` for a new WebSocket. An application belongs to one WebSocket at a
        time: the newer one wins and the older one gets ``ApplicationReplaced``."""
        sub = Subscriber(list(apps), subscribe_all)
        for other in list(self.subscribers):
            for app in [a for a in other.apps if a in sub.apps]:
                other.apps.remove(app)
                replaced = {
                    "type": "ApplicationReplaced",
                    "timestamp": ari_time(),
                    "application": app,
                    "asterisk_id": ASTERISK_ID,
                }
                try:
                    other.queue.put_nowait(replaced)
                except asyncio.QueueFull:
                    other.close()
        self.subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)

    def drop_all(self) -> int:
        """Close every events WebSocket (used by fault injection); returns how many."""
        subs = list(self.subscribers)
        for sub in subs:
            sub.close()
        return len(subs)

    def emit(self, event_type: str, /, **fields: Any) -> None:
        """Publish an event now; channel/bridge/playback objects are snapshotted here."""
        target_app = fields.pop("_app", None)
        body: Json = {"type": event_type, "timestamp": ari_time()}
        channels: list[Channel] = []
        bridges: list[Bridge] = []
        for key, value in fields.items():
            if isinstance(value, Channel):
                channels.append(value)
                body[key] = value.json()
            elif isinstance(value, Bridge):
                bridges.append(value)
                body[key] = value.json()
            elif isinstance(value, Playback):
                body[key] = value.json()
            else:
                body[key] = value
        body["asterisk_id"] = ASTERISK_ID
        for listener in list(self.listeners):
            try:
                listener(dict(body))
            except Exception:  # an observer must never break the PBX
                log.exception("event listener failed on %s", event_type)
        for sub in list(self.subscribers):
            for app in sub.apps:
                if sub.subscribe_all or _concerns(app, channels, bridges, target_app):
                    event = dict(body)
                    event["application"] = app
                    try:
                        sub.queue.put_nowait(event)
                    except asyncio.QueueFull:
                        log.warning("events queue full for app %s; dropping subscriber", app)
                        sub.close()
                    break


def _concerns(app: str, channels: list[Channel], bridges: list[Bridge], target: Any) -> bool:
    if any(app in ch.apps for ch in channels):
        return True
    if any(app in br.apps for br in bridges):
        return True
    return bool(target == app)
