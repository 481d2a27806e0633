"""SIP messages without I/O (RFC 3261): bytes in, :class:`SipRequest`/:class:`SipResponse` out,
and back to bytes.

Only what the simulator's user agent needs: start line, headers (compact forms expanded,
folded lines joined), a body cut to ``Content-Length``, and the few header grammars it reads
(name-addr with tag, SIP URI, Via). Anything that cannot be framed raises
:class:`SipParseError`; the caller decides whether to drop the datagram or answer 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_MESSAGE_BYTES = 65_535  # one UDP datagram
SIP_VERSION = "SIP/2.0"

# RFC 3261 7.3.3 and the RFC 3515/3892 additions
COMPACT_FORMS = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "r": "Refer-To",
    "b": "Referred-By",
    "o": "Event",
    "u": "Allow-Events",
}
# Headers every request must carry (RFC 3261 8.1.1)
REQUIRED_REQUEST_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")

_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")


class SipParseError(ValueError):
    """The bytes are not a SIP message this parser can frame."""


def _canonical(name: str) -> str:
    full = COMPACT_FORMS.get(name.lower())
    if full is not None:
        return full
    return name


@dataclass
class SipMessage:
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        """Every value of ``name``, comma-separated values split (Via, Allow, ...)."""
        wanted = name.lower()
        out: list[str] = []
        for key, value in self.headers:
            if key.lower() == wanted:
                out.extend(split_header_list(value))
        return out

    def add(self, name: str, value: str) -> None:
        self.headers.append((name, value))

    def replace(self, name: str, value: str) -> None:
        """Set ``name`` to a single value, keeping the position of its first occurrence."""
        wanted = name.lower()
        out: list[tuple[str, str]] = []
        done = False
        for key, old in self.headers:
            if key.lower() == wanted:
                if not done:
                    out.append((key, value))
                    done = True
                continue
            out.append((key, old))
        if not done:
            out.append((name, value))
        self.headers = out

    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """``CSeq: 1 INVITE`` -> (1, "INVITE")."""
        return parse_cseq(self.header("CSeq") or "")

    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """The wire form; ``Content-Length`` always matches the body."""
        lines = [self.start_line()]
        lines.extend(f"{k}: {v}" for k, v in self.headers if k.lower() != "content-length")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass
class SipRequest(SipMessage):
    method: str = ""
    uri: str = ""

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"


@dataclass
class SipResponse(SipMessage):
    status: int = 0
    reason: str = ""

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Frame one datagram. Raises :class:`SipParseError` for anything malformed."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message of {len(data)} bytes is too large")
    data = data.lstrip(b"\r\n")  # keep-alive CRLFs before a message are allowed
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    if not sep:
        raise SipParseError("no blank line after the headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    message = _start_line(lines[0])
    message.headers = _headers(lines[1:])
    length_text = message.header("Content-Length")
    if length_text is not None:
        try:
            length = int(length_text.strip())
        except ValueError:
            raise SipParseError(f"bad Content-Length {length_text!r}") from None
        if length < 0 or length > len(body):
            raise SipParseError(f"Content-Length {length} but {len(body)} body bytes")
        body = body[:length]
    message.body = body
    return message


def _start_line(line: str) -> SipRequest | SipResponse:
    parts = line.strip().split(" ", 2)
    if len(parts) < 3:
        raise SipParseError(f"bad start line {line[:80]!r}")
    if parts[0] == SIP_VERSION:
        if not (parts[1].isdigit() and len(parts[1]) == 3):
            raise SipParseError(f"bad status code {parts[1][:10]!r}")
        return SipResponse(status=int(parts[1]), reason=parts[2])
    method, uri, version = parts
    if version != SIP_VERSION:
        raise SipParseError(f"unsupported version {version[:20]!r}")
    if not _TOKEN.match(method) or not uri or " " in uri:
        raise SipParseError(f"bad request line {line[:80]!r}")
    return SipRequest(method=method, uri=uri)


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in lines:
        if not line:
            continue
        if line[0] in " \t":  # folded continuation of the previous header
            if not out:
                raise SipParseError("continuation line before any header")
            name, value = out[-1]
            out[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not _HEADER_NAME.match(name):
            raise SipParseError(f"bad header line {line[:80]!r}")
        out.append((_canonical(name), value.strip()))
    return out


def split_header_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas in quotes and ``<...>``."""
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    for i, ch in enumerate(value):
        if ch == '"' and (i == 0 or value[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and ch == ",":
            out.append(value[start:i].strip())
            start = i + 1
    last = value[start:].strip()
    if last:
        out.append(last)
    return out


def parse_cseq(value: str) -> tuple[int, str]:
    number, _, method = value.strip().partition(" ")
    method = method.strip()
    if not number.isdigit() or not method:
        raise SipParseError(f"bad CSeq {value[:40]!r}")
    return int(number), method


def parse_params(text: str) -> dict[str, str]:
    """``;tag=abc;lr`` -> {"tag": "abc", "lr": ""} (names lower-cased)."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        out[name.strip().lower()] = value.strip()
    return out


@dataclass(frozen=True, slots=True)
class SipUri:
    scheme: str
    user: str
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


def parse_uri(text: str) -> SipUri:
    """``sip:sipp@127.0.0.1:5062;transport=UDP`` (headers after ``?`` are ignored)."""
    text = text.strip()
    scheme, sep, rest = text.partition(":")
    if not sep or scheme.lower() not in ("sip", "sips"):
        raise SipParseError(f"not a SIP URI: {text[:80]!r}")
    rest = rest.split("?", 1)[0]
    rest, _, params = rest.partition(";")
    user, at, hostport = rest.rpartition("@")
    if not at:
        user, hostport = "", rest
    host, port = _hostport(hostport)
    return SipUri(scheme.lower(), user, host, port, parse_params(params))


def _hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):  # IPv6 reference
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise SipParseError(f"no host in {text[:80]!r}")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SipParseError(f"bad port in {text[:80]!r}")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``"SIPp caller" <sip:sipp@127.0.0.1:5062>;tag=20805SIPpTag001``."""

    display: str
    uri: str
    params: dict[str, str]

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def sip_uri(self) -> SipUri:
        return parse_uri(self.uri)


def parse_name_addr(text: str) -> NameAddr:
    text = text.strip()
    if "<" in text:
        display, _, rest = text.partition("<")
        uri, close, params = rest.partition(">")
        if not close:
            raise SipParseError(f"unclosed '<' in {text[:80]!r}")
        display = display.strip()
        if display.startswith('"') and display.endswith('"') and len(display) >= 2:
            display = display[1:-1].replace('\\"', '"')
        return NameAddr(display, uri.strip(), parse_params(params))
    uri, _, params = text.partition(";")  # addr-spec: parameters belong to the header
    if not uri:
        raise SipParseError("empty address")
    return NameAddr("", uri.strip(), parse_params(params))


@dataclass(frozen=True, slots=True)
class Via:
    """``SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-20805-1-0``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def branch(self) -> str:
        return self.params.get("branch", "")


def parse_via(text: str) -> Via:
    sent, _, params = text.strip().partition(";")
    protocol, _, hostport = sent.strip().partition(" ")
    parts = protocol.split("/")
    if len(parts) != 3 or parts[0].upper() != "SIP" or not hostport.strip():
        raise SipParseError(f"bad Via {text[:80]!r}")
    host, port = _hostport(hostport.strip())
    return Via(parts[2].upper(), host, port, parse_params(params))


def response_via(value: str, received: tuple[str, int]) -> str:
    """The top Via of a response: ``rport`` and ``received`` filled in (RFC 3581; Asterisk's
    endpoints use ``force_rport``, so rport is set even when the request did not ask)."""
    via = parse_via(value)
    sent = value.partition(";")[0].strip()
    params = [(k, v) for k, v in via.params.items() if k not in ("rport", "received")]
    rendered = "".join(f";{k}={v}" if v else f";{k}" for k, v in params if k != "branch")
    return (
        f"{sent};rport={received[1]};received={received[0]}{rendered};branch={via.branch}"
        if via.branch
        else f"{sent};rport={received[1]};received={received[0]}{rendered}"
    )


def make_response(
    request: SipRequest,
    status: int,
    reason: str,
    *,
    received: tuple[str, int] | None = None,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> SipResponse:
    """A response to ``request`` (RFC 3261 8.2.6.2): Via, From, To (+tag), Call-ID, CSeq."""
    response = SipResponse(status=status, reason=reason)
    vias = [v for k, v in request.headers if k.lower() == "via"]
    for i, via in enumerate(vias):
        if i == 0 and received is not None:
            via = response_via(via, received)
        response.add("Via", via)
    response.add("Call-ID", request.call_id)
    response.add("From", request.header("From") or "")
    to = request.header("To") or ""
    if to_tag and "tag" not in parse_name_addr(to).params:
        to = f"{to};tag={to_tag}"
    response.add("To", to)
    response.add("CSeq", request.header("CSeq") or "")
    for name, value in headers or ():
        response.add(name, value)
    response.body = body
    return response


def missing_headers(request: SipRequest) -> list[str]:
    """Mandatory headers (RFC 3261 8.1.1) the request lacks."""
    return [name for name in REQUIRED_REQUEST_HEADERS if request.header(name) is None]
