"""The intent engine: normalise -> tokenise (jieba + insurance dictionary) -> intent + entities.

A linear model over character n-grams and jieba words, trained at start from the examples in
scripts_zh/ (about a second). `benchmarks/nlu.py` holds the evidence for this choice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jieba
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from bot.nlu.entities import Entity, extract_entities
from bot.nlu.normalize import normalize

OUT_OF_SCOPE = "out_of_scope"
MAX_PARSE_CHARS = 512  # longer messages are classified on their head: intent sits up front


@dataclass(frozen=True)
class Parse:
    text: str
    intent: str
    confidence: float
    ranking: tuple[tuple[str, float], ...]
    entities: tuple[Entity, ...] = field(default=())

    def as_rasa(self) -> dict[str, Any]:
        """Rasa's /model/parse answer shape."""
        return {
            "text": self.text,
            "intent": {"name": self.intent, "confidence": round(self.confidence, 4)},
            "intent_ranking": [
                {"name": n, "confidence": round(c, 4)} for n, c in self.ranking
            ],
            "entities": [
                {"entity": e.entity, "value": e.value, "start": e.start, "end": e.end}
                for e in self.entities
            ],
        }


class Tokenizer:
    """jieba with our insurance dictionary, as its own instance (no global state)."""

    def __init__(self, userdict: Path | None) -> None:
        logging.getLogger("jieba").setLevel(logging.WARNING)
        self._jieba = jieba.Tokenizer()
        if userdict is not None and userdict.exists():
            with userdict.open("rb") as fh:  # jieba leaves a path's file open
                self._jieba.load_userdict(fh)
        self._jieba.initialize()

    def __call__(self, text: str) -> list[str]:
        return [t for t in self._jieba.lcut(text) if t.strip()]


def build_model(tokenizer: Tokenizer) -> Pipeline:
    features = FeatureUnion(
        [
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)),
            (
                "words",
                TfidfVectorizer(
                    tokenizer=tokenizer, token_pattern=None, lowercase=False, sublinear_tf=True
                ),
            ),
        ]
    )
    return Pipeline([("features", features), ("clf", LogisticRegression(C=20, max_iter=3000))])


class IntentEngine:
    """Trained once from (text, intent) pairs; `parse` is pure and thread-safe."""

    def __init__(self, examples: Sequence[tuple[str, str]], userdict: Path | None = None) -> None:
        self.tokenizer = Tokenizer(userdict)
        texts = [normalize(t) for t, _ in examples]
        labels = [i for _, i in examples]
        self.model = build_model(self.tokenizer)
        self.model.fit(texts, labels)
        self.labels: list[str] = list(self.model.classes_)

    def classify(self, normalized: str) -> tuple[tuple[str, float], ...]:
        if not normalized:
            return ((OUT_OF_SCOPE, 1.0),)
        probs = self.model.predict_proba([normalized[:MAX_PARSE_CHARS]])[0]
        order = probs.argsort()[::-1][:10]
        return tuple((self.labels[i], float(probs[i])) for i in order)

    def parse(self, text: str, now: datetime) -> Parse:
        ranking = self.classify(normalize(text))
        intent, confidence = ranking[0]
        entities = tuple(extract_entities(text[: MAX_PARSE_CHARS * 4], now))
        return Parse(text, intent, confidence, ranking, entities)
