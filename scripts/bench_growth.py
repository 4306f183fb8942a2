#!/usr/bin/env python
"""Growth curves: words/s and peak memory as the corpus and the vocabulary grow, ours against gensim.

Issue 22's measurement. Both trainers run each row in a process of their own, as a user runs them
(scripts/bench_vs_gensim.py's children: `w2v-nce train` and a script that imports only gensim), on
the same prepared corpus (lines of at most --line-words words) with the same settings (CBOW,
negative sampling, dim, window, negatives, sample, 1 epoch, 2 threads against 2 workers):

  * over the corpus: wiki17m, wiki65m, and wiki65m --copies times over (ours: a directory holding
    the copies, as a user would give it; gensim: their concatenation, since corpus_file takes one
    file), at --min-count 5;
  * over the vocabulary: wiki65m at each of --min-counts.

Peak memory is each process's peak resident set. Its fixed part is the same command on a corpus of
a few words (imports, allocator, thread pools); the rest grows with the work. Memory per
vocabulary row is the slope of the peak over the vocabulary sweep.

Usage:
  python scripts/bench_growth.py --workdir /tmp/growth --json growth.json --plot docs/growth.png
  python scripts/bench_growth.py --max-tokens 200000 --copies 2 --min-counts 5 1   # smoke
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_vs_gensim as bench  # noqa: E402  (corpus preparation, children, machine facts)

from w2v_nce.config import load_config  # noqa: E402
from w2v_nce.errors import UserError  # noqa: E402

KEYS = ("words_per_sec", "peak_rss_mb", "wall_seconds", "train_seconds", "vocab_size", "corpus_words")
TINY = "the quick brown fox jumps over the lazy dog\n" * 20  # the fixed part's corpus


def prepare(args: argparse.Namespace, work: Path) -> dict[str, dict]:
    """The corpora: name -> {"ours": path, "gensim": path, "tokens": n}."""
    corpora: dict[str, dict] = {}
    for name, source in (("wiki17m", args.corpus17), ("wiki65m", args.corpus65)):
        target = work / f"{name}.txt"
        tokens = bench.prepared_corpus(source, target, args.max_tokens, args.line_words)["tokens"]
        corpora[name] = {"ours": target, "gensim": target, "tokens": tokens}
    base = corpora["wiki65m"]
    copies, joined = work / f"wiki65m-x{args.copies}", work / f"wiki65m-x{args.copies}.txt"
    shutil.rmtree(copies, ignore_errors=True)
    copies.mkdir()
    for i in range(args.copies):
        os.link(base["ours"], copies / f"part{i}.txt")
    if not joined.exists() or joined.stat().st_size != args.copies * base["ours"].stat().st_size:
        with open(joined, "wb") as out:
            for i in range(args.copies):
                with open(base["ours"], "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 24)
    corpora[f"wiki65m x{args.copies}"] = {"ours": copies, "gensim": joined, "tokens": base["tokens"] * args.copies}
    tiny = work / "tiny.txt"
    tiny.write_text(TINY)
    corpora["tiny"] = {"ours": tiny, "gensim": tiny, "tokens": len(TINY.split())}
    return corpora


def measure(name: str, corpus: dict, min_count: int, args: argparse.Namespace, work: Path) -> dict:
    """One row: both trainers on one corpus at one min_count."""
    cfg = load_config(None, {"arch": "cbow", "loss": "neg", "dim": args.dim, "window": 5, "negatives": 5,
                             "sample": 1e-3, "min_count": min_count, "epochs": args.epochs, "threads": args.threads,
                             "seed": 1, "device": "cpu"})
    out = work / "runs" / f"{name.replace(' ', '_')}-mc{min_count}"
    row = {"corpus": name, "tokens": corpus["tokens"], "min_count": min_count}
    bench._log(f"{name}, min_count {min_count}: ours")
    _, ours = bench.train_ours(corpus["ours"], out / "ours", cfg, load=False)
    row["ours"] = {k: ours["row"][k] for k in KEYS}
    # words the subsampling kept (CBOW: one example each): a larger vocabulary keeps more of them
    row["ours"]["kept_words_per_sec"] = ours["metrics"]["examples"] / max(ours["metrics"]["seconds"], 1e-9)
    if not args.skip_gensim:
        bench._log(f"{name}, min_count {min_count}: gensim")
        _, gensim = bench.train_gensim(corpus["gensim"], bench.gensim_params(cfg, args.threads), out / "gensim",
                                       load=False)
        row["gensim"] = {k: gensim["row"][k] for k in KEYS}
        row["gensim"]["kept_words_per_sec"] = (gensim["details"]["reported_effective_words"]
                                               / max(gensim["details"]["train_seconds"], 1e-9))
    shutil.rmtree(out, ignore_errors=True)  # vectors of a million words: gigabytes over the sweep
    return row


def per_row_bytes(rows: list[dict], who: str) -> float | None:
    """Bytes of peak memory per vocabulary row: the slope between the sweep's smallest and largest
    vocabularies."""
    pts = sorted((r[who]["vocab_size"], r[who]["peak_rss_mb"]) for r in rows if who in r)
    if len(pts) < 2 or pts[-1][0] == pts[0][0]:
        return None
    return (pts[-1][1] - pts[0][1]) * 2**20 / (pts[-1][0] - pts[0][0])


def run(args: argparse.Namespace) -> dict:
    if args.copies < 1 or args.epochs < 1 or not args.min_counts or min(args.min_counts) < 1:
        raise UserError("--copies, --epochs and every --min-counts value must be at least 1")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="w2v-growth-"))
    work.mkdir(parents=True, exist_ok=True)
    corpora = prepare(args, work)
    fixed = measure("tiny", corpora["tiny"], 1, args, work)
    names = ("wiki17m", "wiki65m", f"wiki65m x{args.copies}") if "corpus" in args.sweeps else ("wiki65m",)
    size = [measure(name, corpora[name], 5, args, work) for name in names]
    vocab = [] if "vocab" not in args.sweeps else [
        size[names.index("wiki65m")] if mc == 5 else measure("wiki65m", corpora["wiki65m"], mc, args, work)
        for mc in args.min_counts]
    trainers = ("ours",) if args.skip_gensim else ("ours", "gensim")
    return {
        "machine": bench.machine_info("cpu"),
        "settings": {"arch": "cbow", "loss": "neg", "dim": args.dim, "window": 5, "negatives": 5, "sample": 1e-3,
                     "epochs": args.epochs, "threads": args.threads, "line_words": args.line_words},
        "fixed_mb": {t: fixed[t]["peak_rss_mb"] for t in trainers},
        "corpus_sweep": size,
        "vocab_sweep": vocab,
        "bytes_per_vocab_row": {t: per_row_bytes(vocab, t) for t in trainers},
    }


def report(result: dict) -> str:
    fixed = result["fixed_mb"]
    trainers = list(fixed)
    lines = [f"machine: {result['machine']['cpu_model']}, {result['machine']['cpus_usable']} usable CPUs",
             "fixed part (peak on a 180-word corpus): " + ", ".join(f"{t} {fixed[t]:.0f} MB" for t in trainers)]
    head = "| corpus | tokens | min_count | vocab | " + " | ".join(
        f"{t} words/s (kept words/s) | {t} peak MB (grown) | {t} wall s" for t in trainers)
    if "gensim" in fixed:
        head += " | words/s ratio | peak ratio | grown ratio"
    head += " |"
    for title, rows in (("over the corpus", result["corpus_sweep"]), ("over the vocabulary", result["vocab_sweep"])):
        lines += ["", title, "", head, "|" + "---|" * (head.count("|") - 1)]
        for r in rows:
            cells = [r["corpus"], f"{r['tokens']:,}", str(r["min_count"]), f"{r['ours']['vocab_size']:,}"]
            for t in trainers:
                x = r[t]
                cells += [f"{x['words_per_sec']:,.0f} ({x['kept_words_per_sec']:,.0f})",
                          f"{x['peak_rss_mb']:,.0f} ({x['peak_rss_mb'] - fixed[t]:,.0f})",
                          f"{x['wall_seconds']:.1f}"]
            if "gensim" in fixed:
                o, g = r["ours"], r["gensim"]
                cells += [f"{o['words_per_sec'] / g['words_per_sec']:.2f}x", f"{o['peak_rss_mb'] / g['peak_rss_mb']:.2f}x",
                          f"{(o['peak_rss_mb'] - fixed['ours']) / (g['peak_rss_mb'] - fixed['gensim']):.2f}x"]
            lines.append("| " + " | ".join(cells) + " |")
    per_row = result["bytes_per_vocab_row"]
    lines += ["", "peak memory per vocabulary row: " + ", ".join(
        f"{t} {per_row[t]:,.0f} B" if per_row[t] is not None else f"{t} n/a" for t in trainers)]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Four panels: words/s and peak memory over corpus tokens (top) and over vocabulary rows (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fixed = result["fixed_mb"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    for row, (sweep, xkey, xlabel) in enumerate((("corpus_sweep", "tokens", "corpus tokens (1 epoch)"),
                                                 ("vocab_sweep", "vocab_size", "vocabulary rows (wiki65m)"))):
        for trainer, style in (("ours", "o-"), ("gensim", "s--")):
            rows = [r for r in result[sweep] if trainer in r]
            if not rows:
                continue
            xs = [r[xkey] if xkey == "tokens" else r[trainer][xkey] for r in rows]
            axes[row][0].plot(xs, [r[trainer]["words_per_sec"] / 1e6 for r in rows], style, label=trainer)
            peaks = [r[trainer]["peak_rss_mb"] for r in rows]
            line, = axes[row][1].plot(xs, peaks, style, label=f"{trainer} peak")
            if sweep == "corpus_sweep":  # min_count 5 admits more words as the corpus grows: say how many
                for x, peak, r in zip(xs, peaks, rows):
                    axes[row][1].annotate(f"{r[trainer]['vocab_size'] / 1000:.0f}k words", (x, peak), fontsize=7,
                                          textcoords="offset points", xytext=(-4, 5), ha="right")
            axes[row][1].axhline(fixed[trainer], color=line.get_color(), lw=0.8, ls=":",
                                 label=f"{trainer} fixed part")
        for ax, ylabel in zip(axes[row], ("million words/s", "peak resident memory (MB)")):
            if sweep == "corpus_sweep":  # 17M to 260M tokens
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1e6:g}M" if x >= 1e6
                                                                         else f"{x / 1e3:g}k"))
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    s = result["settings"]
    fig.suptitle(f"CBOW-NS dim {s['dim']}, {s['epochs']} epoch, {s['threads']} threads / workers; "
                 f"{result['machine']['cpu_model']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus17", type=Path, default=bench.SHARED / "corpora" / "wiki17m.txt.gz")
    ap.add_argument("--corpus65", type=Path, default=bench.SHARED / "corpora" / "wiki65m.txt.gz")
    ap.add_argument("--copies", type=int, default=4, help="the largest corpus: wiki65m this many times over")
    ap.add_argument("--min-counts", type=int, nargs="+", default=[5, 2, 1], help="the vocabulary sweep on wiki65m")
    ap.add_argument("--sweeps", nargs="+", choices=("corpus", "vocab"), default=["corpus", "vocab"],
                    help="which curves to measure (vocab alone: wiki65m at each --min-counts)")
    ap.add_argument("--max-tokens", type=int, default=0, help="cut both corpora to N tokens (a smoke run)")
    ap.add_argument("--line-words", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-gensim", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the prepared corpora here (reused when present)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None, help="write the four-panel plot (PNG) here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return bench.script_main(lambda: run(args), report, args.json,
                             after=(lambda result: plot(result, args.plot)) if args.plot else None)


if __name__ == "__main__":
    sys.exit(main())
