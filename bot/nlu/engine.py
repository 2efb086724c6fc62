"""The intent engine: normalise -> features -> intent + confidence, and entities.

A linear SVM (one-vs-rest) over TF-IDF character 1-3-grams of the normalised text, trained at
start from the examples in scripts_zh/ (about a second for ~5,000 examples). Its margins become
a confidence by a softmax whose temperature is fitted on out-of-fold margins at training time,
so `confidence_threshold` keeps its meaning when the examples change. Character n-grams need no
word segmentation; jieba words added nothing measurable and cost a second of start-up, so jieba
is not a runtime dependency: `Tokenizer` (with the insurance dictionary) imports it only when
built, for the benchmark's ablation (`pip install -e '.[bench]'`).
`benchmarks/nlu.py` holds the evidence for these choices.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.sparse import csr_matrix
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from bot.nlu.entities import Entity, extract_entities
from bot.nlu.normalize import normalize

OUT_OF_SCOPE = "out_of_scope"
MAX_PARSE_CHARS = 512  # longer messages are classified on their head: intent sits up front
MAX_INPUT_CHARS = 4 * MAX_PARSE_CHARS  # longer still is a forward or a paste, never a request
MAX_ENTITY_CHARS = 256  # entities are looked for in the head; the extractors are not linear

# Character 1-, 2- and 3-grams; each order is l2-normalised on its own and weighted, so single
# characters (which generalise best from ~150 examples an intent) are not drowned out by the
# many longer n-grams.
ORDER_WEIGHTS = (1.0, 1.0, 0.5)
# Start/end markers for bigrams; normalize() strips control characters, so no text has them.
_START, _END = "\x02", "\x03"
SVM_C = 1.0
# Family chatter is the most varied class and the one most often mistaken for a request; it
# weighs double in training. On 5-fold cross-validation over the examples this raised
# out-of-scope recall from 0.943 to 0.949 at the same accuracy (benchmarks/nlu.py --ablation).
OOS_WEIGHT = 2.0
MIN_KNOWN = 0.2  # below this share of known n-grams a text is junk or another script
CALIBRATION_FOLDS = 3

# Lone surrogate halves (broken clients) crash opencc; replaced one for one, offsets hold.
_SURROGATES_RE = re.compile("[\ud800-\udfff]")


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
            "intent_ranking": [{"name": n, "confidence": round(c, 4)} for n, c in self.ranking],
            "entities": [
                {"entity": e.entity, "value": e.value, "start": e.start, "end": e.end}
                for e in self.entities
            ],
        }


class Tokenizer:
    """jieba with our insurance dictionary, as its own instance (no global state)."""

    def __init__(self, userdict: Path | None) -> None:
        import jieba  # noqa: PLC0415 - optional (the bench extra); production never segments

        logging.getLogger("jieba").setLevel(logging.WARNING)
        self._jieba = jieba.Tokenizer()
        if userdict is not None and userdict.exists():
            with userdict.open("rb") as fh:  # jieba leaves a file it opens itself unclosed
                self._jieba.load_userdict(fh)
        self._jieba.initialize()

    def __call__(self, text: str) -> list[str]:
        return [t for t in self._jieba.lcut(text) if t.strip()]


def char_ngrams(text: str) -> list[str]:
    """The features of normalised text: character 1-, 2- and 3-grams, spaces kept; bigrams also
    across the start and end of the message ("谢谢" at the end is not "谢谢" inside)."""
    n = len(text)
    marked = _START + text + _END
    grams = list(text)
    grams += [marked[i : i + 2] for i in range(n + 1)]
    grams += [text[i : i + 3] for i in range(n - 2)]
    return grams


def count_ngrams(
    texts: Sequence[str], vocabulary: dict[str, int] | None = None
) -> tuple[dict[str, int], csr_matrix]:
    """n-gram counts per text; a new vocabulary grows from the texts, a given one is kept."""
    grow = vocabulary is None
    vocab: dict[str, int] = {} if vocabulary is None else vocabulary
    indices: list[int] = []
    indptr = [0]
    for text in texts:
        for gram in char_ngrams(text):
            j = vocab.get(gram)
            if j is None:
                if not grow:
                    continue
                j = vocab[gram] = len(vocab)
            indices.append(j)
        indptr.append(len(indices))
    counts = csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(texts), len(vocab)))
    counts.sum_duplicates()
    return vocab, counts


class Features:
    """TF-IDF as sklearn's TfidfVectorizer(sublinear_tf=True) computes it, l2-normalised and
    weighted per kind of n-gram; n-grams absent from the training texts are ignored."""

    def __init__(self, counts: csr_matrix, kinds: np.ndarray) -> None:
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        self.known = df > 0
        self.idf = np.log((1 + counts.shape[0]) / (1 + df)) + 1.0
        self.kinds = kinds
        self.matrix = self.weigh(counts)

    def weigh(self, counts: csr_matrix) -> csr_matrix:
        x = counts.copy()
        x.data[~self.known[x.indices]] = 0.0
        x.eliminate_zeros()
        x.data = (1.0 + np.log(x.data)) * self.idf[x.indices]
        n, k = x.shape[0], len(ORDER_WEIGHTS)
        rows = np.repeat(np.arange(n), np.diff(x.indptr))
        kinds = self.kinds[x.indices]
        slot = rows * k + kinds
        norms = np.sqrt(np.bincount(slot, weights=x.data**2, minlength=n * k))
        x.data *= np.asarray(ORDER_WEIGHTS)[kinds] / norms[slot]
        return x


_OOS_ONLY: tuple[tuple[str, float], ...] = ((OUT_OF_SCOPE, 1.0),)


def _softmax(margins: np.ndarray, temperature: float) -> np.ndarray:
    z = margins * temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    result: np.ndarray = z / z.sum(axis=-1, keepdims=True)
    return result


def _fit_temperature(margins: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature that makes out-of-fold margins honest probabilities (min NLL)."""

    def nll(log_t: float) -> float:
        p = _softmax(margins, math.exp(log_t))[np.arange(len(y)), y]
        return float(-np.log(np.clip(p, 1e-12, None)).mean())

    return math.exp(minimize_scalar(nll, bounds=(-2.0, 4.0), method="bounded").x)


def _fit(features: Features, y: np.ndarray, weights: dict[int, float]) -> LinearSVC:
    return LinearSVC(C=SVM_C, class_weight=weights or None).fit(features.matrix, y)


def _margins_of(clf: LinearSVC, x: Any) -> np.ndarray:
    m = clf.decision_function(x)
    return np.column_stack([-m, m]) if m.ndim == 1 else m


class IntentEngine:
    """Trained once from (text, intent) pairs; `parse` is pure and thread-safe."""

    def __init__(self, examples: Sequence[tuple[str, str]], userdict: Path | None = None) -> None:
        self._userdict = userdict
        texts = [normalize(_SURROGATES_RE.sub("\ufffd", t)) for t, _ in examples]
        self.labels: list[str] = sorted({i for _, i in examples})
        index = {label: k for k, label in enumerate(self.labels)}
        y = np.array([index[i] for _, i in examples])
        self._class_weights = {index[OUT_OF_SCOPE]: OOS_WEIGHT} if OUT_OF_SCOPE in index else {}
        self._vocabulary, counts = count_ngrams(texts)
        self._order = np.array([len(g) - 1 for g in self._vocabulary], dtype=np.intp)
        self.temperature = self._calibrate(counts, y)
        features = Features(counts, self._order)
        clf = _fit(features, y, self._class_weights)
        self._idf = features.idf
        self._order_weights = np.asarray(ORDER_WEIGHTS)
        coef, intercept = clf.coef_, clf.intercept_
        if coef.shape[0] == 1:  # two intents: sklearn keeps one row, for the second class
            coef, intercept = np.vstack([-coef, coef]), np.array([-intercept[0], intercept[0]])
        self._weights = np.ascontiguousarray(coef.T)  # one row of class weights per feature
        self._intercept = intercept

    def _calibrate(self, counts: csr_matrix, y: np.ndarray) -> float:
        """Fit the softmax temperature on margins of examples each model did not train on."""
        classes = np.bincount(y)
        folds = min(CALIBRATION_FOLDS, int(classes.min()))
        if folds < 2:
            return 1.0
        margins = np.zeros((len(y), len(classes)))
        split = StratifiedKFold(folds, shuffle=True, random_state=0).split(np.zeros(len(y)), y)
        for tr, te in split:
            features = Features(counts[tr], self._order)
            clf = _fit(features, y[tr], self._class_weights)
            margins[te] = _margins_of(clf, features.weigh(counts[te]))
        return _fit_temperature(margins, y)

    @cached_property
    def tokenizer(self) -> Tokenizer:
        """jieba with the insurance dictionary, loaded on first use (about a second)."""
        return Tokenizer(self._userdict)

    def margins(self, normalized: str) -> tuple[np.ndarray, float] | None:
        """Class margins and the share of the text's n-grams seen in training; None: none seen.

        The same arithmetic as Features.weigh + LinearSVC.decision_function, for one text,
        without sklearn's per-call overhead (~0.05 ms instead of ~1 ms).
        """
        counts = Counter(char_ngrams(normalized))
        cols: list[int] = []
        tfs: list[int] = []
        for gram, n in counts.items():
            j = self._vocabulary.get(gram)
            if j is not None:
                cols.append(j)
                tfs.append(n)
        if not cols:
            return None
        known = sum(tfs) / sum(counts.values())
        v = (1.0 + np.log(np.array(tfs, dtype=np.float64))) * self._idf[cols]
        orders = self._order[cols]
        squares = np.bincount(orders, weights=v * v, minlength=len(ORDER_WEIGHTS))
        v *= self._order_weights[orders] / np.sqrt(squares[orders])
        return v @ self._weights[cols] + self._intercept, known

    def classify(self, normalized: str) -> tuple[tuple[str, float], ...]:
        """Intents ranked by confidence (top 10) for normalised text."""
        text = normalized[:MAX_PARSE_CHARS]
        if not any(c.isalnum() for c in text):
            return _OOS_ONLY  # empty, punctuation, symbols
        scored = self.margins(text)
        if scored is None or scored[1] < MIN_KNOWN:
            return _OOS_ONLY  # hardly anything we have seen: junk, binary, another script
        probs = _softmax(scored[0], self.temperature)
        order = probs.argsort()[::-1][:10]
        return tuple((self.labels[i], float(probs[i])) for i in order)

    def parse(self, text: str, now: datetime) -> Parse:
        if len(text) > MAX_INPUT_CHARS:  # a forward or a paste: not a request, no slots in it
            return Parse(text, OUT_OF_SCOPE, 1.0, _OOS_ONLY)
        clean = _SURROGATES_RE.sub("\ufffd", text)
        ranking = self.classify(normalize(clean))
        intent, confidence = ranking[0]
        entities = tuple(extract_entities(clean[:MAX_ENTITY_CHARS], now))
        return Parse(text, intent, confidence, ranking, entities)
