"""Our evaluations against gensim's on the same vectors: time and equality of the results.

    python scripts/bench_eval.py VECTORS [--questions Q] [--pairs P] [--repeats 3]

issue 9 asks for gensim's KeyedVectors unless our own code is at least 3x faster; this prints
both times and their ratio for analogies (restrict_vocab=30000), word pairs and neighbours.
"""

import argparse
import json
import time

from w2v_nce import evaluate
from w2v_nce.vectors import load_word2vec


def best_of(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("vectors")
    parser.add_argument("--questions", default=None)
    parser.add_argument("--pairs", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ours = load_word2vec(args.vectors)
    kv = ours.keyed_vectors()
    questions = args.questions or evaluate._gensim_test_data("questions-words.txt")
    pairs = args.pairs or evaluate._gensim_test_data("wordsim353.tsv")
    words = ours.words[:200]  # neighbours now are gensim's most_similar: timed on one KeyedVectors, the wrapper's cost

    rows = {}
    t_ours, a = best_of(lambda: evaluate.analogy(ours, questions, restrict_vocab=30000), args.repeats)
    t_gensim, (g, _) = best_of(lambda: kv.evaluate_word_analogies(str(questions), restrict_vocab=30000), args.repeats)
    rows["analogy"] = dict(ours_s=t_ours, gensim_s=t_gensim, equal=bool(abs(a.accuracy - g) < 1e-12))
    t_ours, s = best_of(lambda: evaluate.similarity(ours, pairs), args.repeats)
    t_gensim, (_, sp, _) = best_of(lambda: kv.evaluate_word_pairs(str(pairs)), args.repeats)
    rows["word pairs"] = dict(ours_s=t_ours, gensim_s=t_gensim, equal=bool(abs(s.spearman - sp[0]) < 1e-12))
    t_ours, n = best_of(lambda: [evaluate.neighbors(kv, w, topn=10) for w in words], args.repeats)
    t_gensim, m = best_of(lambda: [kv.most_similar(w, topn=10) for w in words], args.repeats)
    rows["200 neighbour queries"] = dict(ours_s=t_ours, gensim_s=t_gensim,
                                         equal=[[w for w, _ in x] for x in n] == [[w for w, _ in x] for x in m])
    for name, row in rows.items():
        row["speedup"] = row["gensim_s"] / row["ours_s"]
        print(f"{name:24s} ours {row['ours_s']:.3f}s  gensim {row['gensim_s']:.3f}s  "
              f"speed-up {row['speedup']:.1f}x  same result {row['equal']}")
    print(json.dumps({"vectors": args.vectors, "words": len(ours), "dim": ours.dim, "rows": rows}))


if __name__ == "__main__":
    main()
