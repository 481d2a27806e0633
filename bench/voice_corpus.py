"""Asterisk's recorded English prompts and their transcripts, and word error rate."""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from operadora.voice.wavio import read_wav

SOUNDS_DIRS = (
    Path("/usr/share/asterisk/sounds/en"),
    Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
)
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
# isolated numbers, letters and spelling alphabets are not sentences a caller says
SKIP_FOLDERS = ("digits/", "letters/", "phonetic/", "silence/", "dictate/")

_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


@dataclass(frozen=True, slots=True)
class Prompt:
    name: str
    text: str
    audio: npt.NDArray[np.float32]  # at 8 kHz, as recorded
    rate: int


def _number_words(match: re.Match[str]) -> str:
    n = int(match.group())
    if n < 20:
        return _SMALL[n]
    if n < 100:
        return _TENS[n // 10 - 2] + ("" if n % 10 == 0 else " " + _SMALL[n % 10])
    return match.group()


_CONTRACTIONS = {
    "i'm": "i am",
    "that's": "that is",
    "it's": "it is",
    "you've": "you have",
    "you're": "you are",
    "we're": "we are",
    "they're": "they are",
    "can't": "cannot",
    "won't": "will not",
    "don't": "do not",
    "doesn't": "does not",
    "isn't": "is not",
    "there's": "there is",
    "what's": "what is",
    "let's": "let us",
    "i'll": "i will",
    "you'll": "you will",
    "we'll": "we will",
    "i've": "i have",
    "we've": "we have",
    "didn't": "did not",
    "haven't": "have not",
    "wasn't": "was not",
    "aren't": "are not",
}


def normalise(text: str) -> list[str]:
    """Lower case, no punctuation, numbers as words, contractions expanded, stage directions
    such as "(simple tone sound plays)" dropped: the usual normalisation before WER."""
    text = re.sub(r"\([^)]*\)", " ", text.lower()).replace("-", " ").replace("’", "'")
    text = re.sub(r"\d+", _number_words, text)
    text = re.sub(r"[^a-z' ]+", " ", text)
    words = " ".join(_CONTRACTIONS.get(w, w) for w in text.split()).split()
    return [w.strip("'") for w in words if w.strip("'")]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def sounds_dir() -> Path:
    for path in SOUNDS_DIRS:
        if path.is_dir():
            return path
    raise SystemExit(
        "Asterisk's English prompts are missing: apt-get install asterisk-core-sounds-en-wav"
    )


def load_prompts(limit: int | None = None) -> list[Prompt]:
    if not TRANSCRIPTS.is_file():
        raise SystemExit(
            f"{TRANSCRIPTS} is missing: apt-get install asterisk-core-sounds-en "
            "(the transcripts of asterisk-core-sounds-en-wav)"
        )
    root = sounds_dir()
    prompts = []
    for line in gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace"):
        if line.startswith(";") or ":" not in line:
            continue
        name, text = (part.strip() for part in line.split(":", 1))
        if not text or name.startswith(SKIP_FOLDERS) or re.search(r"[0-9#*\[\]]", text):
            continue
        path = root / f"{name}.wav"
        if not path.is_file():
            continue
        audio, rate = read_wav(path)
        if audio.size < rate // 4 or not normalise(text):
            continue
        prompts.append(Prompt(name, text, audio, rate))
        if limit is not None and len(prompts) >= limit:
            break
    return prompts


def voiced_span(audio: npt.NDArray[np.float32], rate: int) -> tuple[int, int]:
    """First and last voiced sample: 10 ms windows within 35 dB of the loudest one."""
    win = rate // 100
    n = audio.size // win
    if n == 0:
        return 0, audio.size
    rms = np.sqrt(np.mean(np.square(audio[: n * win].reshape(n, win)), axis=1) + 1e-12)
    voiced = np.flatnonzero(rms > rms.max() * 10 ** (-35 / 20))
    return int(voiced[0] * win), int((voiced[-1] + 1) * win)
