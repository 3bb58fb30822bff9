"""A text-statistics plugin: word and sentence counts, top words, reading time and the
Flesch reading-ease score of a document. Plain `def execute`: it runs in the SDK's thread
pool, so long documents do not stall the plugin's other calls.

Run it from a host: `plugwire.subprocess(sys.executable, "examples/plugins/text_stats.py")`.
"""

from __future__ import annotations

import collections
import re

import msgspec

import plugwire

WORD = re.compile(r"[A-Za-z\u00C0-\u024F']+")
SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
VOWEL_GROUPS = re.compile(r"[aeiouy]+")
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "he",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "that",
        "the",
        "to",
        "was",
        "were",
        "will",
        "with",
    ]
)


class StatsRequest(msgspec.Struct):
    text: str
    top: int = 5
    words_per_minute: int = 230


class StatsResponse(msgspec.Struct):
    characters: int
    words: int
    sentences: int
    top_words: list[tuple[str, int]]
    reading_seconds: float
    flesch_reading_ease: float


def syllables(word: str) -> int:
    """A vowel-group estimate, good enough for readability scores."""
    word = word.lower().strip("'")
    groups = len(VOWEL_GROUPS.findall(word))
    if word.endswith("e") and groups > 1 and not word.endswith(("le", "ee")):
        groups -= 1
    return max(groups, 1)


class TextStats(plugwire.Plugin[StatsRequest, StatsResponse]):
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(
            name="text-stats",
            version="1.0.0",
            description="Word counts, top words, reading time and readability of a text",
            capabilities=("statistics", "readability"),
        )

    def execute(self, ctx: plugwire.ExecutionContext, request: StatsRequest) -> StatsResponse:  # type: ignore[override]
        if request.top < 0 or request.words_per_minute <= 0:
            raise plugwire.errors.RequestValidationError("top must be >= 0 and words_per_minute > 0")
        words = WORD.findall(request.text)
        sentences = max(len(SENTENCE_END.findall(request.text)), 1 if words else 0)
        counts = collections.Counter(w.lower() for w in words if w.lower() not in STOP_WORDS)
        total_syllables = sum(syllables(w) for w in words)
        ease = 0.0
        if words:  # Flesch reading ease: higher is easier, 60-70 is plain English
            ease = 206.835 - 1.015 * (len(words) / sentences) - 84.6 * (total_syllables / len(words))
        return StatsResponse(
            characters=len(request.text),
            words=len(words),
            sentences=sentences,
            top_words=counts.most_common(request.top),
            reading_seconds=round(len(words) / request.words_per_minute * 60, 1),
            flesch_reading_ease=round(ease, 1),
        )


if __name__ == "__main__":
    plugwire.serve(TextStats())
