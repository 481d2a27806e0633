"""SDP offer/answer for one audio stream (RFC 4566, RFC 3264), without I/O.

The simulator answers like the acceptance Asterisk (``allow = ulaw,alaw``, RFC 4733 DTMF):
the first offered codec it supports, ``telephone-event`` if offered, 20 ms packets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operadora.sim.sip.message import SipParseError

# static payload types (RFC 3551) the endpoints allow
CODECS = {0: "PCMU", 8: "PCMA"}
CODEC_PT = {name: pt for pt, name in CODECS.items()}
TELEPHONE_EVENT = "telephone-event"


@dataclass(slots=True)
class MediaOffer:
    """The audio part of a remote offer."""

    address: str
    port: int
    payload_types: list[int]
    rtpmap: dict[int, str] = field(default_factory=dict)  # pt -> "PCMA/8000"
    direction: str = "sendrecv"

    def codec_name(self, pt: int) -> str:
        if pt in self.rtpmap:
            return self.rtpmap[pt].split("/", 1)[0]
        return CODECS.get(pt, "")

    @property
    def telephone_event(self) -> int | None:
        for pt in self.payload_types:
            if self.codec_name(pt).lower() == TELEPHONE_EVENT:
                return pt
        return None


def parse_offer(body: bytes) -> MediaOffer:
    """The first ``m=audio`` stream of an SDP body and its connection address."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("SDP is not UTF-8") from None
    session_address = ""
    media_address = ""
    port: int | None = None
    pts: list[int] = []
    rtpmap: dict[int, str] = {}
    direction = "sendrecv"
    in_audio = False
    seen_audio = False
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:].strip()
        if kind == "m":
            if seen_audio:
                in_audio = False
                continue
            parts = value.split()
            in_audio = len(parts) >= 4 and parts[0] == "audio"
            if in_audio:
                seen_audio = True
                if not parts[1].isdigit():
                    raise SipParseError(f"bad media port in m={value[:60]!r}")
                port = int(parts[1])
                try:
                    pts = [int(p) for p in parts[3:]]
                except ValueError:
                    raise SipParseError(f"bad payload types in m={value[:60]!r}") from None
        elif kind == "c":
            parts = value.split()
            if len(parts) < 3 or parts[0] != "IN":
                raise SipParseError(f"bad connection line c={value[:60]!r}")
            if in_audio:
                media_address = parts[2]
            elif not seen_audio:
                session_address = parts[2]
        elif kind == "a" and in_audio:
            name, _, attr = value.partition(":")
            if name == "rtpmap":
                pt_text, _, encoding = attr.partition(" ")
                if pt_text.isdigit():
                    rtpmap[int(pt_text)] = encoding.strip()
            elif name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                direction = name
    if port is None:
        raise SipParseError("no audio stream in the SDP offer")
    address = media_address or session_address
    if not address:
        raise SipParseError("no connection address in the SDP offer")
    return MediaOffer(address, port, pts, rtpmap, direction)


def choose_codec(offer: MediaOffer, allowed: tuple[str, ...] = ("PCMU", "PCMA")) -> int | None:
    """The first payload type of the offer that is an allowed codec (the offerer's order)."""
    for pt in offer.payload_types:
        name = offer.codec_name(pt).upper()
        if name in allowed and CODEC_PT.get(name) == pt:
            return pt
        if name in allowed and pt >= 96:  # dynamic number for a static codec
            return pt
    return None


def build_answer(
    offer: MediaOffer,
    *,
    address: str,
    port: int,
    payload_type: int,
    session_id: int,
    version: int,
) -> bytes:
    """Our answer, shaped like Asterisk's (trace e1's 200 OK)."""
    codec = offer.codec_name(payload_type).upper() or CODECS[payload_type]
    dtmf = offer.telephone_event
    pts = [payload_type] + ([dtmf] if dtmf is not None else [])
    flipped = {"sendonly": "recvonly", "recvonly": "sendonly"}
    direction = flipped.get(offer.direction, offer.direction)
    lines = [
        "v=0",
        f"o=- {session_id} {version} IN IP4 {address}",
        "s=Asterisk",
        f"c=IN IP4 {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(p) for p in pts)}",
        f"a=rtpmap:{payload_type} {codec}/8000",
    ]
    if dtmf is not None:
        lines += [f"a=rtpmap:{dtmf} telephone-event/8000", f"a=fmtp:{dtmf} 0-16"]
    lines += ["a=ptime:20", "a=maxptime:140", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
