"""Domain events to and from JSON-ready dicts (Redis fan-out, the dashboard stream)."""

from __future__ import annotations

import dataclasses
from typing import Any

from operadora import events as ev

TYPE_KEY = "event"
EVENT_TYPES: dict[str, type[ev.DomainEvent]] = {
    cls.__name__: cls
    for cls in (
        ev.CallArrivedEvent,
        ev.CallAnsweredEvent,
        ev.MediaConnectedEvent,
        ev.SpeakingEvent,
        ev.TurnEvent,
        ev.DtmfEvent,
        ev.ActionRequestedEvent,
        ev.TransferEvent,
        ev.RecordingEvent,
        ev.CallEndedEvent,
    )
}


def event_to_dict(event: ev.DomainEvent) -> dict[str, Any]:
    data = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    data[TYPE_KEY] = type(event).__name__  # not ``.kind``: TransferEvent has a field of that name
    return data


def event_from_dict(data: dict[str, Any]) -> ev.DomainEvent:
    """Rebuild an event; unknown kinds and fields raise ``ValueError``."""
    cls = EVENT_TYPES.get(str(data.get(TYPE_KEY)))
    if cls is None:
        raise ValueError(f"unknown event type {data.get(TYPE_KEY)!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    fields = {k: v for k, v in data.items() if k != TYPE_KEY}
    if unknown := set(fields) - names:
        raise ValueError(f"unknown fields for {cls.__name__}: {sorted(unknown)}")
    return cls(**fields)
