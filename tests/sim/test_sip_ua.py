"""The simulator's SIP user agent over real UDP on 127.0.0.1, with a small scripted phone
(the SIP text is sipp's, from ``../shared/asterisk/ari-traces/e1_sip_call_into_stasis.sip.txt``)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest

from operadora.audio.g711 import alaw_decode, alaw_encode
from operadora.sim.server import Simulator, start_simulator
from operadora.sim.sip.message import (
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
    parse_name_addr,
)
from operadora.sim.sip.rtp import build_rtp, parse_rtp, parse_telephone_event
from operadora.sim.sip.sdp import parse_offer
from operadora.sim.sounds import load_prompt

pytestmark = pytest.mark.integration

APP = "callcenter-ai"


class Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait(data)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


async def udp() -> Udp:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
    return proto


class Phone:
    """sipp's uac_stasis.xml as a test double: INVITE, ACK, RTP, BYE."""

    def __init__(self, sim: Simulator, sip: Udp, rtp: Udp, user: str = "sipp") -> None:
        assert sim.sip_port is not None
        self.target = ("127.0.0.1", sim.sip_port)
        self.sip, self.rtp, self.user = sip, rtp, user
        self.call_id = f"1-{sip.port}@127.0.0.1"
        self.to = ""
        self.remote_rtp: tuple[str, int] | None = None

    def send(self, text: str, body: bytes = b"") -> None:
        head = text.strip("\n").replace("\n", "\r\n")
        assert self.sip.transport is not None
        data = f"{head}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        self.sip.transport.sendto(data, self.target)

    async def receive(self, within_s: float = 5) -> SipRequest | SipResponse:
        return parse_message(await asyncio.wait_for(self.sip.queue.get(), within_s))

    def invite(self, exten: str = "110") -> None:
        host, port = self.target
        sdp = (
            "v=0\r\no=sipp 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
            f"t=0 0\r\nm=audio {self.rtp.port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
        ).encode()
        self.send(
            f"""INVITE sip:{exten}@{host}:{port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{self.sip.port};branch=z9hG4bK-1-1-0
From: "SIPp caller" <sip:{self.user}@127.0.0.1:{self.sip.port}>;tag=1SIPpTag001
To: <sip:{exten}@{host}:{port}>
Call-ID: {self.call_id}
CSeq: 1 INVITE
Contact: <sip:{self.user}@127.0.0.1:{self.sip.port}>
Max-Forwards: 70
Content-Type: application/sdp""",
            sdp,
        )

    def answered(self, ok: SipResponse) -> None:
        self.to = ok.header("To") or ""
        offer = parse_offer(ok.body)
        self.remote_rtp = (offer.address, offer.port)

    def in_dialog(self, method: str, cseq: int) -> None:
        self.send(
            f"""{method} sip:127.0.0.1:{self.target[1]} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{self.sip.port};branch=z9hG4bK-1-1-{cseq}{method}
From: "SIPp caller" <sip:{self.user}@127.0.0.1:{self.sip.port}>;tag=1SIPpTag001
To: {self.to}
Call-ID: {self.call_id}
CSeq: {cseq} {method}
Max-Forwards: 70"""
        )

    def send_rtp(self, payloads: list[bytes]) -> None:
        assert self.rtp.transport is not None and self.remote_rtp is not None
        for seq, payload in enumerate(payloads):
            packet = build_rtp(8, seq, seq * 160, 0x5150, payload, seq == 0)
            self.rtp.transport.sendto(packet, self.remote_rtp)


class Events:
    def __init__(self, sim: Simulator, session: aiohttp.ClientSession) -> None:
        self.sim, self.session = sim, session
        self.items: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    async def read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            self.items.append(json.loads(msg.data))
            self.arrived.set()

    async def wait(self, kind: str, **fields: Any) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            seen = 0
            while True:
                for event in self.items[seen:]:
                    if event["type"] == kind and all(event.get(k) == v for k, v in fields.items()):
                        return event
                seen = len(self.items)
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(find(), 5)

    async def call(self, method: str, path: str, **query: str) -> tuple[int, Any]:
        url = f"{self.sim.ari_url}{path}"
        async with self.session.request(method, url, params=query) as resp:
            body = await resp.json() if resp.status not in (204,) else None
            return resp.status, body


@pytest.fixture
async def sip_sim(make_sim_settings: Any) -> AsyncIterator[Simulator]:
    sim = await start_simulator(make_sim_settings(sip_port=0))
    try:
        yield sim
    finally:
        await sim.close()


@pytest.fixture
async def events(sip_sim: Simulator, sim_credentials: tuple[str, str]) -> AsyncIterator[Events]:
    token = base64.b64encode(":".join(sim_credentials).encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as session:
        ws = await session.ws_connect(f"{sip_sim.ari_url}/events?app={APP}&subscribeAll=true")
        ev = Events(sip_sim, session)
        task = asyncio.create_task(ev.read(ws))
        yield ev
        await ws.close()
        task.cancel()


@pytest.fixture
async def phone(sip_sim: Simulator) -> AsyncIterator[Phone]:
    sip, rtp = await udp(), await udp()
    yield Phone(sip_sim, sip, rtp)
    for sock in (sip, rtp):
        assert sock.transport is not None
        sock.transport.close()


def tone(freq: float, packets: int) -> list[bytes]:
    t = np.arange(packets * 160) / 8000
    pcm = (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()
    encoded = alaw_encode(pcm)
    return [encoded[i * 160 : (i + 1) * 160] for i in range(packets)]


async def test_sip_off_by_default(simulator: Simulator) -> None:
    assert simulator.sip_port is None


async def test_call_into_stasis_with_real_rtp(
    sip_sim: Simulator, events: Events, phone: Phone
) -> None:
    phone.invite()
    trying = await phone.receive()
    assert isinstance(trying, SipResponse) and trying.status == 100
    start = await events.wait("StasisStart")
    channel = start["channel"]
    cid = channel["id"]
    assert channel["name"].startswith("PJSIP/sipp-") and channel["state"] == "Ring"
    assert channel["caller"] == {"name": "SIPp caller", "number": "sipp"}
    assert channel["protocol_id"] == phone.call_id
    assert start["args"] == ["inbound", "110"]
    assert (await events.call("POST", f"/channels/{cid}/answer"))[0] == 204
    ok = await phone.receive()
    assert isinstance(ok, SipResponse) and ok.status == 200
    assert ok.header("Content-Type") == "application/sdp"
    phone.answered(ok)
    phone.in_dialog("ACK", 1)
    _, addr = await events.call(
        "GET", f"/channels/{cid}/variable", variable="CHANNEL(pjsip,remote_addr)"
    )
    assert addr == {"value": f"127.0.0.1:{phone.sip.port}"}
    phone.send_rtp(tone(440, 30))
    await asyncio.sleep(0.3)
    _, stats = await events.call("GET", f"/channels/{cid}/rtp_statistics")
    assert (stats["rxcount"], stats["rxoctetcount"], stats["remote_ssrc"]) == (30, 4800, 0x5150)
    assert stats["txcount"] == 0

    await events.call("POST", f"/channels/{cid}/play", media="sound:hello-world", playbackId="p")
    await events.wait("PlaybackFinished")
    await asyncio.sleep(0.1)
    received = []
    while not phone.rtp.queue.empty():
        received.append(parse_rtp(phone.rtp.queue.get_nowait()))
    _, stats = await events.call("GET", f"/channels/{cid}/rtp_statistics")
    assert stats["txcount"] == len(received) == len(load_prompt("hello-world").frames)
    assert all(p.payload_type == 8 and len(p.payload) == 160 for p in received)
    assert [p.sequence for p in received] == [
        (received[0].sequence + i) & 0xFFFF for i in range(len(received))
    ]
    assert received[0].marker and stats["local_ssrc"] == received[0].ssrc
    audio = np.frombuffer(alaw_decode(b"".join(p.payload for p in received)), "<i2")
    assert np.abs(audio).max() > 1000  # the prompt, not silence

    assert (await events.call("DELETE", f"/channels/{cid}"))[0] == 204
    bye = await phone.receive()
    assert isinstance(bye, SipRequest) and bye.method == "BYE"
    assert bye.header("Reason") == "Q.850;cause=16"
    assert parse_name_addr(bye.header("From") or "").tag == parse_name_addr(phone.to).tag
    destroyed = await events.wait("ChannelDestroyed")
    assert destroyed["cause"] == 16
    mine = [e for e in events.items if e.get("channel", {}).get("id") == cid]
    qos = next(i for i, e in enumerate(mine) if e.get("variable") == "RTPAUDIOQOS")
    assert "rxcount=30;" in mine[qos]["value"]
    assert f"txcount={len(received)};" in mine[qos]["value"]
    hangup = next(i for i, e in enumerate(mine) if e["type"] == "ChannelHangupRequest")
    assert qos < hangup  # as traced (e1): the QoS variables come first
    assert phone.sip.transport is not None
    phone.sip.transport.sendto(make_response(bye, 200, "OK").serialize(), phone.target)


async def test_caller_audio_reaches_the_channel_and_comes_back(phone: Phone) -> None:
    """Exten 400 is Answer() + Echo(): what the phone sends, decoded and re-encoded, returns;
    so do its RFC 4733 digits."""
    phone.invite("400")
    assert (await phone.receive()).status == 100  # type: ignore[union-attr]
    ok = await phone.receive()
    assert isinstance(ok, SipResponse) and ok.status == 200
    phone.answered(ok)
    phone.in_dialog("ACK", 1)
    phone.send_rtp(tone(1000, 1))  # Answer() waits for the first media, then Echo() runs
    await asyncio.sleep(0.3)
    while not phone.rtp.queue.empty():
        phone.rtp.queue.get_nowait()
    phone.send_rtp(tone(1000, 25))
    echoed = []
    with pytest.raises(TimeoutError):
        while True:
            echoed.append(parse_rtp(await asyncio.wait_for(phone.rtp.queue.get(), 0.5)))
    assert len(echoed) == 25
    audio = np.frombuffer(alaw_decode(b"".join(p.payload for p in echoed)), "<i2")
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
    assert abs(np.argmax(spectrum) * 8000 / len(audio) - 1000) < 20
    # an RFC 4733 digit: the channel reads it, Echo() sends it back as events
    assert phone.rtp.transport is not None and phone.remote_rtp is not None
    for seq, (end, duration) in enumerate([(0, 160), (0, 320), (0, 480), *[(0x80, 800)] * 3]):
        payload = struct.pack("!BBH", 5, end | 10, duration)
        packet = build_rtp(101, 100 + seq, 48000, 0x5150, payload, seq == 0)
        phone.rtp.transport.sendto(packet, phone.remote_rtp)
    events = []
    with pytest.raises(TimeoutError):
        while True:
            events.append(parse_rtp(await asyncio.wait_for(phone.rtp.queue.get(), 0.5)))
    assert {p.payload_type for p in events} == {101}
    digits = [parse_telephone_event(p.payload) for p in events]
    assert digits[-3:] == [("5", True, 800)] * 3  # 100 ms, the end packet three times
    assert all(d is not None and d[0] == "5" and not d[1] for d in digits[:-3])
    assert len({p.timestamp for p in events}) == 1 and events[0].marker
    phone.in_dialog("BYE", 2)
    ok_bye = await phone.receive()
    assert isinstance(ok_bye, SipResponse) and ok_bye.status == 200


async def test_phone_hangs_up(sip_sim: Simulator, events: Events, phone: Phone) -> None:
    phone.invite()
    await phone.receive()
    start = await events.wait("StasisStart")
    cid = start["channel"]["id"]
    await events.call("POST", f"/channels/{cid}/answer")
    phone.answered(await phone.receive())  # type: ignore[arg-type]
    phone.in_dialog("ACK", 1)
    phone.in_dialog("BYE", 2)
    ok = await phone.receive()
    assert isinstance(ok, SipResponse) and (ok.status, ok.cseq) == (200, (2, "BYE"))
    request = await events.wait("ChannelHangupRequest", cause=16)
    assert request["channel"]["id"] == cid and "soft" not in request
    assert (await events.wait("ChannelDestroyed"))["cause"] == 16
    assert (await events.call("GET", f"/channels/{cid}"))[0] == 404


async def test_unknown_caller_and_unknown_exten(phone: Phone) -> None:
    phone.user = "stranger"
    phone.invite()
    answer = await phone.receive()
    assert isinstance(answer, SipResponse) and answer.status == 403
    phone.user, phone.call_id = "sipp", "other@127.0.0.1"
    phone.invite("999")
    answer = await phone.receive()
    assert isinstance(answer, SipResponse) and answer.status == 404


async def test_malformed_datagrams_are_dropped_and_the_simulator_goes_on(
    phone: Phone, caplog: pytest.LogCaptureFixture
) -> None:
    assert phone.sip.transport is not None
    with caplog.at_level(logging.WARNING, logger="operadora.sim.sip.ua"):
        phone.sip.transport.sendto(b"\x00\xffgarbage", phone.target)
        await asyncio.sleep(0.1)
    assert sum("malformed SIP datagram" in r.getMessage() for r in caplog.records) == 1
    assert phone.sip.queue.empty()  # nothing to answer to
    # a request that can be answered but lacks a mandatory header gets a 400
    phone.send(
        f"""OPTIONS sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{phone.sip.port};branch=z9hG4bK-x
From: <sip:sipp@127.0.0.1>;tag=a
To: <sip:127.0.0.1>
CSeq: 1 OPTIONS"""
    )
    bad = await phone.receive()
    assert isinstance(bad, SipResponse) and (bad.status, bad.reason) == (400, "Missing Call-ID")
    phone.send(
        f"""OPTIONS sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{phone.sip.port};branch=z9hG4bK-y
From: <sip:sipp@127.0.0.1>;tag=a
To: <sip:127.0.0.1>
Call-ID: ok@127.0.0.1
CSeq: 1 INVITE"""
    )
    mismatch = await phone.receive()
    assert isinstance(mismatch, SipResponse) and mismatch.status == 400
    phone.send(
        f"""OPTIONS sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{phone.sip.port};branch=z9hG4bK-z
From: <sip:sipp@127.0.0.1>;tag=a
To: <sip:127.0.0.1>
Call-ID: ok@127.0.0.1
CSeq: 2 OPTIONS"""
    )
    fine = await phone.receive()
    assert isinstance(fine, SipResponse) and fine.status == 200
    with caplog.at_level(logging.WARNING, logger="operadora.sim.sip.ua"):
        phone.send(  # a Via nobody could answer to
            """OPTIONS sip:127.0.0.1 SIP/2.0
Via: garbage
From: <sip:sipp@127.0.0.1>;tag=a
To: <sip:127.0.0.1>
Call-ID: ok@127.0.0.1
CSeq: 3 OPTIONS"""
        )
        await asyncio.sleep(0.1)
    assert phone.sip.queue.empty()
    assert any("dropped a malformed SIP message" in r.getMessage() for r in caplog.records)
    phone.to = "<sip:110@127.0.0.1>;tag=nope"
    phone.in_dialog("BYE", 3)
    gone = await phone.receive()
    assert isinstance(gone, SipResponse) and gone.status == 481


async def test_phone_cancels_before_the_answer(
    sip_sim: Simulator, events: Events, phone: Phone
) -> None:
    phone.invite()
    await phone.receive()
    start = await events.wait("StasisStart")
    phone.to = "<sip:110@127.0.0.1>"  # CANCEL repeats the INVITE's To (no tag)
    phone.send(
        f"""CANCEL sip:110@127.0.0.1:{phone.target[1]} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{phone.sip.port};branch=z9hG4bK-1-1-0
From: "SIPp caller" <sip:sipp@127.0.0.1:{phone.sip.port}>;tag=1SIPpTag001
To: <sip:110@127.0.0.1:{phone.target[1]}>
Call-ID: {phone.call_id}
CSeq: 1 CANCEL"""
    )
    answers = {}
    for _ in range(2):
        answer = await phone.receive()
        assert isinstance(answer, SipResponse)
        answers[answer.cseq[1]] = answer.status
    assert answers == {"CANCEL": 200, "INVITE": 487}
    destroyed = await events.wait("ChannelDestroyed")
    assert destroyed["channel"]["id"] == start["channel"]["id"]
    phone.in_dialog("ACK", 1)  # the 487 is acknowledged; nothing more comes
    with pytest.raises(TimeoutError):
        await phone.receive(within_s=0.7)
