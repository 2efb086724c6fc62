"""Intent engine benchmark: our engine against a plain baseline, on our own examples.

    .venv/bin/python benchmarks/nlu.py [--threshold T] [--seed 13] [--errors] [--ablation]

* held-out: one stratified 80/20 split of scripts_zh's examples; each system is trained on the
  80 % and scored on the 20 % it never saw. "no near-dup" repeats the accuracy on the held-out
  items whose character bigrams overlap no training example by 80 % or more (Jaccard).
* 5-fold: stratified cross-validation over all examples (mean ± std over the folds), so the
  numbers do not hang on one lucky split.
* baseline: TF-IDF character 1-3-grams + LinearSVC with sklearn's defaults, on the same
  normalised text; it has no confidence, so it answers everything it does not call out_of_scope.
* wrong answer: the system answered (confidence >= threshold and intent != out_of_scope) but the
  intent is wrong; a rate over all test items. handoff: confidence below the threshold.
* train: building the engine from all examples, as every process start does (median of 3).
* parse: one message through `IntentEngine.parse` (normalise, classify, entities), >= 1000 times;
  wall-clock p50/p99, and p99 of the CPU time the parsing thread used (immune to other load).
* held-out v2 (benchmarks/data/heldout_v2.jsonl): customer messages written apart from the
  training examples (other writers' habits, dialects, 繁体, typos, voice-to-text run-ons, emoji,
  family chatter); each system is trained on all of scripts_zh's examples, as at start, and
  scored on all of it. Nothing in training loads this file; it is for measuring, never tuning.
* time expressions (benchmarks/data/time_heldout.jsonl): informal and dialect time expressions
  with the moment each means against a fixed now; the share resolved exactly.
* --ablation: 5-fold accuracy of the feature and classifier variants the engine was chosen from.
* --quick: only the held-out v2 and time tables (no split, folds or latency).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import sklearn
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from bot.nlu.engine import OOS_WEIGHT, OUT_OF_SCOPE, IntentEngine, Tokenizer
from bot.nlu.entities import extract_entities
from bot.nlu.normalize import normalize
from bot.nlu.timeparse import resolve_time
from bot.settings import Settings
from storage.scripts import ScriptLibrary

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Monday
DATA = Path(__file__).resolve().parent / "data"
HELDOUT_V2 = DATA / "heldout_v2.jsonl"
TIME_HELDOUT = DATA / "time_heldout.jsonl"
PARSES = 2000
NEAR_DUP = 0.8
JUNK = [
    "",
    " ",
    "\u200b\u200b",
    "😂😂😂",
    "👍",
    "🙏🙏🙏",
    "[微笑][捂脸]",
    "。。。",
    "？？？",
    "……",
    "!!!",
    "~~~",
    "-_-",
    "@小助手",
    "\x00\x01\x02\x7f",
    "\ud83d",
    bytes(range(256)).decode("latin-1"),
    "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(40)),  # random ideographs
    "ㅋㅋㅋㅋ 진짜",
    "ＡＡＡＡＡ",
    "1" * 10_000,
    "保" * 10_000,
    "明天后天下周" * 2000,
    "¥1 " * 4000,
    "退保" * 5000,
    "x" * 10_000,
]

Example = tuple[str, str]
Prediction = tuple[str, float]


@dataclass
class Scores:
    accuracy: float
    oos_recall: float
    wrong: float
    handoff: float


class System:
    """Something that learns (text, intent) pairs and answers (intent, confidence) per text."""

    name = ""
    has_confidence = True

    def fit(self, examples: Sequence[Example]) -> None:
        raise NotImplementedError

    def predict(self, text: str) -> Prediction:
        raise NotImplementedError

    def parse(self, text: str) -> object:
        raise NotImplementedError


class Engine(System):
    name = "engine (bot/nlu/engine.py)"

    def __init__(self, userdict: Path) -> None:
        self.userdict = userdict

    def fit(self, examples: Sequence[Example]) -> None:
        self.engine = IntentEngine(examples, self.userdict)

    def predict(self, text: str) -> Prediction:
        return self.engine.classify(normalize(text))[0]

    def parse(self, text: str) -> object:
        return self.engine.parse(text, NOW)


class Baseline(System):
    name = "baseline: char 1-3 TF-IDF + LinearSVC"
    has_confidence = False

    def fit(self, examples: Sequence[Example]) -> None:
        self.model = make_pipeline(
            TfidfVectorizer(analyzer="char", ngram_range=(1, 3)), LinearSVC()
        )
        self.model.fit([normalize(t) for t, _ in examples], [i for _, i in examples])

    def predict(self, text: str) -> Prediction:
        return str(self.model.predict([normalize(text)])[0]), 1.0

    def parse(self, text: str) -> object:
        return self.predict(text), extract_entities(text, NOW)


def score(preds: Sequence[Prediction], gold: Sequence[str], threshold: float) -> Scores:
    pairs = list(zip(preds, gold, strict=True))
    oos = [p for p, g in pairs if g == OUT_OF_SCOPE]
    answered = [(p, g) for p, g in pairs if p[1] >= threshold and p[0] != OUT_OF_SCOPE]
    return Scores(
        accuracy=sum(p[0] == g for p, g in pairs) / len(pairs),
        oos_recall=sum(p[0] == OUT_OF_SCOPE for p in oos) / max(1, len(oos)),
        wrong=sum(p[0] != g for p, g in answered) / len(pairs),
        handoff=sum(p[1] < threshold for p in preds) / len(pairs),
    )


def bigrams(text: str) -> set[str]:
    t = normalize(text)
    return {t[i : i + 2] for i in range(len(t) - 1)} or {t}


def near_duplicates(train: Sequence[Example], test: Sequence[Example]) -> list[bool]:
    """For each test item: does some training text share >= NEAR_DUP of its bigrams (Jaccard)?"""
    index: dict[str, list[int]] = {}
    train_sets = [bigrams(t) for t, _ in train]
    for k, grams in enumerate(train_sets):
        for g in grams:
            index.setdefault(g, []).append(k)
    out = []
    for text, _ in test:
        grams = bigrams(text)
        shared = Counter(k for g in grams for k in index.get(g, ()))
        out.append(
            any(n / (len(grams) + len(train_sets[k]) - n) >= NEAR_DUP for k, n in shared.items())
        )
    return out


def latencies(system: System, texts: Sequence[str]) -> tuple[list[float], list[float]]:
    """Sorted wall-clock and thread-CPU milliseconds of PARSES single-message parses."""
    for t in texts[:50]:
        system.parse(t)  # warm caches
    wall, cpu = [], []
    for k in range(PARSES):
        text = texts[k % len(texts)]
        w0, c0 = time.perf_counter(), time.thread_time()
        system.parse(text)
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    return sorted(wall), sorted(cpu)


def pct(sorted_ms: Sequence[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{cpu}, {cores} cores (load average {load} at the end); Python "
        f"{platform.python_version()}, scikit-learn {sklearn.__version__}, numpy {np.__version__}"
    )


def fmt(values: Sequence[float], percent: bool = False) -> str:
    if percent:
        return f"{statistics.mean(values):.1%} ± {statistics.pstdev(values) * 100:.1f}"
    return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"


def cross_validate(
    make: Callable[[], System], examples: Sequence[Example], seed: int
) -> tuple[list[Prediction], list[list[int]]]:
    """Out-of-fold predictions for every example, and which items each fold held out."""
    y = [i for _, i in examples]
    preds: list[Prediction] = [("", 0.0)] * len(examples)
    folds = []
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(examples, y):
        system = make()
        system.fit([examples[i] for i in tr])
        for i in te:
            preds[i] = system.predict(examples[i][0])
        folds.append(list(te))
    return preds, folds


def main() -> None:
    configured = Settings.model_fields["confidence_threshold"].default
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--threshold",
        type=float,
        default=configured,
        help=f"confidence threshold (default: settings, now {configured})",
    )
    ap.add_argument("--seed", type=int, default=13, help="split and fold seed")
    ap.add_argument("--errors", action="store_true", help="print the held-out mistakes")
    ap.add_argument("--ablation", action="store_true", help="compare feature/model variants")
    ap.add_argument("--quick", action="store_true", help="only the held-out v2 and time tables")
    args = ap.parse_args()
    thr = args.threshold

    library = ScriptLibrary()
    userdict = library.root / "dict" / "insurance.txt"
    examples = library.examples()
    print_heldout_v2(examples, userdict, thr)
    print_time_heldout()
    if args.quick:
        return
    labels = [i for _, i in examples]
    train, test = train_test_split(examples, test_size=0.2, stratify=labels, random_state=args.seed)
    gold = [i for _, i in test]
    dup = near_duplicates(train, test)
    fresh = [k for k, d in enumerate(dup) if not d]

    rows = []
    engine_oof: tuple[list[Prediction], list[str]] | None = None
    for make in (lambda: Engine(userdict), Baseline):
        system = make()
        system.fit(train)
        t_sys = thr if system.has_confidence else 0.0
        held = [system.predict(t) for t, _ in test]
        held_scores = score(held, gold, t_sys)
        fresh_acc = sum(held[k][0] == gold[k] for k in fresh) / max(1, len(fresh))
        if args.errors and isinstance(system, Engine):
            print_errors(test, held, thr)
        oof, folds = cross_validate(make, examples, args.seed)
        fold_scores = [score([oof[i] for i in f], [labels[i] for i in f], t_sys) for f in folds]
        if isinstance(system, Engine):
            engine_oof = (oof, labels)
        full = make()
        train_s = statistics.median(timed(lambda full=full: full.fit(examples)) for _ in range(3))
        wall, cpu = latencies(full, [t for t, _ in test])
        rows.append((system.name, held_scores, fresh_acc, fold_scores, train_s, wall, cpu))

    print(
        f"## Intent engine benchmark — {len(examples)} examples, {len(set(labels))} intents; "
        f"held-out {len(test)} (seed {args.seed}; {len(test) - len(fresh)} have a near-"
        f"duplicate in train); threshold {thr}\n"
    )
    print(
        "| system | held-out acc | no near-dup | OOS recall | wrong answers | handoffs "
        "| 5-fold acc | 5-fold wrong | 5-fold handoffs | train s | parse p50 ms "
        "| parse p99 ms | p99 CPU ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, h, fresh_acc, f, train_s, wall, cpu in rows:
        print(
            f"| {name} | {h.accuracy:.3f} | {fresh_acc:.3f} | {h.oos_recall:.3f} | {h.wrong:.1%} "
            f"| {h.handoff:.1%} | {fmt([x.accuracy for x in f])} "
            f"| {fmt([x.wrong for x in f], percent=True)} "
            f"| {fmt([x.handoff for x in f], percent=True)} | {train_s:.2f} "
            f"| {pct(wall, 0.5):.3f} | {pct(wall, 0.99):.3f} | {pct(cpu, 0.99):.3f} |"
        )
    print(f"\nmachine: {machine()}")
    print(
        f"parse latency over {PARSES} parses of held-out texts. The baseline has no "
        "confidence: it answers everything, so it never hands off."
    )
    if engine_oof is not None:
        print_sweep(*engine_oof, thr)
    print_junk(Engine(userdict), examples)
    if args.ablation:
        print_ablation(examples, userdict, args.seed)


def load_jsonl(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def heldout_v2() -> list[Example]:
    return [(r["text"], r["intent"]) for r in load_jsonl(HELDOUT_V2)]


def print_heldout_v2(examples: Sequence[Example], userdict: Path, thr: float) -> None:
    """Each system trained on every example, scored on messages nobody trained on."""
    test = heldout_v2()
    gold = [i for _, i in test]
    print(
        f"## Held-out v2 — {len(test)} messages written apart from the {len(examples)} "
        f"training examples; threshold {thr}\n"
    )
    print("| system | accuracy | wrong answers | handoffs | OOS recall |")
    print("|---|---|---|---|---|")
    for system in (Engine(userdict), Baseline()):
        system.fit(examples)
        s = score([system.predict(t) for t, _ in test], gold, thr if system.has_confidence else 0)
        print(
            f"| {system.name} | {s.accuracy:.3f} | {s.wrong:.1%} | {s.handoff:.1%} "
            f"| {s.oos_recall:.3f} |"
        )
    print()


def print_time_heldout() -> None:
    items = load_jsonl(TIME_HELDOUT)
    right = 0
    for item in items:
        found = resolve_time(item["text"], NOW)
        right += bool(found) and found[0].value.isoformat() == item["value"]
    print(
        f"## Time expressions — {len(items)} informal and dialect forms, now = "
        f"{NOW.isoformat()}\n\nresolved exactly: {right}/{len(items)} = "
        f"{right / len(items):.3f}\n"
    )


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def print_sweep(oof: list[Prediction], y: list[str], chosen: float) -> None:
    print("\n### engine: confidence threshold on 5-fold out-of-fold predictions\n")
    print("| threshold | answered | accuracy when answered | wrong answers | handoffs |")
    print("|---|---|---|---|---|")
    for t in sorted({0.3, 0.4, 0.5, 0.6, 0.7, 0.8, round(chosen, 2)}):
        s = score(oof, y, t)
        answered = [
            (p, g) for p, g in zip(oof, y, strict=True) if p[1] >= t and p[0] != OUT_OF_SCOPE
        ]
        acc = sum(p[0] == g for p, g in answered) / max(1, len(answered))
        mark = " (used above)" if abs(t - chosen) < 1e-9 else ""
        print(
            f"| {t:.2f}{mark} | {len(answered) / len(y):.1%} | {acc:.3f} | {s.wrong:.1%} "
            f"| {s.handoff:.1%} |"
        )


def print_junk(engine: Engine, examples: Sequence[Example]) -> None:
    engine.fit(examples)
    worst, oos = 0.0, 0
    for text in JUNK:
        start = time.perf_counter()
        p = engine.engine.parse(text, NOW)
        worst = max(worst, (time.perf_counter() - start) * 1000)
        oos += p.intent == OUT_OF_SCOPE
    print(
        f"\njunk inputs (empty, emoji, punctuation, binary, other scripts, 10,000 chars): "
        f"{oos}/{len(JUNK)} out_of_scope, slowest parse {worst:.2f} ms"
    )


def print_ablation(examples: Sequence[Example], userdict: Path, seed: int) -> None:
    """5-fold accuracy of the variants: each row changes one thing against the engine."""
    texts = [normalize(t) for t, _ in examples]
    y = np.array([i for _, i in examples])
    tok = Tokenizer(userdict)
    words_of = {t: tok(t) for t in set(texts)}

    def grams(k: int) -> Callable[[str], list[str]]:
        return lambda t: [t[i : i + k] for i in range(len(t) - k + 1)]

    def edge_bigrams(t: str) -> list[str]:
        m = f"\x02{t}\x03"
        return [m[i : i + 2] for i in range(len(m) - 1)]

    def gapped(t: str) -> list[str]:
        return [t[i] + "\x01" + t[i + 2] for i in range(len(t) - 2)]

    def words(t: str) -> list[str]:
        return words_of[t]

    engine = [(grams(1), 1.0), (edge_bigrams, 1.0), (grams(3), 0.5)]
    weights = {OUT_OF_SCOPE: OOS_WEIGHT}
    svc = lambda: LinearSVC(C=1.0, class_weight=weights)  # noqa: E731
    variants: list[tuple[str, list[tuple[Callable[[str], list[str]], float]], Callable]] = [
        (
            "engine: char 1-, 2- (with message edges), 3-grams weighted 1/1/0.5; LinearSVC C=1, "
            f"out_of_scope weighs {OOS_WEIGHT}",
            engine,
            svc,
        ),
        ("out_of_scope weighs 1 (as before)", engine, lambda: LinearSVC(C=1.0)),
        (
            "out_of_scope weighs 3",
            engine,
            lambda: LinearSVC(C=1.0, class_weight={OUT_OF_SCOPE: 3.0}),
        ),
        (
            "char 1-3 in one TF-IDF, no per-order weights",
            [(lambda t: grams(1)(t) + grams(2)(t) + grams(3)(t), 1.0)],
            svc,
        ),
        ("without message-edge bigrams", [engine[0], (grams(2), 1.0), engine[2]], svc),
        ("plus gapped bigrams (0.5)", [*engine, (gapped, 0.5)], svc),
        ("plus 4-grams (0.3)", [*engine, (grams(4), 0.3)], svc),
        ("plus jieba words (0.5)", [*engine, (words, 0.5)], svc),
        ("LinearSVC C=0.5", engine, lambda: LinearSVC(C=0.5, class_weight=weights)),
        ("LinearSVC C=2", engine, lambda: LinearSVC(C=2.0, class_weight=weights)),
        (
            "LogisticRegression C=20",
            engine,
            lambda: LogisticRegression(C=20, max_iter=1000, class_weight=weights),
        ),
        ("ComplementNB", engine, lambda: ComplementNB(alpha=0.3)),
    ]
    v2 = heldout_v2()
    v2_texts = [normalize(t) for t, _ in v2]
    v2_y = np.array([i for _, i in v2])
    for t in v2_texts:
        words_of.setdefault(t, tok(t))

    def fit_predict(blocks: list, make: Callable, tr_t: list[str], tr_y: np.ndarray,
                    te_t: list[str]) -> tuple[np.ndarray, float]:
        xtr, xte = [], []
        for fn, w in blocks:
            v = TfidfVectorizer(analyzer=fn, sublinear_tf=True)
            xtr.append(v.fit_transform(tr_t) * w)
            xte.append(v.transform(te_t) * w)
        start = time.perf_counter()
        clf = make().fit(hstack(xtr).tocsr(), tr_y)
        return clf.predict(hstack(xte).tocsr()), time.perf_counter() - start

    def oos_recall(pred: np.ndarray, gold: np.ndarray) -> float:
        return float((pred[gold == OUT_OF_SCOPE] == OUT_OF_SCOPE).mean())

    print(
        "\n### ablation: one change against the engine at a time (argmax, no threshold); "
        "5-fold over the examples is the measure the choice was made on, held-out v2 is shown "
        "beside it\n"
    )
    print("| variant | 5-fold acc | 5-fold OOS recall | v2 acc | v2 OOS recall | fit s (a fold) |")
    print("|---|---|---|---|---|---|")
    for name, blocks, make in variants:
        accs, recalls, fits = [], [], []
        for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(texts, y):
            pred, fit_s = fit_predict(
                blocks, make, [texts[i] for i in tr], y[tr], [texts[i] for i in te]
            )
            fits.append(fit_s)
            accs.append(float((pred == y[te]).mean()))
            recalls.append(oos_recall(pred, y[te]))
        pred, _ = fit_predict(blocks, make, texts, y, v2_texts)
        print(
            f"| {name} | {fmt(accs)} | {statistics.mean(recalls):.3f} "
            f"| {(pred == v2_y).mean():.3f} | {oos_recall(pred, v2_y):.3f} "
            f"| {statistics.mean(fits):.2f} |"
        )
    print("\njieba also costs ~1 s of start-up (loading its dictionary) and ~0.1 ms a parse.")


def print_errors(test: Sequence[Example], held: Sequence[Prediction], thr: float) -> None:
    pairs = Counter((g, p[0]) for (_, g), p in zip(test, held, strict=True) if p[0] != g)
    print("### held-out confusions (gold -> predicted)\n")
    for (g, p), n in pairs.most_common():
        print(f"{n:3d}  {g} -> {p}")
    print("\n### held-out mistakes (gold -> predicted, confidence; * = answered)\n")
    for (text, g), (p, c) in sorted(zip(test, held, strict=True), key=lambda x: x[0][1]):
        if p != g:
            flag = "*" if c >= thr and p != OUT_OF_SCOPE else " "
            print(f"{flag} {g:22s} -> {p:22s} {c:.2f}  {text}")
    print()


if __name__ == "__main__":
    main()
