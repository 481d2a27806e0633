"""The simulator's SIP/SDP/RTP wire formats, with messages copied from the captures of the
acceptance Asterisk (``../shared/asterisk/ari-traces/e*.sip.txt``)."""

from __future__ import annotations

import pytest

from operadora.sim.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    make_response,
    missing_headers,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_header_list,
)
from operadora.sim.sip.rtp import RtpSession, build_rtp, parse_rtp, parse_telephone_event
from operadora.sim.sip.sdp import build_answer, choose_codec, parse_offer

pytestmark = pytest.mark.unit


def wire(text: str) -> bytes:
    """A capture's lines as sent: CRLF line ends."""
    return text.replace("\n", "\r\n").encode()


# e1_sip_call_into_stasis.sip.txt, 20:43:39.529394 (sipp -> Asterisk)
E1_INVITE = wire("""INVITE sip:110@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-20805-1-0
From: "SIPp caller" <sip:sipp@127.0.0.1:5062>;tag=20805SIPpTag001
To: <sip:110@127.0.0.1:5060>
Call-ID: 1-20805@127.0.0.1
CSeq: 1 INVITE
Contact: <sip:sipp@127.0.0.1:5062>
Max-Forwards: 70
Subject: acceptance-test
Content-Type: application/sdp
Content-Length:   196

v=0
o=sipp 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 9062 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv

""")

# e1, 20:43:39.530218 (Asterisk -> sipp)
E1_TRYING = wire("""SIP/2.0 100 Trying
Via: SIP/2.0/UDP 127.0.0.1:5062;rport=5062;received=127.0.0.1;branch=z9hG4bK-20805-1-0
Call-ID: 1-20805@127.0.0.1
From: "SIPp caller" <sip:sipp@127.0.0.1>;tag=20805SIPpTag001
To: <sip:110@127.0.0.1>
CSeq: 1 INVITE
Server: Asterisk-acceptance
Content-Length:  0

""")

# e1, 20:43:39.532478: Asterisk's answer
E1_OK_SDP = wire("""v=0
o=- 53655765 2353687639 IN IP4 127.0.0.1
s=Asterisk
c=IN IP4 127.0.0.1
t=0 0
m=audio 10060 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:140
a=sendrecv
""")

# e3_sip_refer_blind_transfer_core.sip.txt, 20:43:50.289943
E3_REFER = wire("""REFER sip:127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-20821-1-7
From: "SIPp agent" <sip:sipp@127.0.0.1:5062>;tag=20821SIPpTag001
To: <sip:110@127.0.0.1:5060>;tag=88a923bd-1e6a-414b-abe7-7b232ecd2203
Call-ID: 1-20821@127.0.0.1
CSeq: 2 REFER
Contact: <sip:sipp@127.0.0.1:5062>
Refer-To: <sip:500@127.0.0.1:5060>
Referred-By: <sip:sipp@127.0.0.1:5062>
Max-Forwards: 70
Content-Length: 0

""")

# e3, 20:43:50.291653
E3_NOTIFY = wire("""NOTIFY sip:sipp@127.0.0.1:5062 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKPje12c0560-4b14-4b93-be90-155955319238
From: <sip:110@127.0.0.1>;tag=88a923bd-1e6a-414b-abe7-7b232ecd2203
To: "SIPp agent" <sip:sipp@127.0.0.1>;tag=20821SIPpTag001
Contact: <sip:127.0.0.1:5060>
Call-ID: 1-20821@127.0.0.1
CSeq: 7142 NOTIFY
Event: refer
Subscription-State: terminated;reason=noresource
Allow-Events: message-summary, presence, dialog, refer
Max-Forwards: 70
User-Agent: Asterisk-acceptance
Content-Type: message/sipfrag;version=2.0
Content-Length:    16

SIP/2.0 200 OK
""")

# e2_sip_redirect_302.sip.txt, 20:43:43.856415
E2_REDIRECT = wire("""SIP/2.0 302 Moved Temporarily
Via: SIP/2.0/UDP 127.0.0.1:5062;rport=5062;received=127.0.0.1;branch=z9hG4bK-20813-1-0
Call-ID: 1-20813@127.0.0.1
From: "SIPp caller" <sip:sipp@127.0.0.1>;tag=20813SIPpTag001
To: <sip:110@127.0.0.1>;tag=827201ae-254c-423e-bcd0-90ecc6549b79
CSeq: 1 INVITE
Server: Asterisk-acceptance
Contact: <sip:agent2@127.0.0.1:5071>
Reason: Q.850;cause=0
Supported: histinfo
Content-Length:  0

""")


def test_invite_from_sipp() -> None:
    msg = parse_message(E1_INVITE)
    assert isinstance(msg, SipRequest)
    assert (msg.method, msg.uri) == ("INVITE", "sip:110@127.0.0.1:5060")
    assert msg.call_id == "1-20805@127.0.0.1"
    assert msg.cseq == (1, "INVITE")
    assert msg.header("subject") == "acceptance-test"  # names are case-insensitive
    assert len(msg.body) == 196 and msg.body.startswith(b"v=0\r\n")
    assert not missing_headers(msg)
    sender = parse_name_addr(msg.header("From") or "")
    assert (sender.display, sender.tag) == ("SIPp caller", "20805SIPpTag001")
    assert sender.sip_uri().user == "sipp"
    assert parse_name_addr(msg.header("To") or "").tag is None
    uri = parse_uri(msg.uri)
    assert (uri.user, uri.host, uri.port) == ("110", "127.0.0.1", 5060)
    via = parse_via(msg.header("Via") or "")
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP",
        "127.0.0.1",
        5062,
        "z9hG4bK-20805-1-0",
    )


def test_responses_from_asterisk() -> None:
    trying = parse_message(E1_TRYING)
    assert isinstance(trying, SipResponse)
    assert (trying.status, trying.reason, trying.body) == (100, "Trying", b"")
    redirect = parse_message(E2_REDIRECT)
    assert isinstance(redirect, SipResponse)
    assert redirect.status == 302 and redirect.reason == "Moved Temporarily"
    assert parse_name_addr(redirect.header("Contact") or "").uri == "sip:agent2@127.0.0.1:5071"
    assert (
        parse_name_addr(redirect.header("To") or "").tag == "827201ae-254c-423e-bcd0-90ecc6549b79"
    )


def test_our_trying_has_the_via_asterisk_sent() -> None:
    invite = parse_message(E1_INVITE)
    assert isinstance(invite, SipRequest)
    ours = make_response(invite, 100, "Trying", received=("127.0.0.1", 5062))
    theirs = parse_message(E1_TRYING)
    assert ours.header("Via") == theirs.header("Via")
    assert ours.header("Call-ID") == theirs.header("Call-ID")
    assert ours.header("CSeq") == theirs.header("CSeq")
    tagged = make_response(invite, 200, "OK", to_tag="abc")
    assert parse_name_addr(tagged.header("To") or "").tag == "abc"


def test_refer_and_notify_with_sipfrag() -> None:
    refer = parse_message(E3_REFER)
    assert isinstance(refer, SipRequest) and refer.method == "REFER"
    target = parse_name_addr(refer.header("Refer-To") or "")
    assert target.sip_uri().user == "500"
    notify = parse_message(E3_NOTIFY)
    assert isinstance(notify, SipRequest)
    assert notify.body == b"SIP/2.0 200 OK\r\n"
    assert notify.header("Subscription-State") == "terminated;reason=noresource"
    assert split_header_list(notify.header("Allow-Events") or "") == [
        "message-summary",
        "presence",
        "dialog",
        "refer",
    ]


def test_serialize_round_trip_keeps_everything() -> None:
    for raw in (E1_INVITE, E3_REFER, E3_NOTIFY, E1_TRYING, E2_REDIRECT):
        first = parse_message(raw)
        again = parse_message(first.serialize())
        assert again == first
    assert parse_message(E1_INVITE).serialize().count(b"Content-Length: 196\r\n") == 1


def test_compact_forms_and_folded_headers() -> None:
    raw = (
        b"BYE sip:127.0.0.1:5060 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1\r\n"
        b"f: <sip:sipp@127.0.0.1>;tag=a\r\nt: <sip:110@127.0.0.1>;tag=b\r\n"
        b"i: x@y\r\nCSeq: 3\r\n BYE\r\nl: 0\r\n\r\n"
    )
    msg = parse_message(raw)
    assert msg.call_id == "x@y" and msg.cseq == (3, "BYE")
    assert parse_name_addr(msg.header("To") or "").tag == "b"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\x01garbage",
        b"INVITE sip:110@127.0.0.1 SIP/2.0\r\nVia: x\r\n",  # no blank line
        b"HELLO WORLD\r\n\r\n",
        b"INVITE sip:110@127.0.0.1 SIP/3.0\r\n\r\n",
        b"SIP/2.0 2000 OK\r\n\r\n",
        b"INVITE sip:110@127.0.0.1 SIP/2.0\r\nno colon here\r\n\r\n",
        b"INVITE sip:110@127.0.0.1 SIP/2.0\r\nContent-Length: 10\r\n\r\nshort",
        b"INVITE sip:110@127.0.0.1 SIP/2.0\r\nContent-Length: x\r\n\r\n",
        b"INVITE sip:1 SIP/2.0\r\nFrom: \xff\xfe\r\n\r\n",
    ],
)
def test_malformed_messages_raise(raw: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(raw)


def test_header_grammar_errors_raise() -> None:
    with pytest.raises(SipParseError):
        parse_uri("tel:+15551000")
    with pytest.raises(SipParseError):
        parse_name_addr('"x" <sip:a@b')
    with pytest.raises(SipParseError):
        parse_via("SIP/2.0 127.0.0.1")
    with pytest.raises(SipParseError):
        parse_uri("sip:a@b:99999")
    bare = parse_message(E1_INVITE)
    bare.headers = [(k, v) for k, v in bare.headers if k != "Call-ID"]
    assert isinstance(bare, SipRequest) and missing_headers(bare) == ["Call-ID"]


def test_sdp_offer_and_answer_like_asterisk() -> None:
    invite = parse_message(E1_INVITE)
    offer = parse_offer(invite.body)
    assert (offer.address, offer.port, offer.payload_types) == ("127.0.0.1", 9062, [8, 101])
    assert offer.telephone_event == 101
    assert choose_codec(offer) == 8  # PCMA, the phone's first choice
    answer = build_answer(
        offer,
        address="127.0.0.1",
        port=10060,
        payload_type=8,
        session_id=53655765,
        version=2353687639,
    )
    assert answer == E1_OK_SDP


def test_sdp_without_a_common_codec_or_audio() -> None:
    g722 = b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n"
    assert choose_codec(parse_offer(g722)) is None
    with pytest.raises(SipParseError):
        parse_offer(b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 4000 RTP/AVP 96\r\n")
    with pytest.raises(SipParseError):
        parse_offer(b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n")  # no address


def test_rtp_packets() -> None:
    packet = build_rtp(8, 65535, 4294967295, 0xDEADBEEF, b"\xd5" * 160, marker=True)
    assert len(packet) == 12 + 160
    parsed = parse_rtp(packet)
    assert (parsed.payload_type, parsed.sequence, parsed.timestamp, parsed.ssrc) == (
        8,
        65535,
        4294967295,
        0xDEADBEEF,
    )
    assert parsed.marker and parsed.payload == b"\xd5" * 160
    with pytest.raises(ValueError):
        parse_rtp(b"\x00" * 20)  # version 0
    with pytest.raises(ValueError):
        parse_rtp(b"\x80\x08")
    # RFC 4733: digit 5, end bit, 800 samples (100 ms)
    assert parse_telephone_event(bytes([5, 0x80, 0x03, 0x20])) == ("5", True, 800)


def test_rtp_qos_variables_of_a_silent_call_match_the_trace() -> None:
    """e4: RTPAUDIOQOS* of a channel that never got RTP (only the ssrc differs)."""
    session = RtpSession(8, 101)
    session.local_ssrc = 807536150
    values = dict(session.qos_variables())
    assert values["RTPAUDIOQOS"] == (
        "ssrc=807536150;themssrc=0;lp=0;rxjitter=0.000000;rxcount=0;txjitter=0.000000;"
        "txcount=0;rlp=0;rtt=0.000000;rxmes=0.000000;txmes=0.000000"
    )
    assert values["RTPAUDIOQOSJITTER"] == (
        "minrxjitter=000.000000;maxrxjitter=000.000000;avgrxjitter=000.000000;"
        "stdevrxjitter=000.000000;mintxjitter=000.000000;maxtxjitter=000.000000;"
        "avgtxjitter=000.000000;stdevtxjitter=000.000000;"
    )
    assert values["RTPAUDIOQOSLOSS"] == (
        "  minrxlost=000.000000;  maxrxlost=000.000000;  avgrxlost=000.000000;"
        "  stdevrxlost=000.000000;  mintxlost=000.000000;  maxtxlost=000.000000;"
        "  avgtxlost=000.000000;  stdevtxlost=000.000000;"
    )
    assert values["RTPAUDIOQOSRTT"] == (
        "     minrtt=000.000000;     maxrtt=000.000000;     avgrtt=000.000000;"
        "     stdevrtt=000.000000;"
    )
    assert list(values) == [
        "RTPAUDIOQOS",
        "RTPAUDIOQOSJITTER",
        "RTPAUDIOQOSLOSS",
        "RTPAUDIOQOSRTT",
        "RTPAUDIOQOSMES",
    ]


def test_rtp_session_decodes_counts_and_reports_loss() -> None:
    session = RtpSession(8, 101)
    heard: list[bytes] = []
    digits: list[tuple[str, int]] = []
    session.on_audio = heard.append
    session.on_dtmf = lambda d, ms: digits.append((d, ms))
    for seq in (10, 11, 13):  # 12 is lost
        session.datagram_received(build_rtp(8, seq, seq * 160, 42, b"\xd5" * 160, False), ("h", 1))
    end = bytes([1, 0x80, 0x03, 0x20])
    for _ in range(3):  # the end packet comes three times; one digit
        session.datagram_received(build_rtp(101, 14, 9999, 42, end, False), ("h", 1))
    session.datagram_received(b"not rtp", ("h", 1))
    stats = session.statistics()
    assert (stats["rxcount"], stats["rxoctetcount"], stats["rxploss"]) == (3, 480, 1)
    assert stats["remote_ssrc"] == 42
    assert len(heard) == 3 and all(len(f) == 640 for f in heard)  # 20 ms at 16 kHz
    assert digits == [("1", 100)]
