"""Sentiment of an interaction's text, behind a small protocol.

The default scorer is VADER (``vaderSentiment``), whose compound score lies in
[-1, 1]. Its cost is bounded: text is cut to ``max_chars``, and runs of emoji
and other symbols (VADER looks each one up, which made emoji floods take
seconds, vaderSentiment issue #110) are cut to ``max_symbols``. A scorer failure
returns None and is counted; it never stops the flow.

>>> scorer = VaderScorer()
>>> scorer.score("Great service, thanks!") > 0.5, scorer.score("This is terrible.") < -0.3
(True, True)
>>> scorer.score("")
"""

from __future__ import annotations

import unicodedata
from typing import Protocol

from flows import metrics

# Code points past U+2000 (general punctuation on: symbols, emoji) may count as symbols;
# below it are the scripts' own letters and marks.
_SYMBOLS_FROM = 0x2000


class SentimentScorer(Protocol):
    """Anything that scores the sentiment of a text."""

    def score(self, text: str) -> float | None:
        """Polarity in [-1, 1], or None when the text says nothing (or scoring failed)."""
        ...


def bound_text(text: str, max_chars: int, max_symbols: int) -> str:
    """``text`` cut to ``max_chars``, keeping at most ``max_symbols`` symbol characters.

    >>> bound_text("ok 😀😀😀😀", max_chars=100, max_symbols=2)
    'ok 😀😀'
    """
    kept: list[str] = []
    symbols = 0
    for char in text[:max_chars]:
        if ord(char) > _SYMBOLS_FROM and unicodedata.category(char) in ("So", "Sk", "Cs", "Co"):
            symbols += 1
            if symbols > max_symbols:
                continue
        kept.append(char)
    return "".join(kept)


class VaderScorer:
    """VADER compound score with bounded input."""

    def __init__(self, max_chars: int = 2000, max_symbols: int = 20) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.max_chars = max_chars
        self.max_symbols = max_symbols
        self._analyzer = SentimentIntensityAnalyzer()

    def score(self, text: str) -> float | None:
        bounded = bound_text(text, self.max_chars, self.max_symbols).strip()
        if not bounded:
            return None
        try:
            compound = float(self._analyzer.polarity_scores(bounded)["compound"])
        except Exception:  # a scorer bug must not stop the flow
            metrics.SENTIMENT_FAILURES.inc()
            return None
        return round(compound, 4)
