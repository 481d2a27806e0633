"""RTP for a simulated PJSIP channel (RFC 3550, G.711, RFC 4733 DTMF both ways).

:func:`parse_rtp` / :func:`build_rtp` are pure. :class:`RtpSession` is the UDP socket of one
call: it decodes what the phone sends into the channel's audio (20 ms frames at the
simulator's internal rate) and sends, 20 ms per packet, what the channel writes. Its counters
feed ``GET /channels/{id}/rtp_statistics`` and the ``RTPAUDIOQOS*`` variables: they count the
packets that really went over the socket.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from operadora.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from operadora.sim.media import from_internal, to_internal

log = logging.getLogger(__name__)

RTP_HEADER = struct.Struct("!BBHII")
RTP_RATE = 8000
SAMPLES_PER_PACKET = RTP_RATE // 50  # 20 ms
FRAME_BYTES_8K = SAMPLES_PER_PACKET * 2


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket:
    """One RTP packet; raises ValueError if it is not RTP version 2."""
    if len(data) < RTP_HEADER.size:
        raise ValueError("shorter than an RTP header")
    first, second, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise ValueError(f"RTP version {first >> 6}")
    offset = RTP_HEADER.size + 4 * (first & 0x0F)
    if first & 0x10:  # header extension
        if len(data) < offset + 4:
            raise ValueError("truncated header extension")
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    end = len(data)
    if first & 0x20:  # padding
        end -= data[-1]
    if end < offset:
        raise ValueError("truncated RTP packet")
    return RtpPacket(second & 0x7F, seq, ts, ssrc, bool(second & 0x80), data[offset:end])


def build_rtp(
    payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes, marker: bool
) -> bytes:
    second = (0x80 if marker else 0) | (payload_type & 0x7F)
    header = RTP_HEADER.pack(0x80, second, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    return header + payload


DTMF_EVENTS = "0123456789*#ABCD"
DTMF_VOLUME = 10  # -10 dBm0
FRAME_S = 0.02


def parse_telephone_event(payload: bytes) -> tuple[str, bool, int] | None:
    """RFC 4733: (digit, end of event, duration in samples), None for non-DTMF events."""
    if len(payload) < 4:
        return None
    event, flags, duration = struct.unpack_from("!BBH", payload)
    if event >= len(DTMF_EVENTS):
        return None
    return DTMF_EVENTS[event], bool(flags & 0x80), duration


class _Spread:
    """Running min/max/mean/standard deviation (Welford)."""

    __slots__ = ("count", "high", "low", "m2", "mean")

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.low = 0.0
        self.high = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        if self.count == 1:
            self.low = self.high = value
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    @property
    def stdev(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count > 1 else 0.0


class RtpSession(asyncio.DatagramProtocol):
    """The media socket of one SIP call."""

    def __init__(self, payload_type: int, dtmf_payload_type: int | None) -> None:
        self.payload_type = payload_type
        self.dtmf_payload_type = dtmf_payload_type
        self.remote: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.local_ssrc = random.getrandbits(32)
        self.remote_ssrc = 0
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self._first_sent = True
        self.tx_count = 0
        self.tx_octets = 0
        self.rx_count = 0
        self.rx_octets = 0
        self._rx_base_seq: int | None = None
        self._rx_max_seq = 0
        self._rx_cycles = 0
        self._transit: float | None = None
        self.rx_jitter = 0.0  # seconds (RFC 3550 6.4.1 interarrival jitter)
        self._jitter = _Spread()
        self._pending = bytearray()
        self._dtmf_ts: int | None = None
        self.on_audio: Callable[[bytes], None] | None = None  # 20 ms at the internal rate
        self.on_dtmf: Callable[[str, int], None] | None = None  # digit, duration ms
        self._dtmf_out: asyncio.Task[None] | None = None
        self._sending_dtmf = False
        self.closed = False

    # ----- socket -----
    @classmethod
    async def open(cls, host: str, payload_type: int, dtmf_payload_type: int | None) -> RtpSession:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: cls(payload_type, dtmf_payload_type), local_addr=(host, 0)
        )
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    @property
    def local_port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        self.closed = True
        if self._dtmf_out is not None:
            self._dtmf_out.cancel()
        if self.transport is not None:
            self.transport.close()

    # ----- receiving -----
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.closed:
            return
        try:
            packet = parse_rtp(data)
        except ValueError as exc:
            log.debug("dropped a non-RTP datagram from %s: %s", addr, exc)
            return
        self.remote = (addr[0], addr[1])  # rtp_symmetric: answer where it comes from
        if packet.payload_type == self.dtmf_payload_type:
            self._telephone_event(packet)
            return
        if packet.payload_type != self.payload_type:
            return
        self.remote_ssrc = packet.ssrc
        self.rx_count += 1
        self.rx_octets += len(packet.payload)
        self._sequence(packet.sequence)
        self._update_jitter(packet.timestamp)
        decode = alaw_decode if self.payload_type == 8 else ulaw_decode
        self._pending += decode(packet.payload)
        while len(self._pending) >= FRAME_BYTES_8K:
            frame = bytes(self._pending[:FRAME_BYTES_8K])
            del self._pending[:FRAME_BYTES_8K]
            if self.on_audio is not None:
                self.on_audio(to_internal(frame, RTP_RATE))

    def _sequence(self, seq: int) -> None:
        if self._rx_base_seq is None:
            self._rx_base_seq = self._rx_max_seq = seq
            return
        if 0 < (seq - self._rx_max_seq) & 0xFFFF < 0x8000:
            if seq < self._rx_max_seq:
                self._rx_cycles += 1 << 16
            self._rx_max_seq = seq

    def _update_jitter(self, timestamp: int) -> None:
        arrival = time.monotonic() * RTP_RATE
        transit = arrival - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            self.rx_jitter += (d / RTP_RATE - self.rx_jitter) / 16
            self._jitter.add(self.rx_jitter)
        self._transit = transit

    def _telephone_event(self, packet: RtpPacket) -> None:
        event = parse_telephone_event(packet.payload)
        if event is None:
            return
        digit, end, duration = event
        if end and packet.timestamp != self._dtmf_ts:  # the end packet is sent three times
            self._dtmf_ts = packet.timestamp
            if self.on_dtmf is not None:
                self.on_dtmf(digit, duration * 1000 // RTP_RATE)

    @property
    def rx_lost(self) -> int:
        if self._rx_base_seq is None:
            return 0
        expected = self._rx_cycles + self._rx_max_seq - self._rx_base_seq + 1
        return max(0, expected - self.rx_count)

    # ----- sending -----
    def send_frame(self, frame: bytes) -> None:
        """One 20 ms frame at the internal rate, as one RTP packet."""
        if self.closed or self.transport is None or self.remote is None or self._sending_dtmf:
            return
        pcm = from_internal(frame, RTP_RATE)
        payload = (alaw_encode if self.payload_type == 8 else ulaw_encode)(pcm)
        packet = build_rtp(
            self.payload_type, self._seq, self._ts, self.local_ssrc, payload, self._first_sent
        )
        self._first_sent = False
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + len(payload)) & 0xFFFFFFFF
        self.transport.sendto(packet, self.remote)
        self.tx_count += 1
        self.tx_octets += len(payload)

    def send_dtmf(self, digit: str, duration_ms: int) -> None:
        """An RFC 4733 digit to the phone: event packets every 20 ms, the end one three times;
        the channel's audio pauses meanwhile (as Asterisk replaces it with the events)."""
        if self.dtmf_payload_type is None or digit.upper() not in DTMF_EVENTS or self.closed:
            return
        loop = asyncio.get_running_loop()
        previous = self._dtmf_out
        self._dtmf_out = loop.create_task(self._send_digit(previous, digit.upper(), duration_ms))

    async def _send_digit(
        self, previous: asyncio.Task[None] | None, digit: str, duration_ms: int
    ) -> None:
        if previous is not None:
            await asyncio.shield(previous)
        event = DTMF_EVENTS.index(digit)
        total = max(duration_ms, 40) * RTP_RATE // 1000
        timestamp = self._ts
        self._sending_dtmf = True
        try:
            duration = 0
            while duration < total:
                duration = min(duration + SAMPLES_PER_PACKET, total)
                self._send_event(event, timestamp, duration, end=False, marker=duration <= 160)
                await asyncio.sleep(FRAME_S)
            for _ in range(3):
                self._send_event(event, timestamp, total, end=True, marker=False)
        finally:
            self._sending_dtmf = False
            self._ts = (timestamp + total) & 0xFFFFFFFF

    def _send_event(
        self, event: int, timestamp: int, duration: int, *, end: bool, marker: bool
    ) -> None:
        if self.closed or self.transport is None or self.remote is None:
            return
        assert self.dtmf_payload_type is not None
        payload = struct.pack("!BBH", event, (0x80 if end else 0) | DTMF_VOLUME, duration)
        packet = build_rtp(
            self.dtmf_payload_type, self._seq, timestamp, self.local_ssrc, payload, marker
        )
        self._seq = (self._seq + 1) & 0xFFFF
        self.transport.sendto(packet, self.remote)
        self.tx_count += 1
        self.tx_octets += len(payload)

    # ----- statistics -----
    def statistics(self) -> dict[str, float | int]:
        """The counters ``rtp_statistics`` reports; RTCP-derived values (remote jitter and
        loss, round-trip time, MES) stay 0: the simulator sends and reads no RTCP."""
        return {
            "txcount": self.tx_count,
            "rxcount": self.rx_count,
            "txploss": 0,
            "rxploss": self.rx_lost,
            "local_ssrc": self.local_ssrc,
            "remote_ssrc": self.remote_ssrc,
            "txoctetcount": self.tx_octets,
            "rxoctetcount": self.rx_octets,
            "rxjitter": round(self.rx_jitter, 6),
            "local_maxjitter": round(self._jitter.high, 6),
            "local_minjitter": round(self._jitter.low, 6),
            "local_normdevjitter": round(self._jitter.mean, 6),
            "local_stdevjitter": round(self._jitter.stdev, 6),
        }

    def qos_variables(self) -> list[tuple[str, str]]:
        """The ``RTPAUDIOQOS*`` variables Asterisk sets before destroying a PJSIP channel
        (trace e1), in its order and number formats."""
        j = self._jitter

        def f(v: float) -> str:
            return f"{v:010.6f}"

        return [
            (
                "RTPAUDIOQOS",
                f"ssrc={self.local_ssrc};themssrc={self.remote_ssrc};lp={self.rx_lost};"
                f"rxjitter={self.rx_jitter:.6f};rxcount={self.rx_count};txjitter=0.000000;"
                f"txcount={self.tx_count};rlp=0;rtt=0.000000;rxmes=0.000000;txmes=0.000000",
            ),
            (
                "RTPAUDIOQOSJITTER",
                f"minrxjitter={f(j.low)};maxrxjitter={f(j.high)};avgrxjitter={f(j.mean)};"
                f"stdevrxjitter={f(j.stdev)};mintxjitter={f(0)};maxtxjitter={f(0)};"
                f"avgtxjitter={f(0)};stdevtxjitter={f(0)};",
            ),
            (
                "RTPAUDIOQOSLOSS",
                "".join(
                    f"  {k}={f(0)};"
                    for k in (
                        "minrxlost",
                        "maxrxlost",
                        "avgrxlost",
                        "stdevrxlost",
                        "mintxlost",
                        "maxtxlost",
                        "avgtxlost",
                        "stdevtxlost",
                    )
                ),
            ),
            (
                "RTPAUDIOQOSRTT",
                "".join(f"     {k}={f(0)};" for k in ("minrtt", "maxrtt", "avgrtt", "stdevrtt")),
            ),
            (
                "RTPAUDIOQOSMES",
                "".join(
                    f"   {k}={f(0)};"
                    for k in (
                        "minrxmes",
                        "maxrxmes",
                        "avgrxmes",
                        "stdevrxmes",
                        "mintxmes",
                        "maxtxmes",
                        "avgtxmes",
                        "stdevtxmes",
                    )
                ),
            ),
        ]
