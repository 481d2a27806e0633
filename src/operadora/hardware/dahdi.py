"""DAHDI cards: the pure parser of ``dahdi_scan`` output and the scan itself.

``dahdi_scan`` (dahdi-tools) prints one ``[N]`` section per span with ``key=value`` lines:
``active``, ``alarms``, ``description``, ``name``, ``manufacturer``, ``devicetype``,
``location``, ``basechan``, ``totchans``, ``irq``, then either ``type=analog`` and one
``port=<chan>,<FXS|FXO|none|unknown>[ FAILED]`` per channel, or ``type=digital-<E1|T1|...>``
with ``syncsrc``, ``lbo``, ``coding_opts``, ``framing_opts``, ``coding``, ``framing``.
A port printed ``FXS`` is an FXS module (phones); ``FXO`` modules take PSTN lines.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from pathlib import Path

from operadora.hardware.models import DahdiCard, DahdiPort, DahdiReport, DahdiSpan

_SECTION = re.compile(r"^\[(\d+)\]\s*$")
_PORT = re.compile(r"^(\d+),\s*(FXS|FXO|none|unknown)(\s+FAILED)?\s*$")
_INT_FIELDS = {"basechan", "totchans", "irq", "syncsrc"}
_LIST_FIELDS = {"coding_opts", "framing_opts"}
_TEXT_FIELDS = {
    "alarms",
    "description",
    "name",
    "manufacturer",
    "devicetype",
    "location",
    "type",
    "lbo",
    "coding",
    "framing",
}

# Card models of the design's table and common DAHDI cards, recognised in devicetype/description.
_MODELS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bA\s?(200|400|500|101|102|104|108|116)D?\b", re.I), "A{0}"),
    (re.compile(r"\bAEX\s?(410|800|2400)\b", re.I), "AEX{0}"),
    (re.compile(r"\bTDM\s?(400|410|800|2400)P?\b", re.I), "TDM{0}P"),
    (re.compile(r"\bTE\s?(1[0-3]\d|2[0-3]\d|4[0-3]\d|8[0-2]\d)P?\b", re.I), "TE{0}"),
    (re.compile(r"\bB\s?(410)P\b", re.I), "B{0}P"),
)


class DahdiScanError(ValueError):
    """The text is not ``dahdi_scan`` output."""


def parse_dahdi_scan(text: str) -> list[DahdiSpan]:
    """Parse ``dahdi_scan`` output into spans; unknown keys are ignored, bad values raise."""
    spans: list[DahdiSpan] = []
    current: dict[str, object] | None = None
    ports: list[DahdiPort] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if match := _SECTION.match(line):
            if current is not None:
                spans.append(_span(current, ports))
            current, ports = {"number": int(match.group(1))}, []
            continue
        if current is None or "=" not in line:
            raise DahdiScanError(f"line {lineno}: expected '[N]' or key=value, got {line!r}")
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        try:
            _store(current, ports, key, value)
        except ValueError as exc:
            raise DahdiScanError(f"line {lineno}: {exc}") from None
    if current is not None:
        spans.append(_span(current, ports))
    return spans


def _store(span: dict[str, object], ports: list[DahdiPort], key: str, value: str) -> None:
    if key == "port":
        match = _PORT.match(value)
        if match is None:
            raise ValueError(f"bad port line {value!r}")
        kind = match.group(2)
        ports.append(DahdiPort(channel=int(match.group(1)), kind=kind, failed=bool(match.group(3))))
    elif key == "active":
        span["active"] = value == "yes"
    elif key in _INT_FIELDS:
        span[key] = int(value)
    elif key in _LIST_FIELDS:
        span[key] = [opt for opt in value.split(",") if opt]
    elif key in _TEXT_FIELDS:
        span[key] = value


def _span(fields: dict[str, object], ports: list[DahdiPort]) -> DahdiSpan:
    return DahdiSpan.model_validate({**fields, "ports": ports})


def card_model(span: DahdiSpan) -> str | None:
    """The card model named in the span's device type or description, if known."""
    for text in (span.devicetype, span.description, span.name):
        for pattern, fmt in _MODELS:
            if match := pattern.search(text):
                return fmt.format(match.group(1).upper())
    return None


def bearer_channels(span: DahdiSpan) -> int:
    """Channels of a span that carry voice.

    E1 has 31 timeslots of which TS16 carries signalling (PRI D-channel or CAS): 30 voice.
    BRI has 2 B-channels and a D-channel. A T1 counts its 24 channels: ``dahdi_scan`` cannot
    tell PRI (23 B + D) from robbed-bit CAS, since both frame as ESF/D4. A span that is not
    configured (no ``type=`` line printed) carries nothing yet.
    """
    line = span.line_type.upper()
    if span.alarms == "UNCONFIGURED":
        return 0
    if not span.digital:
        return sum(1 for p in span.ports if p.kind in ("FXO", "FXS") and not p.failed)
    if line == "E1" or line.startswith("BRI"):
        return max(span.totchans - 1, 0)
    return span.totchans


def group_cards(spans: Iterable[DahdiSpan]) -> list[DahdiCard]:
    """Group spans into cards by manufacturer, device type and location."""
    groups: dict[tuple[str, str, str], list[DahdiSpan]] = {}
    for span in spans:
        groups.setdefault((span.manufacturer, span.devicetype, span.location), []).append(span)
    cards = []
    for (manufacturer, devicetype, location), members in groups.items():
        fxo = sum(1 for s in members for p in s.ports if p.kind == "FXO" and not p.failed)
        fxs = sum(1 for s in members for p in s.ports if p.kind == "FXS" and not p.failed)
        digital = sum(bearer_channels(s) for s in members if s.digital)
        in_service = sum(bearer_channels(s) for s in members if s.digital and s.alarm_ok)
        fxo_in_service = sum(
            1 for s in members if s.alarm_ok for p in s.ports if p.kind == "FXO" and not p.failed
        )
        line_types = sorted({s.line_type for s in members if s.line_type != "unknown"})
        cards.append(
            DahdiCard(
                model=card_model(members[0]) or devicetype or members[0].name or "unknown",
                manufacturer=manufacturer,
                devicetype=devicetype,
                location=location,
                spans=[s.number for s in members],
                line_type="/".join(line_types) or "unknown",
                fxo_ports=fxo,
                fxs_ports=fxs,
                voice_channels=digital + fxo + fxs,
                trunk_channels=in_service + fxo_in_service,
                alarms=[f"span {s.number}: {s.alarms}" for s in members if not s.alarm_ok],
            )
        )
    return cards


async def scan_dahdi(dev: Path, command: str, timeout_s: float) -> DahdiReport:
    """Look for ``/dev/dahdi`` and run ``dahdi_scan``; every failure becomes a clear detail."""
    if not await asyncio.to_thread(dev.exists):
        return DahdiReport(present=False, scanned=False, detail=f"{dev} does not exist")
    try:
        proc = await asyncio.create_subprocess_exec(
            command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        return DahdiReport(
            present=True,
            scanned=False,
            detail=f"{dev} exists but {command!r} is not installed (install dahdi-tools)",
        )
    except PermissionError:
        return DahdiReport(present=True, scanned=False, detail=f"no permission to run {command!r}")
    except OSError as exc:
        return DahdiReport(present=True, scanned=False, detail=f"cannot run {command!r}: {exc}")
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return DahdiReport(
            present=True, scanned=False, detail=f"{command!r} did not finish in {timeout_s:g} s"
        )
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        return DahdiReport(present=True, scanned=False, detail=f"{command!r} failed: {message}")
    try:
        spans = parse_dahdi_scan(out.decode(errors="replace"))
    except DahdiScanError as exc:
        return DahdiReport(
            present=True, scanned=False, detail=f"unexpected {command!r} output: {exc}"
        )
    detail = f"{len(spans)} span(s)" if spans else "no spans configured"
    return DahdiReport(
        present=True, scanned=True, detail=detail, spans=spans, cards=group_cards(spans)
    )
