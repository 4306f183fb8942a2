#!/usr/bin/env python
"""Phrase analogies: `w2v-nce train --phrases N` against gensim's Phrases + Word2Vec, one table.

word2vec's questions-phrases.txt (3,218 questions in 5 sections: newspapers, ice_hockey,
basketball, airlines, people-companies; "Boston Boston_Globe Cleveland Cleveland_Plain_Dealer")
asks for phrases as single tokens. Both pipelines get the same corpus file and the same settings:

  * corpus: the source (plain or .gz, default ../shared/corpora/wiki65m.txt.gz) streamed once into
    one plain file of lines of at most --line-words words (bench_vs_gensim.prepare_corpus: gensim's
    corpus_file mode cuts longer lines); --max-tokens N keeps the first N tokens.
  * ours: `w2v-nce train CORPUS --phrases N --phrase-...` in a process of its own: phrases learned
    and joined on the fly, then the vocabulary and training (bench_vs_gensim.train_ours).
  * gensim: a process learns N passes of `Phrases` (each on the output of the frozen passes before
    it: gensim's documented way to longer phrases) with the same scoring, thresholds, min_count,
    connector words and max_vocab_size, and writes the phrased corpus; then `Word2Vec` trains on
    that file (bench_vs_gensim.train_gensim, corpus_file mode). gensim has no word2phrase score:
    for --scoring word2vec (ours's default) it gets word2phrase's formula as its custom scorer,
    (n_ab - min_count) / n_a / n_b * corpus_word_count, in float64 where ours computes in
    word2phrase's float32 (a pair within rounding of the threshold may differ).
  * evaluation: the same code for both sets of vectors (w2v_nce.evaluate.analogy, gensim's
    evaluate_word_analogies to the last question, cross-checked on gensim's vectors):
    case-insensitive, since the questions are Mixed_Case and the corpus lower case (word2vec's
    compute-accuracy upper-cases both sides too), and by default with no restriction beyond the
    vocabulary (--restrict-vocab 0), as word2vec's demo-phrase-accuracy.sh runs compute-accuracy
    (no threshold argument). Coverage is the share of questions whose 4 words are all in the
    vocabulary. questions-words.txt (first 30,000 words) is reported beside it.

Usage:
  python scripts/bench_phrase_analogy.py --max-tokens 2000000 --epochs 1        # a slice, minutes
  python scripts/bench_phrase_analogy.py --workdir runs/phrase-analogy --json phrase-analogy.json
  python scripts/bench_phrase_analogy.py --threshold 200 --threshold 100         # word2vec's demo thresholds
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

import bench_vs_gensim as bench  # scripts/, beside this file
from w2v_nce.config import load_config, phrase_thresholds
from w2v_nce.errors import UserError
from w2v_nce.evaluate import analogy

DEFAULT_CORPUS = bench.SHARED / "corpora" / "wiki65m.txt.gz"
DEFAULT_QUESTIONS = bench.SHARED / "eval" / "questions-phrases.txt"
ROWS = (  # (key, label, format)
    ("phrase_accuracy", "phrase analogy accuracy", "pct"),
    ("phrase_coverage", "phrase analogy coverage", "pct"),
    ("phrase_correct", "phrase analogies right", "int"),
    ("word_accuracy", "word analogy accuracy (30k)", "pct"),
    ("vocab_size", "vocab size", "int"),
    ("vocab_phrases", "vocab entries with a delimiter", "int"),
    ("wall_seconds", "end to end seconds", "f2"),
    ("peak_rss_mb", "peak memory (MB)", "int"),
)

# gensim's side of the phrases, in a process of its own: N passes, then the phrased corpus written.
GENSIM_PHRASES = """
import json, sys, time
from gensim.models.phrases import ENGLISH_CONNECTOR_WORDS, Phrases
import numpy as np

def word2vec_scorer(worda_count, wordb_count, bigram_count, len_vocab, min_count, corpus_word_count):
    # word2phrase.c's score (w2v_nce.phrases.word2vec_score), as a gensim custom scorer
    return (bigram_count - min_count) / worda_count / wordb_count * corpus_word_count

settings, corpus, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]

class Lines:  # re-iterable: the prepared file's lines, through the frozen passes so far
    def __init__(self, frozen):
        self.frozen = frozen
    def __iter__(self):
        with open(corpus, encoding="utf-8") as f:
            for line in f:
                sentence = line.split()
                for model in self.frozen:
                    sentence = model[sentence]
                yield sentence

scoring = {"gensim": "default", "npmi": "npmi", "word2vec": word2vec_scorer}[settings["scoring"]]
connectors = ENGLISH_CONNECTOR_WORDS if settings["connectors"] == "english" else frozenset()
start = time.perf_counter()
frozen = []
for threshold in settings["thresholds"]:
    model = Phrases(Lines(frozen), min_count=settings["min_count"], threshold=threshold, scoring=scoring,
                    connector_words=connectors, max_vocab_size=settings["max_vocab"] or sys.maxsize,
                    delimiter=settings["delimiter"])
    frozen.append(model.freeze())
    del model
with open(out + "/phrased.txt", "w", encoding="utf-8") as f:
    for sentence in Lines(frozen):
        f.write(" ".join(sentence) + "\\n")
json.dump({"seconds": time.perf_counter() - start, "phrases_per_pass": [len(m.phrasegrams) for m in frozen]},
          open(out + "/phrases.json", "w"))
"""


def run_gensim(corpus: Path, cfg, gparams: dict, out_dir: Path):
    """gensim's Phrases (cfg's phrase settings), then its Word2Vec on the phrased file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    thresholds = list(phrase_thresholds(cfg))
    thresholds *= cfg.phrases if len(thresholds) == 1 else 1
    settings = {"thresholds": thresholds, "scoring": cfg.phrase_scoring, "min_count": cfg.phrase_min_count,
                "connectors": cfg.phrase_connectors, "max_vocab": cfg.phrase_max_vocab,
                "delimiter": cfg.phrase_delimiter}
    wall, peak = bench.run_child([sys.executable, "-c", GENSIM_PHRASES, json.dumps(settings), str(corpus),
                                  str(out_dir)], "gensim Phrases")
    phrased = json.loads((out_dir / "phrases.json").read_text())
    vectors, info = bench.train_gensim(out_dir / "phrased.txt", gparams, out_dir)
    (out_dir / "phrased.txt").unlink()
    row = info["row"]
    row.update(wall_seconds=wall + row["wall_seconds"], peak_rss_mb=max(peak, row["peak_rss_mb"]),
               phrase_seconds=wall, phrases_per_pass=phrased["phrases_per_pass"])
    return vectors, info


def quality(vectors, questions: Path, words_questions: Path, restrict_vocab: int, delimiter: str) -> dict:
    """Our evaluation code, the same for both pipelines' vectors."""
    phrases = analogy(vectors, questions, restrict_vocab=restrict_vocab or None, case_insensitive=True)
    words = analogy(vectors, words_questions, restrict_vocab=30000, case_insensitive=True)
    return {
        "phrase_accuracy": phrases.accuracy,
        "phrase_coverage": phrases.coverage,
        "phrase_correct": phrases.correct,
        "phrase_answered": phrases.answered,
        "phrase_questions": phrases.questions,
        "phrase_sections": {s.name: {"accuracy": s.accuracy, "correct": s.correct, "answered": s.answered,
                                     "questions": s.questions} for s in phrases.sections},
        "word_accuracy": words.accuracy,
        "word_coverage": words.coverage,
        "vocab_phrases": sum(delimiter in w for w in vectors.words),
    }


def cross_check(vectors, questions: Path, restrict_vocab: int, ours_on_gensim: dict) -> dict:
    """gensim's own evaluate_word_analogies of gensim's vectors, next to ours of the same vectors."""
    kv = vectors.keyed_vectors()
    score, sections = kv.evaluate_word_analogies(str(questions), restrict_vocab=restrict_vocab or len(kv),
                                                 case_insensitive=True)
    total = sections[-1]
    answered = len(total["correct"]) + len(total["incorrect"])
    return {"accuracy": float(score), "answered": answered,
            "equal": answered == ours_on_gensim["phrase_answered"]
            and abs(float(score) - ours_on_gensim["phrase_accuracy"]) < 1e-12}


def format_table(ours: dict, gensim: dict | None, ratio: dict) -> str:
    header = ("metric", "ours", "gensim", "ours/gensim")
    body = [(label, bench._fmt(ours.get(key), kind), bench._fmt((gensim or {}).get(key), kind),
             f"{ratio[key]:.3f}" if bench._finite(ratio.get(key)) else "") for key, label, kind in ROWS]
    body.append(("phrases per pass", ", ".join(f"{n:,}" for n in ours["phrases_per_pass"]),
                 ", ".join(f"{n:,}" for n in gensim["phrases_per_pass"]) if gensim else "", ""))
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(4)]
    lines = ["  ".join([header[0].ljust(widths[0])] + [h.rjust(w) for h, w in zip(header[1:], widths[1:])]),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]) for row in body]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    io = ap.add_argument_group("corpus and output")
    io.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus, plain or .gz")
    io.add_argument("--max-tokens", type=int, default=0, help="use only the first N tokens (0 = all)")
    io.add_argument("--line-words", type=int, default=1000, help="words per line of the prepared corpus")
    io.add_argument("--workdir", type=Path, default=None, help="keep the prepared corpus and both runs here "
                    "(None: a temporary directory, removed)")
    io.add_argument("--json", type=Path, default=None, help="write all numbers to this JSON file")
    io.add_argument("--skip-gensim", action="store_true", help="run ours only (no ratios)")
    p = ap.add_argument_group("phrases (both)")
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--threshold", type=float, action="append", default=None,
                   help="once for every pass or once per pass (default: the scoring's, as train --phrases)")
    p.add_argument("--scoring", default="word2vec", choices=["word2vec", "gensim", "npmi"])
    p.add_argument("--phrase-min-count", type=int, default=5)
    p.add_argument("--connectors", default="none", choices=["none", "english"])
    p.add_argument("--phrase-max-vocab", type=int, default=40_000_000)
    s = ap.add_argument_group("training (both)")
    s.add_argument("--dim", type=int, default=100)
    s.add_argument("--window", type=int, default=5)
    s.add_argument("--negatives", type=int, default=5)
    s.add_argument("--sample", type=float, default=1e-3)
    s.add_argument("--min-count", type=int, default=5)
    s.add_argument("--epochs", type=int, default=5)
    s.add_argument("--lr", type=float, default=0.025, help="starting learning rate of both (gensim's alpha)")
    s.add_argument("--threads", type=int, default=2, help="ours' threads, gensim's workers (0 = all cores)")
    s.add_argument("--gensim-workers", type=int, default=None, help="gensim's workers if not --threads (1: its "
                   "linear LR schedule, bench_vs_gensim.py)")
    s.add_argument("--seed", type=int, default=1)
    e = ap.add_argument_group("evaluation")
    e.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS, help="phrase analogy questions")
    e.add_argument("--restrict-vocab", type=int, default=0, help="phrase analogies: only the N most frequent "
                   "words (0 = the whole vocabulary, as word2vec's demo)")
    e.add_argument("--no-cross-check", action="store_true", help="skip gensim's own evaluation of its vectors")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    if args.max_tokens < 0 or args.restrict_vocab < 0:
        raise UserError("--max-tokens and --restrict-vocab must be 0 (all) or positive")
    if not args.questions.is_file():
        raise UserError(f"questions file '{args.questions}' does not exist")
    cfg = load_config(None, {
        "phrases": args.passes, "phrase_threshold": args.threshold, "phrase_scoring": args.scoring,
        "phrase_min_count": args.phrase_min_count, "phrase_connectors": args.connectors,
        "phrase_max_vocab": args.phrase_max_vocab, "dim": args.dim, "window": args.window,
        "negatives": args.negatives, "sample": args.sample, "min_count": args.min_count, "epochs": args.epochs,
        "lr": args.lr, "threads": args.threads, "seed": args.seed, "device": "cpu",
    })
    words_questions = bench.eval_files({})["analogy"]
    gparams = bench.gensim_params(cfg, args.gensim_workers or cfg.threads or os.cpu_count() or 1)
    machine = bench.machine_info("cpu")
    thresholds = ", ".join(f"{t:g}" for t in phrase_thresholds(cfg))
    print(f"phrases: {cfg.phrases} passes, scoring {cfg.phrase_scoring}, threshold {thresholds}, min_count "
          f"{cfg.phrase_min_count}, connectors {cfg.phrase_connectors}; training: CBOW-NS, dim {cfg.dim}, window "
          f"{cfg.window}, negative {cfg.negatives}, sample {cfg.sample:g}, min_count {cfg.min_count}, epochs "
          f"{cfg.epochs}, alpha {cfg.start_lr:g}, threads {cfg.threads or 'all'} (gensim workers {gparams['workers']})")
    print(f"evaluation: {args.questions}, case-insensitive, restrict_vocab "
          f"{args.restrict_vocab or 'none (whole vocabulary)'}; {words_questions}, restrict_vocab 30000")
    print(f"machine: {machine['cpu_count']} CPUs, {machine['cpu_model']}; torch {machine['torch']}; "
          f"gensim {machine['gensim']}", flush=True)

    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-phrase-analogy-")))
        work.mkdir(parents=True, exist_ok=True)
        prepared = work / "corpus.txt"
        bench._log(f"preparing {args.corpus} -> {prepared}")
        corpus = bench.prepare_corpus(args.corpus, prepared, args.max_tokens, args.line_words)
        print(f"corpus: {args.corpus}" + (f" (first {args.max_tokens:,} tokens)" if args.max_tokens else "")
              + f" -> {corpus['tokens']:,} tokens in {corpus['lines']:,} lines", flush=True)

        bench._log("ours: train --phrases")
        vectors, ours_info = bench.train_ours(prepared, work / "ours", cfg)
        ours = {**ours_info["row"], "phrases_per_pass": ours_info["metrics"]["phrases_per_pass"],
                **quality(vectors, args.questions, words_questions, args.restrict_vocab, cfg.phrase_delimiter)}
        del vectors
        gensim = gensim_info = cross = None
        if not args.skip_gensim:
            bench._log("gensim: Phrases, then Word2Vec")
            vectors, gensim_info = run_gensim(prepared, cfg, gparams, work / "gensim")
            gensim = {**gensim_info["row"], **quality(vectors, args.questions, words_questions,
                                                      args.restrict_vocab, cfg.phrase_delimiter)}
            if not args.no_cross_check:
                cross = cross_check(vectors, args.questions, args.restrict_vocab, gensim)
            del vectors

    ratio = {key: ours[key] / gensim[key] if gensim and bench._finite(ours.get(key)) and bench._finite(gensim.get(key))
             and gensim[key] != 0 else None for key, _, _ in ROWS}
    return {"settings": {k: v for k, v in vars(args).items()}, "config": dataclasses.asdict(cfg),
            "gensim_params": None if args.skip_gensim else gparams, "machine": machine,
            "corpus": {"source": args.corpus, "max_tokens": args.max_tokens, **corpus},
            "rows": [key for key, _, _ in ROWS], "ours": ours, "gensim": gensim, "ratio": ratio,
            "cross_check": cross, "ours_metrics": ours_info["metrics"],
            "gensim_details": gensim_info and gensim_info["details"]}


def report(result: dict) -> str:
    lines = ["", format_table(result["ours"], result["gensim"], result["ratio"])]
    for side in ("ours", "gensim"):
        if result[side]:
            sections = result[side]["phrase_sections"]
            lines.append(f"{side} by section: " + "; ".join(
                f"{name} {s['accuracy']:.1%} ({s['answered']}/{s['questions']})" for name, s in sections.items()))
    cross = result["cross_check"]
    if cross:
        lines.append(f"cross-check on gensim's vectors: gensim's evaluate_word_analogies {cross['accuracy']:.2%} "
                     f"({cross['answered']} answered), ours {'equal' if cross['equal'] else 'DIFFERENT'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return bench.script_main(lambda: run(args), report, args.json)


if __name__ == "__main__":
    sys.exit(main())
