#!/usr/bin/env python
"""Benchmark torchrun data parallelism: N ranks x 1 thread against 1 process x N threads.

The corpus is prepared as scripts/bench_vs_gensim.py does (wiki17m streamed into one plain file
of 1,000-word lines, --max-tokens keeps a prefix), then trained with the same settings (CBOW or
skip-gram, negative sampling or hs, dim 100, window 5, 5 epochs by default) by:

  one      `w2v-nce train ... --threads N` (Hogwild threads in one process)
  ddp      `torchrun --nproc_per_node N -m w2v_nce train ... --threads 1`, with the default
           synchronisation (sync_divisor "world", LR scaled by N); N may be 1 (the distributed code
           path alone: on a GPU, its NCCL process group against the same run without one)
  variants each `--variant NAME:KEY=VALUE,...` one more torchrun run with those Config keys (TOML
           values), e.g. the per-row divisor `touched:sync_divisor="touched"`

Each run is evaluated by the project's own commands (`w2v-nce analogy` and `w2v-nce similarity
--json` with ../shared/eval's questions-words, WordSim-353 and SimLex-999) and the result is one
JSON object: every run's words/s (training words x epochs / training seconds, from metrics.json;
for torchrun all ranks' words over rank 0's seconds), wall seconds (end to end: from the command
to its vectors file, torchrun's start and the corpus's reading included), analogy accuracy, WS353
and SimLex Spearman, and each torchrun run's ratios to `one`: words/s, end to end (one's wall
seconds over the run's), analogy, WS353, SimLex (the issue-22 bar: >= 0.95 end to end at >= 0.98
quality), plus a table. With `--repeat R` the runs go round R times (one, ddp, the variants, one,
...): on a shared machine each round's ratios pair runs made minutes apart, and the median of the
rounds' ratios is reported beside each round's.

Usage (about 4-6 minutes a run on 2 cores for the full wiki17m):
  python scripts/bench_ddp.py                                   # 2 ranks vs 2 threads, full wiki17m
  python scripts/bench_ddp.py --max-tokens 2000000 --json ddp.json
  python scripts/bench_ddp.py --epochs 3 --variant 'blocking:sync_overlap=false'   # issue 22's measurement
  python scripts/bench_ddp.py --device cuda --ranks 1 --preset configs/gpu.toml --epochs 1   # one GPU: NCCL, 1 rank
  python scripts/bench_ddp.py --variant 'touched:sync_divisor="touched"' \\
      --variant 'mean-lr/N:sync_scale_lr=false' --variant 'sum:sync_divisor="none"'
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from bench_vs_gensim import DEFAULT_CORPUS, SHARED, prepare_corpus  # noqa: E402

EVAL = SHARED / "eval"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def w2v(*args: str) -> list[str]:
    return [sys.executable, "-m", "w2v_nce", *args]


def train(name: str, corpus: Path, workdir: Path, ranks: int, threads: int, settings: list[str],
          extra: dict[str, str], preset: str = "", evals: Path = EVAL) -> dict:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)  # a variant's name may hold a slash
    out = workdir / slug
    config = workdir / f"{slug}.toml"
    keys = set(extra)  # the variant's keys replace the preset's
    kept = [line for line in preset.splitlines() if line.partition("=")[0].strip() not in keys]
    config.write_text("".join(f"{line}\n" for line in kept) + "".join(f"{k} = {v}\n" for k, v in extra.items()))
    train_args = ["train", str(corpus), "--out", str(out), "--quiet", "--threads", str(threads), "--config",
                  str(config), *settings]
    if name == "one":
        command = w2v(*train_args)
    else:  # torchrun, also for one rank (the distributed code path: its process group, its syncs)
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_port",
                   str(free_port()), "-m", "w2v_nce", *train_args]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.startswith("error:")] or done.stderr.splitlines()
        raise SystemExit(f"error: run {name} failed: {(lines or ['(no output)'])[-1].removeprefix('error: ')}")
    metrics = json.loads((out / "metrics.json").read_text())
    vectors = out / "vectors.txt"
    analogy = json.loads(subprocess.run(w2v("analogy", str(vectors), str(evals / "questions-words.txt"), "--json"),
                                        capture_output=True, text=True, check=True).stdout)
    sims = {key: json.loads(subprocess.run(w2v("similarity", str(vectors), str(evals / file), "--json"),
                                           capture_output=True, text=True, check=True).stdout)
            for key, file in (("ws353", "wordsim353.tsv"), ("simlex", "simlex999.txt"))}
    row = {
        "ranks": ranks, "threads": threads, "settings": extra,
        "words_per_sec": metrics["words_per_sec"], "train_seconds": metrics["seconds"], "wall_seconds": round(wall, 1),
        "final_loss": metrics["final_loss"], "vocab_size": metrics["vocab_size"],
        "analogy": analogy["accuracy"], "ws353": sims["ws353"]["spearman"], "simlex": sims["simlex"]["spearman"],
    }
    print(json.dumps({name: row}), file=sys.stderr, flush=True)
    return row


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """'name:key=value,key=value' (values in TOML: strings quoted)."""
    name, _, body = text.partition(":")
    pairs = [item.split("=", 1) for item in body.split(",") if item]
    return name, {k.strip(): v.strip() for k, v in pairs}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--max-tokens", type=int, default=0, help="only the first N tokens (0 = all)")
    ap.add_argument("--workdir", type=Path, default=None, help="where corpus and runs go (default: a temp dir)")
    ap.add_argument("--ranks", type=int, default=2, help="torchrun processes, 1 thread each; `one` gets as many threads")
    ap.add_argument("--arch", default="cbow")
    ap.add_argument("--loss", default="neg")
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE,... one more torchrun run")
    ap.add_argument("--skip-one", action="store_true", help="no single-process run (no ratios)")
    ap.add_argument("--repeat", type=int, default=1, help="go round the runs this many times (paired ratios, median)")
    ap.add_argument("--device", default="cpu", help="every run's device (cuda: NCCL between the ranks)")
    ap.add_argument("--preset", type=Path, default=None, help="a TOML preset under every run's keys (e.g. configs/gpu.toml)")
    ap.add_argument("--eval-dir", type=Path, default=EVAL, help="questions-words.txt, wordsim353.tsv, simlex999.txt")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-ddp-"))
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = workdir / "corpus.txt"
    prepared = prepare_corpus(args.corpus, corpus, max_tokens=args.max_tokens)
    settings = ["--arch", args.arch, "--loss", args.loss, "--dim", str(args.dim), "--window", str(args.window),
                "--epochs", str(args.epochs), "--seed", str(args.seed), "--device", args.device]
    preset = args.preset.read_text() if args.preset else ""
    plan = ([] if args.skip_one else [("one", 1, args.ranks, {})]) + [("ddp", args.ranks, 1, {})] + \
        [(name, args.ranks, 1, extra) for name, extra in map(parse_variant, args.variant)]
    rounds: list[dict[str, dict]] = []
    for _ in range(args.repeat):
        rounds.append({name: train(name, corpus, workdir, ranks, threads, settings, extra, preset, args.eval_dir)
                       for name, ranks, threads, extra in plan})
    ratios = [ratios_to_one(runs) for runs in rounds]
    result = {"corpus": str(args.corpus), "tokens": prepared["tokens"], "ranks": args.ranks, "settings": settings,
              "runs": rounds[0] if args.repeat == 1 else rounds, "ratios_to_one": ratios[0] if args.repeat == 1 else ratios}
    if args.repeat > 1 and ratios[0]:
        result["median_ratios_to_one"] = median_ratios(ratios)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"{'run':24s} {'words/s':>10s} {'wall s':>7s} {'analogy':>8s} {'WS353':>7s} {'SimLex':>7s}   "
          f"ratios to one ({', '.join(RATIOS)})")
    for runs, r in zip(rounds, ratios):
        for name, row in runs.items():
            print(f"{name:24s} {row['words_per_sec']:>10,.0f} {row['wall_seconds']:7.1f} {row['analogy']:8.4f} "
                  f"{row['ws353']:7.4f} {row['simlex']:7.4f}   " + format_ratios(r.get(name, {})))
    for name, r in result.get("median_ratios_to_one", {}).items():
        print(f"{'median ' + name:24s} {'':>10s} {'':>7s} {'':>8s} {'':>7s} {'':>7s}   " + format_ratios(r))


RATIOS = ("words_per_sec", "end_to_end", "analogy", "ws353", "simlex")


def ratios_to_one(runs: dict[str, dict]) -> dict[str, dict]:
    """Each run's ratios to `one` (none without it): words/s, end to end (one's wall seconds over
    the run's: above 1 is faster), and the three scores.

    >>> one = dict(words_per_sec=100, wall_seconds=10, analogy=0.4, ws353=0.6, simlex=0.3)
    >>> ratios_to_one({"one": one, "ddp": dict(one, words_per_sec=90, wall_seconds=12.5, analogy=0.41)})["ddp"]
    {'words_per_sec': 0.9, 'end_to_end': 0.8, 'analogy': 1.025, 'ws353': 1.0, 'simlex': 1.0}
    """
    if "one" not in runs:
        return {}
    one = runs["one"]

    def ratio(row: dict, key: str) -> float | None:
        if key == "end_to_end":
            return round(one["wall_seconds"] / row["wall_seconds"], 4) if row["wall_seconds"] else None
        return round(row[key] / one[key], 4) if one[key] else None

    return {name: {key: ratio(row, key) for key in RATIOS} for name, row in runs.items() if name != "one"}


def median_ratios(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    """The median over the rounds of each run's ratios.

    >>> median_ratios([{"ddp": {"end_to_end": r}} for r in (0.9, 1.1, 0.95)])
    {'ddp': {'end_to_end': 0.95}}
    """
    return {name: {key: statistics.median(r[name][key] for r in rounds) if all(r[name][key] is not None for r in rounds)
                   else None for key in rounds[0][name]} for name in rounds[0]}


def format_ratios(r: dict) -> str:
    return ", ".join(f"{r[k]:.3f}" if r.get(k) is not None else "-" for k in RATIOS)

if __name__ == "__main__":
    main()
