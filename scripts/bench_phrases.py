#!/usr/bin/env python
"""Benchmark `w2v-nce phrases` against gensim's Phrases: wall time, peak memory, agreement.

Each side runs in a process of its own, end to end as a user runs it: read the corpus, count
unigrams and pairs, find the phrases, and write the corpus with them joined (one sentence a
line) to a file.

  * ours: `w2v-nce phrases CORPUS --out OUT ...` (through `w2v_nce.cli.main`, in the child process),
    which also saves the model beside OUT.
  * gensim: `Phrases(sentences, min_count, threshold, scoring, connector_words)`, `freeze()`, then
    `frozen[sentence]` for every sentence written out; with --passes 2 a second Phrases counts
    the first one's output (gensim's documented way to get trigrams). Sentences are whole lines
    (`line.split()` of the gzip file), as ours reads them (gensim's LineSentence would cut lines
    of more than 10,000 words).

Both use the same settings (--scoring gensim = gensim's default original_scorer; threshold,
min_count, connector words, max_vocab_size). Peak memory is each process's getrusage ru_maxrss.
Agreement: the phrases (and scores) of each pass compared one to one, and the two written
corpora compared line by line. On text whose tokens contain no "_" they are equal for the
first pass; in a second pass gensim keys a pair by its joined string, so a first-pass phrase
"new_york" and the pair (new, york) share a count, which ours keeps apart (docs/results.md).

Usage:
  python scripts/bench_phrases.py ../shared/corpora/wiki65m.txt.gz --tokens 10000000
  python scripts/bench_phrases.py ../shared/corpora/wiki65m.txt.gz --connectors english --passes 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def prefix(source: Path, target: Path, tokens: int) -> int:
    """Copy whole lines of `source` to `target` (gzip) until `tokens` tokens; return the count."""
    seen = 0
    with gzip.open(source, "rt", encoding="utf-8") as src, gzip.open(target, "wt", encoding="utf-8", compresslevel=1) as dst:
        for line in src:
            dst.write(line)
            seen += len(line.split())
            if seen >= tokens:
                break
    return seen


def run_ours(args) -> dict:
    from w2v_nce.cli import main as cli
    from w2v_nce.phrases import Phrases

    model = Path(args.out + ".phrases.json")
    code = cli(["phrases", str(args.corpus), "--out", args.out, "--model", str(model), "--passes", str(args.passes),
                "--min-count", str(args.min_count), "--threshold", str(args.threshold), "--scoring", args.scoring,
                "--connectors", args.connectors, "--max-vocab", str(args.max_vocab)])
    if code:
        sys.exit(code)
    model = Phrases.load(model)
    return {"phrases": [model.export(p) for p in range(args.passes)]}


def run_gensim(args) -> dict:
    from gensim.models.phrases import ENGLISH_CONNECTOR_WORDS, Phrases

    class Lines:  # whole lines, re-iterable
        def __init__(self, path, models=()):
            self.path, self.models = path, models

        def __iter__(self):
            with gzip.open(self.path, "rt", encoding="utf-8") as f:
                for line in f:
                    sentence = line.split()
                    for model in self.models:
                        sentence = model[sentence]
                    yield sentence

    connectors = ENGLISH_CONNECTOR_WORDS if args.connectors == "english" else frozenset()
    frozen = []
    for _ in range(args.passes):
        model = Phrases(Lines(args.corpus, frozen), min_count=args.min_count, threshold=args.threshold,
                        scoring="default" if args.scoring == "gensim" else args.scoring, connector_words=connectors,
                        max_vocab_size=args.max_vocab or sys.maxsize)
        frozen.append(model.freeze())
        del model
    with open(args.out, "w", encoding="utf-8") as f:
        for sentence in Lines(args.corpus, frozen):
            f.write(" ".join(sentence) + "\n")
    return {"phrases": [m.phrasegrams for m in frozen]}


def child(args) -> None:
    start = time.perf_counter()
    result = run_ours(args) if args.run == "ours" else run_gensim(args)
    result["seconds"] = time.perf_counter() - start
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")


def compare_files(a: Path, b: Path) -> tuple[int, int]:
    """(lines that differ, lines)."""
    differ = lines = 0
    with open(a, encoding="utf-8") as fa, open(b, encoding="utf-8") as fb:
        for la, lb in zip(fa, fb):
            lines += 1
            differ += la.split() != lb.split()
    return differ, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--tokens", type=int, default=0, help="use the first N tokens (whole lines) only")
    parser.add_argument("--scoring", default="gensim", choices=["gensim", "npmi", "word2vec"])
    parser.add_argument("--threshold", type=float, default=10.0)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--connectors", default="none", choices=["none", "english"])
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--max-vocab", type=int, default=40_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-gensim", action="store_true")
    parser.add_argument("--run", choices=["ours", "gensim"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        return child(args)
    if args.scoring == "word2vec" and not args.skip_gensim:
        parser.error("gensim has no word2vec scoring: use --skip-gensim")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-phrases-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = args.corpus
    if args.tokens:
        corpus = work / f"first{args.tokens}.txt.gz"
        print(f"corpus: first {prefix(args.corpus, corpus, args.tokens):,} tokens of {args.corpus} -> {corpus}")
    results = {}
    for side in ["ours"] + ([] if args.skip_gensim else ["gensim"]):
        out, result = work / f"{side}.txt", work / f"{side}.json"
        cmd = [sys.executable, __file__, str(corpus), "--run", side, "--out", str(out), "--result", str(result),
               "--scoring", args.scoring, "--threshold", str(args.threshold), "--min-count", str(args.min_count),
               "--connectors", args.connectors, "--passes", str(args.passes), "--max-vocab", str(args.max_vocab)]
        subprocess.run(cmd, check=True)
        results[side] = json.loads(result.read_text(encoding="utf-8"))
        results[side]["out"] = out

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    print(f"\n{cpu}; {os.cpu_count()} CPUs; scoring {args.scoring}, threshold {args.threshold:g}, min_count "
          f"{args.min_count}, connectors {args.connectors}, passes {args.passes}, max_vocab {args.max_vocab:,}")
    print(f"| {'':8s} | {'seconds':>8s} | {'peak MB':>8s} | phrases per pass |")
    print("|---|---:|---:|---|")
    for side, r in results.items():
        print(f"| {side:8s} | {r['seconds']:8.1f} | {r['peak_mb']:8.0f} | {', '.join(f'{len(p):,}' for p in r['phrases'])} |")
    if "gensim" in results:
        ours, theirs = results["ours"], results["gensim"]
        print(f"speed-up {theirs['seconds'] / ours['seconds']:.2f}x, peak memory {ours['peak_mb'] / theirs['peak_mb']:.2f}x gensim's")
        for p, (a, b) in enumerate(zip(ours["phrases"], theirs["phrases"]), 1):
            same = set(a) == set(b)
            scores = same and all(a[k] == b[k] for k in a)
            print(f"pass {p}: phrase sets {'equal' if same else 'differ'} ({len(set(a) - set(b)):,} only ours, "
                  f"{len(set(b) - set(a)):,} only gensim's){', scores equal' if scores else ''}")
        differ, lines = compare_files(ours["out"], theirs["out"])
        print(f"written corpora: {lines - differ:,} of {lines:,} lines equal")


if __name__ == "__main__":
    main()
