"""Quality of the semantic cache's vector tier on public paraphrase data, per threshold.

``python -m benchmarks.semantic_quality --data DIR`` (or ``$LEXIGRAM_PARAPHRASE_DATA``), where
DIR holds the files of the brmson/dataset-sts repository (see docs/benchmarks.md for how they
were obtained here): ``data/sts/semeval-sts/201[2-6]/*.test.tsv`` (SemEval STS, gold score
0-5 then the two sentences) and ``data/para/msr/msr-para-test.tsv`` (MSRP: label, ids, pair).

For each set, pairs are paraphrases (STS score >= 4, MSRP label 1) or not (STS <= 2, MSRP 0).
Half of the paraphrase pairs, chosen with a fixed seed, have their first sentence cached
("present"); for the other half it is not ("absent"); the first sentence of every
non-paraphrase pair is cached too, so the second one is a hard near miss. Then each second
sentence is looked up as the cache does (top-4 cosine, MiniLM, the first candidate over the
threshold that passes the numbers guard, if on) and, at each threshold:

* right hit: a present query served a sentence of its own paraphrase cluster;
* wrong hit: a present query served another cached sentence;
* false hit: a query whose answer is not cached (an absent paraphrase or a near miss) that
  is served anything.

Paraphrase clusters: sentences recur across pairs (the STS sets reuse reference answers,
glosses and captions), so the pairs with score >= 4 (and identical normalised texts) are
joined into clusters; a query counts as "answer absent" only when no sentence of its cluster
is cached, and a hit inside the cluster is right. ``--strict`` counts as the first version
of this benchmark did (only the pair's own partner is right; a recurring paraphrase of the
query cached through another pair counts as a false or wrong hit).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THRESHOLDS = [round(0.80 + 0.01 * i, 2) for i in range(18)]  # 0.80 .. 0.97
SEED = 17
TOP_K = 4  # as SemanticCache's default


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


def clusters(pairs: PairSet) -> Callable[[str], str]:
    """A function from a sentence to its paraphrase cluster (union-find over positives)."""
    from lexigram_cache_django.semantic.entries import normalize_prompt

    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs.positives:
        parent[find(normalize_prompt(a))] = find(normalize_prompt(b))
    return lambda text: find(normalize_prompt(text))


def evaluate(
    pairs: PairSet, embed: Any, *, guard: bool, index_kind: str = "fp16", strict: bool = False
) -> list[tuple[float, float, float, float, int, int]]:
    """Rows (threshold, right %, wrong %, false %, present n, absent n)."""
    import faiss

    from lexigram_cache_django.semantic.entries import numbers_in

    faiss.omp_set_num_threads(1)
    cluster = clusters(pairs)
    positives = list(pairs.positives)
    random.Random(SEED).shuffle(positives)
    half = len(positives) // 2
    present, absent = positives[:half], positives[half:]
    cached = sorted({a for a, _ in present} | {a for a, _ in pairs.negatives})
    cached_set = set(cached)
    partner = {b: a for a, b in present}
    q_present = list(dict.fromkeys(b for _, b in present if b not in cached_set))
    q_absent = [b for _, b in absent + pairs.negatives if b not in cached_set]
    if strict:
        q_absent = [b for b in q_absent if b not in {a for a, _ in absent}]
    else:
        cached_clusters = {cluster(c) for c in cached}
        q_absent = [b for b in dict.fromkeys(q_absent) if cluster(b) not in cached_clusters]
    vectors = embed(cached)
    index: Any
    if index_kind == "fp16":
        index = faiss.IndexScalarQuantizer(
            vectors.shape[1], faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
    else:
        index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    sims_p, ids_p = index.search(embed(q_present), TOP_K)
    sims_a, ids_a = index.search(embed(q_absent), TOP_K)

    def served(query: str, sims: Any, ids: Any, threshold: float) -> str | None:
        for sim, i in zip(sims.tolist(), ids.tolist()):
            if sim < threshold:
                return None
            if not guard or numbers_in(query) == numbers_in(cached[i]):
                text: str = cached[i]
                return text
        return None

    rows = []
    for t in THRESHOLDS:
        right = wrong = false = 0
        for query, sims, ids in zip(q_present, sims_p, ids_p):
            hit = served(query, sims, ids, t)
            if hit is None:
                continue
            ok = hit == partner[query] if strict else cluster(hit) == cluster(query)
            right, wrong = (right + 1, wrong) if ok else (right, wrong + 1)
        for query, sims, ids in zip(q_absent, sims_a, ids_a):
            false += served(query, sims, ids, t) is not None
        n_p, n_a = len(q_present), len(q_absent)
        rows.append((t, 100 * right / n_p, 100 * wrong / n_p, 100 * false / n_a, n_p, n_a))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.semantic_quality")
    parser.add_argument("--data", type=Path, default=os.environ.get("LEXIGRAM_PARAPHRASE_DATA"))
    parser.add_argument("--guard", choices=["numbers", "none"], default="numbers")
    parser.add_argument("--index", choices=["fp16", "flat"], default="fp16")
    parser.add_argument("--strict", action="store_true", help="the first version's counting")
    args = parser.parse_args(argv)
    if args.data is None or not Path(args.data).is_dir():
        print("give --data DIR (a checkout of brmson/dataset-sts); see docs/benchmarks.md")
        return 2
    from lexigram_cache_django.semantic.embeddings import load_minilm

    embed = load_minilm()
    for pairs in load_sets(Path(args.data)):
        rows = evaluate(
            pairs,
            lambda texts: embed(list(texts)),
            guard=args.guard == "numbers",
            index_kind=args.index,
            strict=args.strict,
        )
        n_present, n_absent = rows[0][4], rows[0][5]
        print(f"\n### {pairs.name} (guard {args.guard}, index {args.index}, strict {args.strict})")
        print(f"{n_present} queries with the answer cached, ")
        print(f"{n_absent} without (absent paraphrase or near miss)\n")
        print("| threshold | right hits | wrong hits | false hits (answer absent) |")
        print("|---|---|---|---|")
        for t, right, wrong, false, _, _ in rows:
            print(f"| {t:.2f} | {right:.1f} % | {wrong:.1f} % | {false:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
