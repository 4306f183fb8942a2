#!/usr/bin/env python
"""Benchmark subword vectors: ours (--subwords) against gensim's FastText and Facebook's fastText.

Issue 18's comparison, one table per architecture. The three trainers get the same prepared
corpus file (scripts/bench_vs_gensim.py's preparation: lines of at most --line-words words) and
the same settings: skip-gram and/or CBOW, negative sampling, dim, window, negatives, sample,
min_count, minn..maxn character n-grams hashed into --buckets rows, epochs, threads and one
starting learning rate decaying linearly (--lr; --defaults gives each its own: ours Config's,
gensim's 0.025, fastText's 0.05).

  * ours: `w2v-nce train --subwords ...` (bench_vs_gensim.train_ours)
  * gensim: `FastText(corpus_file=..., workers=--threads)`, build_vocab then train, its fastest mode
  * fastText: `fasttext.train_unsupervised(input=..., thread=--threads, loss="ns")` (pip install
    fasttext-wheel; --skip-fasttext without it)

Each runs in a process of its own, as a user runs it, from the command to its word vectors file
(fastText's .vec: every word's vector, the mean of its row and its n-grams' rows), so "end to end
seconds" and "peak memory" (the process's own peak resident set, bench_vs_gensim.peak_command)
are comparable. Words/s is in-vocabulary
corpus words x epochs over training seconds: ours, train()'s epoch loops; gensim, train(); fastText,
train_unsupervised, which builds its dictionary inside (its own progress line's words/sec/thread x
threads is recorded too, as "fasttext_reported_words_per_sec"). Quality is computed by the same code
for all three (w2v_nce.evaluate, as bench_vs_gensim): analogy accuracy with its semantic (the first
five sections) and syntactic (gram*) parts, coverage, WordSim353 and SimLex-999 Spearman.

Usage:
  python scripts/bench_subwords.py                                   # full wiki17m, 5 epochs, both archs
  python scripts/bench_subwords.py --max-tokens 1000000 --epochs 1 --json bench.json
  python scripts/bench_subwords.py --arch skipgram --skip-fasttext
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_vs_gensim as bench  # noqa: E402  (the corpus, machine, child-process and quality code)

from w2v_nce.config import SUBWORD_BAGS, Config, load_config  # noqa: E402
from w2v_nce.errors import UserError  # noqa: E402
from w2v_nce.evaluate import analogy  # noqa: E402
from w2v_nce.vectors import Vectors, load_word2vec  # noqa: E402

TRAINERS = ("ours", "gensim", "fasttext")
ROWS = bench.ROWS[:2] + (  # bench_vs_gensim's rows with analogy's semantic / syntactic split
    ("analogy_semantic", "  semantic", "pct"),
    ("analogy_syntactic", "  syntactic", "pct"),
) + bench.ROWS[2:]

FASTTEXT_CHILD = """
import json, sys, time
import fasttext
params, corpus, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
start = time.perf_counter()
model = fasttext.train_unsupervised(input=corpus, **params)
train_seconds = time.perf_counter() - start
words, freqs = model.get_words(include_freq=True)
with open(out + "/vectors.txt", "w", encoding="utf-8") as f:  # fastText's .vec, as its CLI writes it
    f.write(f"{len(words)} {model.get_dimension()}\\n")
    for w in words:
        f.write(w + " " + " ".join("%.5g" % v for v in model.get_word_vector(w)) + "\\n")
json.dump({"train_seconds": train_seconds, "vocab_size": sum(w != "</s>" for w in words),  # its line ends: a word
           "corpus_words": int(sum(c for w, c in zip(words, freqs) if w != "</s>"))}, open(out + "/trainer.json", "w"))
"""


def our_config(args: argparse.Namespace, arch: str) -> Config:
    return load_config(None, {
        "arch": arch, "loss": "neg", "dim": args.dim, "window": args.window, "negatives": args.negatives,
        "sample": args.sample, "min_count": args.min_count, "epochs": args.epochs, "minn": args.minn,
        "maxn": args.maxn, "buckets": args.buckets, "lr": None if args.defaults else args.lr,
        "min_lr_ratio": args.min_lr_ratio, "threads": args.threads, "seed": args.seed, "device": "cpu",
        "subword_bags": args.subword_bags, "noise_power": args.noise_power,
    })


def gensim_params(cfg: Config, args: argparse.Namespace) -> dict:
    workers = args.gensim_workers or cfg.threads
    params = {k: v for k, v in bench.gensim_params(cfg, workers).items() if k != "max_final_vocab"}
    params.update(model="FastText", min_n=cfg.minn, max_n=cfg.maxn, bucket=cfg.buckets)
    if args.defaults:
        params.update(alpha=0.025, min_alpha=0.0001)
    return params


def fasttext_params(cfg: Config, args: argparse.Namespace) -> dict:
    return {"model": cfg.arch, "loss": "ns", "dim": cfg.dim, "ws": cfg.window, "neg": cfg.negatives, "t": cfg.sample,
            "minCount": cfg.min_count, "epoch": cfg.epochs, "minn": cfg.minn, "maxn": cfg.maxn,
            "bucket": cfg.buckets, "thread": cfg.threads, "lr": 0.05 if args.defaults else cfg.start_lr,
            "verbose": 2}


def train_child(child: str, params: dict, corpus: Path, out_dir: Path, what: str) -> tuple[Vectors, dict]:
    """A trainer script in a process of its own: its vectors and its row (words/s, seconds, memory)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "stderr.txt"
    with open(log, "wb") as err:  # fastText's progress goes to stderr: kept for its words/sec/thread
        wall, peak = _run_logged([sys.executable, "-c", child, json.dumps(params), str(corpus), str(out_dir)], err,
                                 what)
    details = json.loads((out_dir / "trainer.json").read_text())
    epochs = params.get("epochs", params.get("epoch"))
    row = {
        "words_per_sec": details["corpus_words"] * epochs / details["train_seconds"],
        "train_seconds": details["train_seconds"],
        "wall_seconds": wall,
        "peak_rss_mb": peak,
        "vocab_size": details["vocab_size"],
        "corpus_words": details["corpus_words"],
    }
    rates = re.findall(rb"words/sec/thread:\s*([0-9]+)", log.read_bytes())
    if rates:
        row["fasttext_reported_words_per_sec"] = int(rates[-1]) * params.get("thread", 1)
    return load_word2vec(out_dir / "vectors.txt"), row


def _run_logged(command: list[str], err, what: str) -> tuple[float, float]:
    """bench_vs_gensim.run_child, with the child's stderr kept in the file `err`."""
    peak_file = Path(err.name).with_suffix(".peak")
    start = time.perf_counter()
    child = subprocess.Popen(bench.peak_command(command, peak_file), stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    peak = bench.child_peak_mb(peak_file, usage)
    if os.waitstatus_to_exitcode(status) != 0:
        tail = Path(err.name).read_bytes().decode(errors="replace").strip().splitlines()
        raise UserError(f"{what} failed: {tail[-1] if tail else status}")
    return wall, peak


def quality(vectors: Vectors, files: dict[str, Path], restrict_vocab: int) -> dict:
    """bench_vs_gensim's quality, with the analogy's semantic and syntactic parts."""
    out = bench.quality(vectors, files, restrict_vocab)
    sections = analogy(vectors, files["analogy"], restrict_vocab=restrict_vocab, case_insensitive=True).sections
    for key, part in (("analogy_semantic", [s for s in sections if not s.name.startswith("gram")]),
                      ("analogy_syntactic", [s for s in sections if s.name.startswith("gram")])):
        answered = sum(s.answered for s in part)
        out[key] = sum(s.correct for s in part) / answered if answered else None
    return out


def ratios(rows: dict[str, dict | None]) -> dict[str, dict]:
    """ours / each other trainer, row by row (None where not a number)."""
    ours = rows["ours"]
    return {name: {key: (ours[key] / row[key] if bench._finite(ours.get(key)) and bench._finite(row.get(key))
                         and row[key] != 0 else None) for key, _, _ in ROWS}
            for name, row in rows.items() if name != "ours" and row is not None}


def format_table(rows: dict[str, dict | None], ratio: dict[str, dict]) -> str:
    names = [n for n in TRAINERS if rows.get(n) is not None]
    header = ["metric", *names, *(f"ours/{n}" for n in ratio)]
    body = [[label, *(bench._fmt(rows[n].get(key), kind) for n in names),
             *(f"{ratio[n][key]:.3f}" if bench._finite(ratio[n][key]) else "" for n in ratio)]
            for key, label, kind in ROWS]
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    lines = ["  ".join([header[0].ljust(widths[0])] + [h.rjust(w) for h, w in zip(header[1:], widths[1:])]),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]) for r in body]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=bench.DEFAULT_CORPUS, help="corpus, plain or .gz")
    ap.add_argument("--max-tokens", type=int, default=0, help="use only the first N tokens (0 = all)")
    ap.add_argument("--line-words", type=int, default=1000, help="words per line of the prepared corpus")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the corpus and vectors here (None: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="write all numbers to this JSON file")
    ap.add_argument("--arch", choices=("skipgram", "cbow", "both"), default="both")
    ap.add_argument("--skip-gensim", action="store_true")
    ap.add_argument("--skip-fasttext", action="store_true", help="without fasttext-wheel installed, implied")
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--negatives", type=int, default=5)
    ap.add_argument("--sample", type=float, default=1e-3)
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--minn", type=int, default=3)
    ap.add_argument("--maxn", type=int, default=6)
    ap.add_argument("--buckets", type=int, default=2_000_000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.05, help="starting learning rate of all three (fastText's default)")
    ap.add_argument("--defaults", action="store_true", help="each trainer at its own default learning rate")
    ap.add_argument("--min-lr-ratio", type=float, default=1e-4, help="ours and gensim: final lr = lr x this")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--subword-bags", choices=SUBWORD_BAGS, default=Config.subword_bags,
                    help="ours, CBOW: how the C kernel reads and moves a window's rows")
    ap.add_argument("--gensim-workers", type=int, default=None,
                    help="gensim's workers if not --threads (with N > 1, its corpus_file mode decays the rate only 1/N "
                    "of an epoch's worth per epoch, docs/results.md: 1 gives the linear schedule)")
    ap.add_argument("--noise-power", type=float, default=None,
                    help="ours and gensim: noise words drawn from unigram^this (default: ours, Config.noise_exponent; "
                    "fastText's is fixed at 0.5)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--restrict-vocab", type=int, default=30000, help="analogies: only the N most frequent words")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    skip_fasttext = args.skip_fasttext or importlib.util.find_spec("fasttext") is None
    if skip_fasttext and not args.skip_fasttext:
        print("note: fasttext-wheel is not installed: Facebook's fastText is skipped", file=sys.stderr)
    files = bench.eval_files({})
    machine = bench.machine_info("cpu")
    print(f"machine: {machine['cpu_count']} CPUs ({machine['cpus_usable']} usable), {machine['cpu_model']}; "
          f"torch {machine['torch']}; gensim {machine['gensim']}", flush=True)
    archs = ("skipgram", "cbow") if args.arch == "both" else (args.arch,)
    results: dict[str, Any] = {"machine": machine, "eval_files": files, "archs": {}}
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-sub-")))
        workdir.mkdir(parents=True, exist_ok=True)
        prepared = workdir / "corpus.txt"
        corpus = bench.prepared_corpus(args.corpus, prepared, args.max_tokens, args.line_words)
        results["corpus"] = {"source": args.corpus, "max_tokens": args.max_tokens, **corpus}
        print(f"corpus: {args.corpus} -> {corpus['tokens']:,} tokens in {corpus['lines']:,} lines", flush=True)
        for arch in archs:
            cfg = our_config(args, arch)
            plan = {"ours": None, "gensim": None if args.skip_gensim else gensim_params(cfg, args),
                    "fasttext": None if skip_fasttext else fasttext_params(cfg, args)}
            print(f"{arch}: dim {cfg.dim}, window {cfg.window}, negatives {cfg.negatives}, sample {cfg.sample:g}, "
                  f"n-grams {cfg.minn}-{cfg.maxn} in {cfg.buckets:,} buckets, epochs {cfg.epochs}, threads "
                  f"{cfg.threads}, lr " + ("each its own" if args.defaults else f"{cfg.start_lr:g}")
                  + f", noise unigram^{cfg.noise_exponent:g} (fastText: ^0.5)", flush=True)
            rows: dict[str, dict | None] = {}
            for name in TRAINERS:
                if name != "ours" and plan[name] is None:
                    rows[name] = None
                    continue
                print(f"[bench] training {name} ({arch})", file=sys.stderr, flush=True)
                out = workdir / f"{arch}-{name}"
                if name == "ours":
                    vectors, info = bench.train_ours(prepared, out, cfg)
                    row = info["row"]
                else:
                    child = bench.GENSIM_CHILD if name == "gensim" else FASTTEXT_CHILD
                    vectors, row = train_child(child, plan[name], prepared, out, name)
                rows[name] = {**row, **quality(vectors, files, args.restrict_vocab)}
                del vectors
            ratio = ratios(rows)
            print("\n" + format_table(rows, ratio) + "\n", flush=True)
            results["archs"][arch] = {"settings": dataclasses.asdict(cfg), "params": plan, "rows": rows,
                                      "ratio": ratio}
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return bench.script_main(lambda: run(args), None, args.json)


if __name__ == "__main__":
    sys.exit(main())
