"""The speaker on its own: lookahead, pause/resume from what was heard, words heard."""

from __future__ import annotations

import asyncio

import pytest

from operadora.voice.speaker import Speaker
from voice.fakes import FakeMedia, Silence, run_virtual, tone

pytestmark = pytest.mark.unit

RATE = 16000


def _pcm(ms: int) -> bytes:
    return tone(ms, RATE, 0.3)


def test_keeps_only_the_lookahead_queued_and_plays_everything() -> None:
    media = FakeMedia([Silence(20)], linger_ms=5000)

    async def main() -> None:
        inbound = asyncio.create_task(anext(media.inbound()))
        speaker = Speaker(media, lookahead_ms=60)
        speaker.start()
        speaker.add(_pcm(1000), RATE, "one two three four")
        assert media.queued_ms == pytest.approx(60.0)
        speaker.finish()
        await speaker.wait()
        assert speaker.heard_text() == "one two three four"
        inbound.cancel()
        await media.stop_pacing()

    run_virtual(main)
    assert media.agent_audio_ms() == pytest.approx(1000.0)


def test_pause_resumes_from_what_was_heard_and_nothing_is_lost() -> None:
    media = FakeMedia([Silence(20)], linger_ms=5000)

    async def main() -> None:
        inbound = asyncio.create_task(anext(media.inbound()))
        speaker = Speaker(media, lookahead_ms=60)
        speaker.start()
        speaker.add(_pcm(500), RATE, "first clause here")
        speaker.add(_pcm(500), RATE, "second clause there")
        await asyncio.sleep(0.3)
        speaker.pause()
        assert speaker.paused and media.queued_ms == 0
        heard = speaker.heard_text()
        assert heard == "first"  # 300 ms of a 500 ms, three-word clause
        await asyncio.sleep(0.2)
        speaker.resume()
        speaker.finish()
        await speaker.wait()
        assert speaker.heard_text() == "first clause here second clause there"
        inbound.cancel()
        await media.stop_pacing()

    run_virtual(main)
    assert media.agent_audio_ms() == pytest.approx(1000.0, abs=20)
    assert len(media.clears) == 1


def test_stop_drops_the_rest() -> None:
    media = FakeMedia([Silence(20)], linger_ms=5000)

    async def main() -> str:
        inbound = asyncio.create_task(anext(media.inbound()))
        speaker = Speaker(media, lookahead_ms=60)
        speaker.start()
        speaker.add(_pcm(1000), RATE, "a b c d e f g h i j")
        await asyncio.sleep(0.5)
        speaker.stop()
        await asyncio.sleep(0.2)
        inbound.cancel()
        await media.stop_pacing()
        return speaker.heard_text()

    heard = run_virtual(main)
    assert media.agent_audio_ms() == pytest.approx(500.0, abs=20)
    assert heard == "a b c d e"
