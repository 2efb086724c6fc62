"""Ensembles tried for issue 11: the engine's probabilities averaged with a second model's.

    .venv/bin/python benchmarks/ensemble.py      (needs the bench extra: jieba)

Each row: 5-fold over scripts_zh's examples (the measure a choice is made on) and held-out v2
(benchmarks/data/heldout_v2.jsonl, trained on all examples); accuracy, out-of-scope recall and
wrong answers at the configured threshold, and the second model's fit time on one fold.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import ComplementNB

from benchmarks.nlu import Example, heldout_v2
from bot.nlu.engine import OUT_OF_SCOPE, IntentEngine, Tokenizer
from bot.nlu.normalize import normalize
from bot.settings import Settings
from storage.scripts import ScriptLibrary

WEIGHT = 0.3  # the second model's share


def engine_probs(train: Sequence[Example], texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    engine = IntentEngine(train)
    out = np.zeros((len(texts), len(engine.labels)))
    for row, text in enumerate(texts):
        for label, p in engine.classify(text):
            out[row, engine.labels.index(label)] = p
    return engine.labels, out


def second_probs(
    make: Callable[[], object], analyzer: Callable[[str], list[str]], train_texts: list[str],
    train_y: np.ndarray, texts: list[str], labels: list[str],
) -> tuple[np.ndarray, float]:
    vec = TfidfVectorizer(analyzer=analyzer, sublinear_tf=True)
    x = vec.fit_transform(train_texts)
    start = time.perf_counter()
    model = make().fit(x, train_y)  # type: ignore[attr-defined]
    fit_s = time.perf_counter() - start
    logp = model.predict_log_proba(vec.transform(texts))
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p[:, [list(model.classes_).index(label) for label in labels]], fit_s


def metrics(labels: list[str], p: np.ndarray, gold: np.ndarray, thr: float) -> np.ndarray:
    pred, conf = np.array(labels)[p.argmax(axis=1)], p.max(axis=1)
    oos = gold == OUT_OF_SCOPE
    wrong = (conf >= thr) & (pred != OUT_OF_SCOPE) & (pred != gold)
    return np.array([
        (pred == gold).mean(), (pred[oos] == OUT_OF_SCOPE).mean(), wrong.mean(), (conf < thr).mean()
    ])


def main() -> None:
    thr = Settings.model_fields["confidence_threshold"].default
    library = ScriptLibrary()
    examples = library.examples()
    texts = [normalize(t) for t, _ in examples]
    y = np.array([i for _, i in examples])
    v2 = heldout_v2()
    v2_texts, v2_y = [normalize(t) for t, _ in v2], np.array([i for _, i in v2])
    tok = Tokenizer(library.root / "dict" / "insurance.txt")
    words = {t: tok(t) for t in {*texts, *v2_texts}}
    seconds: list[tuple[str, Callable[[], object] | None]] = [
        ("engine alone", None),
        ("+ ComplementNB on jieba words", lambda: ComplementNB(alpha=0.3)),
        ("+ LogisticRegression C=5 on jieba words", lambda: LogisticRegression(C=5, max_iter=500)),
    ]
    print("| system | 5-fold acc | 5-fold OOS recall | 5-fold wrong | 5-fold handoffs | v2 acc "
          "| v2 OOS recall | v2 wrong | v2 handoffs | second model fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, make in seconds:
        dev, fits = [], []
        for tr, te in StratifiedKFold(5, shuffle=True, random_state=13).split(texts, y):
            labels, p = engine_probs([examples[i] for i in tr], [texts[i] for i in te])
            if make is not None:
                q, fit_s = second_probs(make, words.__getitem__, [texts[i] for i in tr], y[tr],
                                        [texts[i] for i in te], labels)
                p = (1 - WEIGHT) * p + WEIGHT * q
                fits.append(fit_s)
            dev.append(metrics(labels, p, y[te], thr))
        labels, p = engine_probs(examples, v2_texts)
        if make is not None:
            q, _ = second_probs(make, words.__getitem__, texts, y, v2_texts, labels)
            p = (1 - WEIGHT) * p + WEIGHT * q
        d, v = np.mean(dev, axis=0), metrics(labels, p, v2_y, thr)
        fit = f"{np.mean(fits):.1f}" if fits else "-"
        print(f"| {name} | {d[0]:.3f} | {d[1]:.3f} | {d[2]:.1%} | {d[3]:.1%} | {v[0]:.3f} "
              f"| {v[1]:.3f} | {v[2]:.1%} | {v[3]:.1%} | {fit} |", flush=True)


if __name__ == "__main__":
    main()
