"""The AudioSocket parser and serialiser, with byte literals from the real Asterisk capture."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operadora.audiosocket.protocol import (
    AUDIO_RATES,
    HANGUP_BYTES,
    AudioFrame,
    DtmfFrame,
    EmptyAudioError,
    ErrorFrame,
    Frame,
    HangupFrame,
    InvalidPayloadError,
    Kind,
    Parser,
    PayloadTooLargeError,
    ProtocolError,
    TruncatedFrameError,
    UnknownKindError,
    UuidFrame,
    audio_kind,
    header,
    parse_all,
    serialize,
)

pytestmark = pytest.mark.unit

# a copy of shared/asterisk/ari-traces/audiosocket-raw.json (recorded from Asterisk 22.10.1)
CAPTURE = Path(__file__).parent / "data" / "audiosocket-raw.json"

# From shared/asterisk/audiosocket-capture.md (Asterisk 22.10.1 on the wire)
CAPTURED_UUID = bytes.fromhex("0100101236b1180b064e8c9259240d0be7cce7")
CAPTURED_DTMF = bytes.fromhex("03000135")
CAPTURED_AUDIO_HEAD = bytes.fromhex("100140fcfffdfffcfffefffcfffbfff9fff9ff")


def test_captured_uuid_frame() -> None:
    assert parse_all(CAPTURED_UUID) == [
        UuidFrame(uuid.UUID("1236b118-0b06-4e8c-9259-240d0be7cce7"))
    ]
    assert serialize(UuidFrame(uuid.UUID("1236b118-0b06-4e8c-9259-240d0be7cce7"))) == CAPTURED_UUID


def test_captured_dtmf_frame() -> None:
    assert parse_all(CAPTURED_DTMF) == [DtmfFrame("5")]
    assert serialize(DtmfFrame("5")) == CAPTURED_DTMF


def test_captured_audio_frame_is_8khz_little_endian() -> None:
    payload = CAPTURED_AUDIO_HEAD[3:] + bytes(320 - 16)
    (frame,) = parse_all(CAPTURED_AUDIO_HEAD[:3] + payload)
    assert isinstance(frame, AudioFrame)
    assert frame.sample_rate == 8000
    assert len(frame.pcm) == 320
    first = [int.from_bytes(frame.pcm[i : i + 2], "little", signed=True) for i in range(0, 8, 2)]
    assert first == [-4, -3, -4, -2]
    assert serialize(frame) == CAPTURED_AUDIO_HEAD[:3] + payload


def test_uuid_then_audio_in_one_read_then_clean_eof() -> None:
    # f1: the first audio frame came in the same TCP read as the UUID; EOF at a frame boundary
    data = CAPTURED_UUID + b"\x10\x01\x40" + bytes(320) + b"\x12\x02\x80" + bytes(640)
    frames = parse_all(data)
    assert [type(f) for f in frames] == [UuidFrame, AudioFrame, AudioFrame]
    assert [f.sample_rate for f in frames[1:]] == [8000, 16000]  # type: ignore[union-attr]


def test_hangup_and_error_frames() -> None:
    assert HANGUP_BYTES == b"\x00\x00\x00"
    assert parse_all(b"\x00\x00\x00") == [HangupFrame()]
    assert serialize(HangupFrame()) == b"\x00\x00\x00"
    assert parse_all(b"\xff\x00\x01\x02") == [ErrorFrame(b"\x02")]
    assert parse_all(b"\xff\x00\x00") == [ErrorFrame(b"")]


def test_every_audio_kind_has_its_rate() -> None:
    assert AUDIO_RATES == {
        0x10: 8000,
        0x11: 12000,
        0x12: 16000,
        0x13: 24000,
        0x14: 32000,
        0x15: 44100,
        0x16: 48000,
        0x17: 96000,
        0x18: 192000,
    }
    for kind, rate in AUDIO_RATES.items():
        assert audio_kind(rate) == kind
        (frame,) = parse_all(bytes([kind, 0, 4]) + b"\x01\x00\x02\x00")
        assert frame == AudioFrame(b"\x01\x00\x02\x00", rate)
        assert serialize(frame)[0] == kind
    with pytest.raises(ValueError):
        audio_kind(11025)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x02\x00\x00", UnknownKindError),
        (b"\x20\x00\x01\x00", UnknownKindError),
        (b"\x10\x00\x00", EmptyAudioError),
        (b"\x12\x00\x00", EmptyAudioError),
        (b"\x10\x00\x03\x00\x00\x00", InvalidPayloadError),  # odd number of bytes
        (b"\x01\x00\x04abcd", InvalidPayloadError),  # UUID must be 16 bytes
        (b"\x03\x00\x02\x35\x35", InvalidPayloadError),  # one digit per frame
        (b"\x03\x00\x01\x00", InvalidPayloadError),
        (b"\x00\x00\x01\x00", InvalidPayloadError),  # hangup carries nothing
        (b"\x10\x20\x01", PayloadTooLargeError),  # 8193 > 8192, refused from the header alone
        (b"\x10\x01", TruncatedFrameError),
        (b"\x10\x01\x40" + bytes(100), TruncatedFrameError),
    ],
)
def test_precise_errors(data: bytes, error: type[ProtocolError]) -> None:
    with pytest.raises(error):
        parse_all(data)


def test_error_details_and_sticky_parser() -> None:
    parser = Parser(max_payload=640)
    parser.feed(CAPTURED_DTMF + b"\x10\x05\x00")
    assert parser.next_frame() == DtmfFrame("5")  # the good frame before the bad one is kept
    with pytest.raises(PayloadTooLargeError) as info:
        parser.next_frame()
    assert (info.value.kind, info.value.length, info.value.limit) == (0x10, 1280, 640)
    with pytest.raises(PayloadTooLargeError):
        parser.next_frame()  # poisoned: the connection must end
    truncated = Parser()
    truncated.feed(b"\x10\x01\x40" + bytes(10))
    assert truncated.next_frame() is None
    truncated.feed_eof()
    with pytest.raises(TruncatedFrameError) as trunc:
        truncated.next_frame()
    assert (trunc.value.buffered, trunc.value.needed) == (13, 323)
    assert "0x7f" in str(UnknownKindError(0x7F))


def test_byte_by_byte_feed() -> None:
    parser = Parser()
    data = CAPTURED_UUID + CAPTURED_DTMF
    frames = []
    for byte in data:
        parser.feed(bytes([byte]))
        while (frame := parser.next_frame()) is not None:
            frames.append(frame)
    assert frames == parse_all(data)
    assert parser.buffered == 0


def test_serialize_rejects_what_the_wire_cannot_carry() -> None:
    with pytest.raises(EmptyAudioError):
        serialize(AudioFrame(b"", 8000))
    with pytest.raises(ValueError):
        serialize(AudioFrame(bytes(70000), 8000))
    with pytest.raises(InvalidPayloadError):
        serialize(DtmfFrame("12"))
    assert header(Kind.SLIN16, 640) == b"\x12\x02\x80"


def _captured_streams() -> list[tuple[bytes, list[tuple[int, int]]]]:
    """Every connection of the capture, rebuilt as the bytes Asterisk sent."""
    runs = json.loads(CAPTURE.read_text())
    streams = []
    for connections in runs.values():
        for connection in connections:
            if not isinstance(connection, dict):
                continue
            data = bytearray()
            expected = []
            for frame in connection["frames"]:
                if frame["dir"] != "from_asterisk":
                    continue
                raw = bytes.fromhex(frame.get("hex") or frame["hex_head"])
                raw += bytes(3 + frame["len"] - len(raw))
                data += raw
                expected.append((int(frame["kind"], 16), frame["len"]))
            streams.append((bytes(data), expected))
    return streams


def test_every_captured_connection_parses() -> None:
    streams = _captured_streams()
    assert len(streams) >= 5
    for data, expected in streams:
        frames = parse_all(data)
        assert len(frames) == len(expected)
        assert isinstance(frames[0], UuidFrame)
        for frame, (kind, length) in zip(frames, expected, strict=True):
            wire = serialize(frame)
            assert wire[0] == kind
            assert len(wire) == 3 + length


# --- properties -----------------------------------------------------------------------------

FRAME_TYPES = (AudioFrame, UuidFrame, DtmfFrame, HangupFrame, ErrorFrame)
rates = st.sampled_from(sorted(AUDIO_RATES.values()))
frames_strategy: st.SearchStrategy[Frame] = st.one_of(
    st.builds(HangupFrame),
    st.builds(UuidFrame, st.uuids()),
    st.builds(DtmfFrame, st.sampled_from("0123456789*#ABCD")),
    st.builds(
        AudioFrame,
        st.integers(1, 400).flatmap(lambda n: st.binary(min_size=2 * n, max_size=2 * n)),
        rates,
    ),
    st.builds(ErrorFrame, st.binary(max_size=20)),
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for point in [*points, len(data)]:
        chunks.append(data[last:point])
        last = point
    return chunks


@given(st.lists(frames_strategy, max_size=20), st.lists(st.integers(0, 10_000), max_size=30))
@settings(max_examples=300, deadline=None)
def test_round_trip_split_anywhere(frames: list[Frame], cuts: list[int]) -> None:
    data = b"".join(serialize(f) for f in frames)
    parser = Parser(max_payload=1024)
    got = []
    for chunk in _split(data, cuts):
        parser.feed(chunk)
        while (frame := parser.next_frame()) is not None:
            got.append(frame)
    parser.feed_eof()
    assert parser.next_frame() is None
    assert got == frames


@given(st.binary(max_size=3000), st.lists(st.integers(0, 5000), max_size=20))
@settings(max_examples=500, deadline=None)
def test_arbitrary_bytes_never_crash(data: bytes, cuts: list[int]) -> None:
    parser = Parser(max_payload=512)
    try:
        for chunk in _split(data, cuts):
            parser.feed(chunk)
            while (frame := parser.next_frame()) is not None:
                assert isinstance(frame, FRAME_TYPES)
        parser.feed_eof()
        while parser.next_frame() is not None:
            pass
    except ProtocolError:
        pass  # a precise error for this connection is the only acceptable failure


def _take_all(parser: Parser, chunks: list[bytes]) -> list[Frame]:
    """Read the way the server does: ``take()`` each read, then drain what it buffered."""
    got: list[Frame] = []
    for chunk in chunks:
        frame = parser.take(chunk)
        if frame is not None:
            got.append(frame)
        while (frame := parser.next_frame()) is not None:
            got.append(frame)
    return got


@given(st.lists(frames_strategy, max_size=20), st.lists(st.integers(0, 10_000), max_size=30))
@settings(max_examples=300, deadline=None)
def test_take_gives_the_same_frames_as_feed(frames: list[Frame], cuts: list[int]) -> None:
    data = b"".join(serialize(f) for f in frames)
    parser = Parser(max_payload=1024)
    assert _take_all(parser, _split(data, cuts)) == frames
    # and one frame per read (what Asterisk sends) never touches the buffer
    whole = Parser(max_payload=1024)
    assert _take_all(whole, [serialize(f) for f in frames]) == frames
    assert whole.buffered == 0


@given(st.binary(max_size=3000), st.lists(st.integers(0, 5000), max_size=20))
@settings(max_examples=300, deadline=None)
def test_take_agrees_with_feed_on_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    def outcome(use_take: bool) -> tuple[list[Frame], str | None]:
        parser = Parser(max_payload=512)
        got: list[Frame] = []
        try:
            for chunk in _split(data, cuts):
                if use_take:
                    if (frame := parser.take(chunk)) is not None:
                        got.append(frame)
                else:
                    parser.feed(chunk)
                while (frame := parser.next_frame()) is not None:
                    got.append(frame)
        except ProtocolError as exc:
            return got, str(exc)
        return got, None

    assert outcome(True) == outcome(False)


def test_take_refuses_a_bad_whole_frame_and_stays_poisoned() -> None:
    parser = Parser(max_payload=512)
    with pytest.raises(InvalidPayloadError):
        parser.take(b"\x10\x00\x03abc")  # odd-length audio in one whole read
    assert parser.take(serialize(AudioFrame(b"\x00\x00", 8000))) is None
    with pytest.raises(InvalidPayloadError):
        parser.next_frame()  # the parser stays poisoned
    big = Parser(max_payload=4)
    assert big.take(b"\x10\x00\x06" + bytes(6)) is None  # over the cap: left to next_frame()
    with pytest.raises(PayloadTooLargeError):
        big.next_frame()
