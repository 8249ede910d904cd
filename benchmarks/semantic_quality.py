"""Quality of the semantic cache's vector tier on public paraphrase data, per threshold.

``python -m benchmarks.semantic_quality --data DIR`` (or ``$LEXIGRAM_PARAPHRASE_DATA``), where
DIR holds the files of the brmson/dataset-sts repository (see docs/benchmarks.md for how they
were obtained here): ``data/sts/semeval-sts/201[2-6]/*.test.tsv`` (SemEval STS, gold score
0-5 then the two sentences) and ``data/para/msr/msr-para-test.tsv`` (MSRP: label, ids, pair).

For each set, pairs are paraphrases (STS score >= 4, MSRP label 1) or not (STS <= 2, MSRP 0).
Half of the paraphrase pairs, chosen with a fixed seed, have their first sentence cached
("present"); for the other half it is not ("absent"); the first sentence of every
non-paraphrase pair is cached too, so the second one is a hard near miss. Then each second
sentence is looked up (top-1 cosine, MiniLM, as the cache does) and, at each threshold:

* right hit: a present query whose best match >= threshold is its own partner;
* wrong hit: a present query whose best match >= threshold is another cached sentence;
* false hit: an absent or near-miss query (its answer is not cached) that hits anything.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

THRESHOLDS = [round(0.80 + 0.01 * i, 2) for i in range(18)]  # 0.80 .. 0.97
SEED = 17


@dataclass
class PairSet:
    name: str
    positives: list[tuple[str, str]]
    negatives: list[tuple[str, str]]


def read_sts(paths: Iterable[Path], name: str) -> PairSet:
    positives: list[tuple[str, str]] = []
    negatives: list[tuple[str, str]] = []
    for path in paths:
        with path.open(encoding="utf-8") as f:
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) < 3 or not row[0].strip():
                    continue
                score, a, b = float(row[0]), row[1].strip(), row[2].strip()
                if a.casefold() == b.casefold():
                    continue
                if score >= 4.0:
                    positives.append((a, b))
                elif score <= 2.0:
                    negatives.append((a, b))
    return PairSet(name, positives, negatives)


def read_msrp(path: Path) -> PairSet:
    positives: list[tuple[str, str]] = []
    negatives: list[tuple[str, str]] = []
    with path.open(encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        for row in reader:
            if len(row) >= 5:
                (positives if row[0] == "1" else negatives).append((row[3], row[4]))
    return PairSet("MSRP test", positives, negatives)


def load_sets(root: Path) -> list[PairSet]:
    sts = root / "data" / "sts" / "semeval-sts"
    sets = [
        read_sts([sts / "2016" / "question-question.test.tsv"], "STS 2016 question-question"),
        read_sts(sorted(sts.glob("201[2-6]/*.test.tsv")), "STS 2012-2016 (all test sets)"),
        read_msrp(root / "data" / "para" / "msr" / "msr-para-test.tsv"),
    ]
    return [s for s in sets if s.positives]


def evaluate(pairs: PairSet, embed: object) -> list[tuple[float, float, float, float, int, int]]:
    """Rows (threshold, right %, wrong %, false %, present n, absent n)."""
    import faiss
    import numpy as np

    faiss.omp_set_num_threads(1)
    positives = list(pairs.positives)
    random.Random(SEED).shuffle(positives)
    half = len(positives) // 2
    present, absent = positives[:half], positives[half:]
    cached = sorted({a for a, _ in present} | {a for a, _ in pairs.negatives})
    position = {text: i for i, text in enumerate(cached)}
    cached_set = set(cached)
    q_present = [(b, position[a]) for a, b in present if b not in cached_set]
    q_absent = [b for _, b in absent + pairs.negatives if b not in cached_set]
    q_absent = [b for b in q_absent if b not in {a for a, _ in absent}]
    vectors = embed(cached)  # type: ignore[operator]
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    sims_p, ids_p = index.search(embed([b for b, _ in q_present]), 1)  # type: ignore[operator]
    sims_a, _ = index.search(embed(q_absent), 1)  # type: ignore[operator]
    right_ok = ids_p[:, 0] == np.array([i for _, i in q_present])
    rows = []
    for t in THRESHOLDS:
        over = sims_p[:, 0] >= t
        right = float(np.mean(over & right_ok)) * 100
        wrong = float(np.mean(over & ~right_ok)) * 100
        false = float(np.mean(sims_a[:, 0] >= t)) * 100
        rows.append((t, right, wrong, false, len(q_present), len(q_absent)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.semantic_quality")
    parser.add_argument("--data", type=Path, default=os.environ.get("LEXIGRAM_PARAPHRASE_DATA"))
    args = parser.parse_args(argv)
    if args.data is None or not Path(args.data).is_dir():
        print("give --data DIR (a checkout of brmson/dataset-sts); see docs/benchmarks.md")
        return 2
    from lexigram_cache_django.semantic.embeddings import load_minilm

    embed = load_minilm()
    for pairs in load_sets(Path(args.data)):
        rows = evaluate(pairs, lambda texts: embed(list(texts)))
        n_present, n_absent = rows[0][4], rows[0][5]
        print(f"\n### {pairs.name}: {n_present} queries with the answer cached, ")
        print(f"{n_absent} without (absent paraphrase or near miss)\n")
        print("| threshold | right hits | wrong hits | false hits (answer absent) |")
        print("|---|---|---|---|")
        for t, right, wrong, false, _, _ in rows:
            print(f"| {t:.2f} | {right:.1f} % | {wrong:.1f} % | {false:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
