#!/usr/bin/env python
"""Speed and quality against gensim at several vector sizes: one bench_vs_gensim.py run per
(dim, arch, loss), each paired with gensim in the same run, then one table.

  python scripts/bench_dims.py                                    # dims 50..1000, CBOW and SG, neg and hs
  python scripts/bench_dims.py --dims 100 300 --arch cbow --loss neg --max-tokens 4000000 --epochs 3
  python scripts/bench_dims.py --table runs/dims/*.json           # the table of earlier runs

Every run's JSON goes to --out (one file per cell, named dDIM-ARCH-LOSS.json), so an interrupted
sweep keeps what it measured and a second call with --table prints it. Options after `--` pass to
bench_vs_gensim.py unchanged (e.g. `-- --gensim-workers 1`). Words/s is each trainer's own training
rate (bench_vs_gensim.py's docstring says how each is timed); quality is the ratio ours / gensim.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_cell(dim: int, arch: str, loss: str, args, extra: list[str]) -> Path:
    out = args.out / f"d{dim}-{arch}-{loss}.json"
    cmd = [sys.executable, str(HERE / "bench_vs_gensim.py"), "--dim", str(dim), "--arch", arch, "--loss", loss,
           "--epochs", str(args.epochs), "--threads", str(args.threads), "--json", str(out), "--no-cross-check"]
    if args.max_tokens:
        cmd += ["--max-tokens", str(args.max_tokens)]
    if args.corpus:
        cmd += ["--corpus", str(args.corpus)]
    print("[dims]", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd + extra, check=True, stdout=sys.stderr)
    return out


def table(paths: list[Path]) -> str:
    head = ("dim", "arch", "loss", "ours words/s", "gensim words/s", "ratio", "end to end", "analogy", "WS353", "SimLex")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = []
    for path in paths:
        r = json.loads(path.read_text())
        s, ours, gensim, ratio = r["settings"], r["ours"], r["gensim"], r["ratio"]
        rows.append((s["dim"], s["arch"], s["loss"], ours, gensim, ratio))
    for dim, arch, loss, ours, gensim, ratio in sorted(rows, key=lambda t: (t[1], t[2], t[0])):
        lines.append(f"| {dim} | {arch} | {loss} | {ours['words_per_sec']:,.0f} | {gensim['words_per_sec']:,.0f} | "
                     f"**{ratio['words_per_sec']:.2f}x** | {1 / ratio['wall_seconds']:.2f}x | "
                     f"{ratio['analogy_accuracy']:.3f} | {ratio['ws353_spearman']:.3f} | {ratio['simlex_spearman']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=int, nargs="+", default=[50, 100, 200, 300, 500, 1000])
    ap.add_argument("--arch", nargs="+", default=["cbow", "skipgram"], choices=["cbow", "skipgram"])
    ap.add_argument("--loss", nargs="+", default=["neg", "hs"], choices=["neg", "hs"])
    ap.add_argument("--max-tokens", type=int, default=4_000_000, help="first N tokens of the corpus (0 = all)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="ours' threads and gensim's workers")
    ap.add_argument("--corpus", type=Path, default=None, help="bench_vs_gensim.py's default if not given")
    ap.add_argument("--out", type=Path, default=Path("runs/dims"), help="folder for each run's JSON")
    ap.add_argument("--table", type=Path, nargs="+", default=None, help="only print the table of these JSON files")
    args = ap.parse_args(argv)
    if args.table:
        print(table(args.table))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    done = [run_cell(dim, arch, loss, args, extra) for arch in args.arch for loss in args.loss for dim in args.dims]
    print(table(done))


if __name__ == "__main__":
    main(sys.argv[1:])
