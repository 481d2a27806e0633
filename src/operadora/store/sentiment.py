"""A small, documented negative-sentiment signal over the caller's turns (English + Spanish).

Each caller turn scores one point per lexicon hit (words and phrases, accents ignored) and
one more when the caller shouts (``!!`` or mostly capitals). A call turns negative when the
caller's last three turns add up to ``threshold`` (2) or more. It is deliberately simple:
it explains itself (the hits are returned) and errs towards recording.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from dataclasses import dataclass, field

NEGATIVE_EN = (
    "angry",
    "furious",
    "upset",
    "annoyed",
    "terrible",
    "awful",
    "horrible",
    "ridiculous",
    "unacceptable",
    "worst",
    "hate",
    "useless",
    "stupid",
    "incompetent",
    "complaint",
    "complain",
    "lawyer",
    "scam",
    "fraud",
    "disgusting",
    "pathetic",
    "fed up",
    "sick of",
    "never again",
    "waste of time",
    "speak to a manager",
    "not happy",
    "very disappointed",
    "disappointed",
    "rude",
)
NEGATIVE_ES = (
    "enojado",
    "enojada",
    "enfadado",
    "enfadada",
    "furioso",
    "furiosa",
    "molesto",
    "molesta",
    "terrible",
    "horrible",
    "pesimo",
    "pesima",
    "fatal",
    "ridiculo",
    "inaceptable",
    "odio",
    "inutil",
    "inutiles",
    "estupido",
    "incompetente",
    "incompetentes",
    "queja",
    "reclamo",
    "reclamacion",
    "abogado",
    "denuncia",
    "estafa",
    "fraude",
    "asco",
    "verguenza",
    "harto",
    "harta",
    "nunca mas",
    "perdida de tiempo",
    "quiero hablar con un supervisor",
    "decepcionado",
    "decepcionada",
    "grosero",
)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_LEXICON = re.compile(
    r"\b("
    + "|".join(re.escape(w) for w in sorted({*NEGATIVE_EN, *NEGATIVE_ES}, key=len, reverse=True))
    + r")\b"
)


def score(text: str) -> tuple[int, list[str]]:
    """Points and the lexicon hits of one caller turn."""
    hits = _LEXICON.findall(_fold(text))
    points = len(hits)
    letters = [c for c in text if c.isalpha()]
    shouting = len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.7
    if "!!" in text or shouting:
        points += 1
    return points, hits


@dataclass
class SentimentTracker:
    """Per call: turns negative once the last ``window`` caller turns reach ``threshold``."""

    threshold: int = 2
    window: int = 3
    _recent: deque[int] = field(default_factory=deque)
    negative: bool = False

    def add(self, text: str) -> bool:
        """Score a caller turn; True exactly once, when the call turns negative."""
        points, _ = score(text)
        self._recent.append(points)
        while len(self._recent) > self.window:
            self._recent.popleft()
        if not self.negative and sum(self._recent) >= self.threshold:
            self.negative = True
            return True
        return False
