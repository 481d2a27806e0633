"""Turn-taking as an explicit state machine on the clock, without I/O.

The session feeds one VAD result per window with the window's time span and calls :meth:`tick`
from a timer: end of turn is decided by elapsed time since the last voiced sample, never by
counting silent frames (a real Asterisk may send no frames at all while the caller is silent).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


class TurnState(enum.Enum):
    QUIET = "quiet"
    ONSET = "onset"  # voiced windows seen, not yet long enough to count as speech
    SPEAKING = "speaking"
    TRAILING = "trailing"  # speech paused; the end-of-turn timer runs


class Signal(enum.Enum):
    ONSET = "onset"  # tentative: enough to pause agent playback, not to interrupt it
    STARTED = "started"
    REJECTED = "rejected"  # the onset was too short: noise, a click, an echo
    PAUSED = "paused"  # first silence after speech: a good moment for a speculative STT pass
    RESUMED = "resumed"
    END_OF_TURN = "end_of_turn"


@dataclass(frozen=True, slots=True)
class TurnSignal:
    signal: Signal
    at: float  # onset/started: first voiced sample; paused/end: last voiced sample


class TurnDetector:
    """VAD probabilities in, turn signals out."""

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        min_speech_ms: float = 120,
        end_of_turn_silence_ms: float = 280,
        barge_in_min_speech_ms: float = 60,
        hysteresis: float = 0.15,
        onset_gap_ms: float = 40,
    ) -> None:
        self.threshold = threshold
        self.min_speech_s = min_speech_ms / 1000
        self.end_silence_s = end_of_turn_silence_ms / 1000
        self.barge_in_min_speech_s = barge_in_min_speech_ms / 1000
        self.release = max(0.05, threshold - hysteresis)
        self.onset_gap_s = onset_gap_ms / 1000
        self.agent_speaking = False  # the session sets it: barge-in uses its own minimum
        self.state = TurnState.QUIET
        self.speech_started_at = 0.0
        self.last_voice_at = 0.0
        self._voiced_s = 0.0
        self._gap_s = 0.0
        self._silence_s = self.end_silence_s
        self._weak_until = 0.0

    @property
    def deadline(self) -> float | None:
        """When the turn ends if no more speech comes, while the timer runs."""
        if self.state is TurnState.TRAILING:
            # weak windows (between release and threshold) are mostly the decay of the last
            # word: they hold the turn open for half the silence, not all of it
            return max(self.last_voice_at + self._silence_s, self._weak_until + self._silence_s / 2)
        return None

    def shorten_silence(self, silence_ms: float) -> None:
        """Let the current pause end the turn sooner (the transcript already looks complete)."""
        self._silence_s = min(self._silence_s, silence_ms / 1000)

    def window(self, probability: float, start: float, end: float) -> list[TurnSignal]:
        out: list[TurnSignal] = []
        if self.state is TurnState.TRAILING:
            out.extend(self.tick(start))
        # over agent playback a weaker onset is enough to pause it (pausing is undone if the
        # speech is not confirmed); confirming speech still takes the full threshold
        lenient = self.state in (TurnState.SPEAKING, TurnState.TRAILING) or (
            self.agent_speaking and self.state is TurnState.QUIET
        )
        voiced = probability >= (self.release if lenient else self.threshold)
        duration = end - start
        state = self.state
        if state is TurnState.QUIET:
            if voiced:
                self._to(TurnState.ONSET)
                self.speech_started_at = start
                self._weak_until = 0.0
                self._voiced_s, self._gap_s = duration, 0.0
                self.last_voice_at = end
                out.append(TurnSignal(Signal.ONSET, start))
                out.extend(self._confirm())
        elif state is TurnState.ONSET:
            if voiced:
                self._voiced_s += duration
                self._gap_s = 0.0
                self.last_voice_at = end
                out.extend(self._confirm())
            else:
                self._gap_s += duration
                if self._gap_s > self.onset_gap_s:
                    self._to(TurnState.QUIET)
                    out.append(TurnSignal(Signal.REJECTED, self.speech_started_at))
        elif state is TurnState.SPEAKING:
            if voiced:
                self._voice(probability, end)
            else:
                self._to(TurnState.TRAILING)
                self._silence_s = self.end_silence_s
                out.append(TurnSignal(Signal.PAUSED, self.last_voice_at))
        elif voiced:  # TRAILING
            self._to(TurnState.SPEAKING)
            self._voice(probability, end)
            out.append(TurnSignal(Signal.RESUMED, start))
        if self.state is TurnState.TRAILING:
            out.extend(self.tick(end))
        return out

    def no_audio(self, now: float) -> list[TurnSignal]:
        """No frames arrive at all (some lines send nothing while the caller is silent): the
        time since the last voiced sample counts as silence."""
        out: list[TurnSignal] = []
        if self.state is TurnState.SPEAKING:
            self._to(TurnState.TRAILING)
            self._silence_s = self.end_silence_s
            out.append(TurnSignal(Signal.PAUSED, self.last_voice_at))
        elif self.state is TurnState.ONSET and now - self.last_voice_at > self.onset_gap_s:
            self._to(TurnState.QUIET)
            out.append(TurnSignal(Signal.REJECTED, self.speech_started_at))
        if self.state is TurnState.TRAILING:
            out.extend(self.tick(now))
        return out

    def tick(self, now: float) -> list[TurnSignal]:
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            self._to(TurnState.QUIET)
            return [TurnSignal(Signal.END_OF_TURN, self.last_voice_at)]
        return []

    def reset(self) -> None:
        self._to(TurnState.QUIET)

    def _voice(self, probability: float, end: float) -> None:
        if probability >= self.threshold:
            self.last_voice_at = end
        else:
            self._weak_until = end

    def _confirm(self) -> list[TurnSignal]:
        needed = self.barge_in_min_speech_s if self.agent_speaking else self.min_speech_s
        if self._voiced_s + 1e-9 >= needed:
            self._to(TurnState.SPEAKING)
            return [TurnSignal(Signal.STARTED, self.speech_started_at)]
        return []

    def _to(self, state: TurnState) -> None:
        if state is not self.state and log.isEnabledFor(logging.DEBUG):
            log.debug("turn %s -> %s", self.state.value, state.value)
        self.state = state
