#!/usr/bin/env python
"""Benchmark this project's trainer against gensim's Word2Vec: speed and quality, one table.

Both trainers get the same corpus file and the same settings (CBOW with mean of context
vectors or skip-gram, negative sampling or hierarchical softmax, dynamic window, subsampling,
linear learning-rate decay, the same number of threads and seed), in one run:

  * corpus: the source (plain or .gz, default ../shared/corpora/wiki17m.txt.gz beside the
    repository) is streamed once into ONE plain-text file of lines of at most --line-words
    (1,000) words, cut at the source's own line ends too; both trainers read that file.
    (gensim's corpus_file mode truncates lines over 10,000 words, and text8-style corpora
    are a single line.) --max-tokens N keeps only the first N tokens.
  * ours: `w2v_nce.train.train` with a Config built from the options (--loss, --batch-size
    and --device pass through; --threads sets torch's CPU threads).
  * gensim: `Word2Vec(sg=0|1, cbow_mean=1, hs=0|1, negative=k|0, ...)`, `build_vocab(corpus_file=)`
    then `train(corpus_file=)`, its fastest mode, with workers = --threads; always on the CPU
    (gensim has no GPU code), also when ours runs on CUDA.

Speed is measured the same way for both: in-vocabulary corpus words x epochs / training wall
seconds. Vocabulary building is left out of both. For ours, `seconds` from train()'s metrics
times the epoch loops only (subsampling, window sampling, SGD steps; the CUDA queue is
synchronised at each epoch end); counting words, building the vocabulary, encoding the corpus
to ids (once, before the first epoch), checkpoints and vectors.txt are outside it. For gensim
the clock runs around `train()` alone, which re-reads and looks up the text every epoch (it
has no separate encoding step). Each trainer runs in a process of its own, as a user runs it:
"end to end seconds" is from the command to its vectors file (ours: `w2v-nce train`, with its
imports, counting, encoding, checkpoints and vectors.txt; gensim: imports, `Word2Vec()`,
build_vocab, train and save_word2vec_format in text), and "peak memory" is that process's peak
resident set (its VmHWM at exit, `peak_command`; not getrusage's ru_maxrss, which on Linux starts
from this script's own peak: the child inherits its parent's high-water mark at exec).

Quality is computed by the same code for both sets of vectors (`w2v_nce.evaluate`): analogy
accuracy (3CosAdd, first --restrict-vocab words, case-insensitive) and its coverage, WordSim353
and SimLex-999 Spearman. As a cross-check, gensim's own evaluate_word_analogies and
evaluate_word_pairs are run on gensim's vectors and compared with ours on the same vectors.
Eval files: ../shared/eval/{questions-words.txt, wordsim353.tsv, simlex999.txt} if present,
else gensim's bundled copies.

Usage:
  python scripts/bench_vs_gensim.py                                  # full wiki17m, 5 epochs
  python scripts/bench_vs_gensim.py --max-tokens 2000000 --json bench.json
  python scripts/bench_vs_gensim.py --device cuda --batch-size 4096  # ours on GPU, gensim on CPU
  python scripts/bench_vs_gensim.py --skip-gensim                    # ours only (no ratios)
  python scripts/bench_vs_gensim.py --gensim-workers 1               # gensim with a linear LR decay (docs)
  python scripts/bench_vs_gensim.py --arch skipgram --loss hs         # vs gensim sg=1, hs=1, negative=0

Timings depend on what else the machine runs; gensim's threads and ours compete with it alike,
but run on an idle machine for numbers to quote. gensim with more than one worker is not
deterministic, so its quality varies a little from run to run, as ours does across seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from w2v_nce.atomic import write_text
from w2v_nce.config import Config, load_config
from w2v_nce.corpus import read_pieces
from w2v_nce.errors import UserError
from w2v_nce.evaluate import analogy, similarity
from w2v_nce.vectors import Vectors

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DEFAULT_CORPUS = SHARED / "corpora" / "wiki17m.txt.gz"
EVAL_FILES = {  # key -> file name in ../shared/eval and in gensim's test data
    "analogy": "questions-words.txt",
    "ws353": "wordsim353.tsv",
    "simlex": "simlex999.txt",
}
GENSIM_MAX_LINE_WORDS = 10_000  # gensim's corpus_file reader truncates longer lines

# (key, label, format) of each table row, in order
ROWS = (
    ("words_per_sec", "words/sec (train)", "int"),
    ("analogy_accuracy", "analogy accuracy", "pct"),
    ("analogy_coverage", "analogy coverage", "pct"),
    ("ws353_spearman", "WS353 Spearman", "f4"),
    ("simlex_spearman", "SimLex-999 Spearman", "f4"),
    ("train_seconds", "train seconds", "f2"),
    ("wall_seconds", "end to end seconds", "f2"),
    ("peak_rss_mb", "peak memory (MB)", "int"),
    ("vocab_size", "vocab size", "int"),
    ("corpus_words", "in-vocab words / epoch", "int"),
)


# --------------------------------------------------------------------------- corpus


def prepare_corpus(source: Path, target: Path, max_tokens: int = 0, line_words: int = 1000) -> dict:
    """Stream `source` (plain or .gz) into `target`: lines of at most `line_words` words.

    Source lines stay sentence boundaries; longer ones are cut into pieces of `line_words`
    words. With `max_tokens`, only the first `max_tokens` tokens are kept. Returns counts.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "in.txt").write_text("a b c d e\\nf g\\n\\nh i j\\n")
    >>> prepare_corpus(d / "in.txt", d / "out.txt", max_tokens=9, line_words=2)["lines"]
    5
    >>> (d / "out.txt").read_text().splitlines()
    ['a b', 'c d', 'e', 'f g', 'h i']
    """
    start = time.perf_counter()
    tokens = lines = 0
    line: list[str] = []
    with open(target, "w", encoding="utf-8") as out, contextlib.closing(read_pieces(source)) as pieces:

        def flush() -> None:
            nonlocal lines
            if line:
                out.write(" ".join(line) + "\n")
                lines += 1
                line.clear()

        for words, ends in pieces:
            if max_tokens:
                words = words[: max_tokens - tokens]
            i = 0
            while i < len(words):
                take = words[i : i + line_words - len(line)]
                line.extend(take)
                i += len(take)
                if len(line) == line_words:
                    flush()
            tokens += len(words)
            if ends or (max_tokens and tokens >= max_tokens):
                flush()
            if max_tokens and tokens >= max_tokens:
                break
        flush()
    if tokens == 0:
        raise UserError(f"corpus '{source}' has no words")
    return {"tokens": tokens, "lines": lines, "seconds": round(time.perf_counter() - start, 3)}


def prepared_corpus(source: Path, target: Path, max_tokens: int = 0, line_words: int = 1000) -> dict:
    """`prepare_corpus` once: `target` is reused when its stamp (TARGET.json) says it was made from
    the same source, size and line length. Returns the counts."""
    stamp = target.with_suffix(".json")
    key = {"source": str(Path(source).resolve()), "max_tokens": max_tokens, "line_words": line_words}
    made = json.loads(stamp.read_text()) if stamp.is_file() and target.is_file() else {}
    if {k: made.get(k) for k in key} == key:
        _log(f"reusing {target}")
        return {k: made[k] for k in ("tokens", "lines", "seconds")}
    _log(f"preparing {source} -> {target}")
    counts = prepare_corpus(source, target, max_tokens, line_words)
    stamp.write_text(json.dumps({**key, **counts}))
    return counts


def eval_files(overrides: dict[str, Path | None]) -> dict[str, Path]:
    """Each eval file: the one given, else ../shared/eval's copy, else gensim's bundled copy."""
    from w2v_nce.evaluate import _gensim_test_data

    found = {}
    for key, name in EVAL_FILES.items():
        given = overrides.get(key)
        shared = SHARED / "eval" / name
        found[key] = Path(given) if given else shared if shared.is_file() else _gensim_test_data(name)
        if not found[key].is_file():
            raise UserError(f"eval file '{found[key]}' does not exist")
    return found


# --------------------------------------------------------------------------- machine


def machine_info(device: str) -> dict:
    import torch

    try:
        import gensim
    except ImportError:  # a GPU machine without it: --skip-gensim runs ours alone
        gensim = None

    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_device": device,
        "gpu": torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None,
        "gensim": gensim.__version__ if gensim else None,
    }
    if gensim is None:
        info["gensim_fast_version"] = info["gensim_corpusfile_version"] = -1
        return info
    try:
        from gensim.models.word2vec_inner import FAST_VERSION

        info["gensim_fast_version"] = FAST_VERSION
    except ImportError:
        info["gensim_fast_version"] = -1
    try:
        from gensim.models.word2vec_corpusfile import CORPUSFILE_VERSION

        info["gensim_corpusfile_version"] = CORPUSFILE_VERSION
    except ImportError:
        info["gensim_corpusfile_version"] = -1
    return info


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# --------------------------------------------------------------------------- trainers


PEAK_WRAPPER = """
import atexit, sys
def _peak(path=sys.argv[1]):
    try:
        with open("/proc/self/status") as f:
            kb = next((l.split()[1] for l in f if l.startswith("VmHWM:")), "")
    except OSError:
        return
    with open(path, "w") as f:
        f.write(kb)
atexit.register(_peak)
if sys.argv[2] == "-m":
    import runpy
    sys.argv = sys.argv[3:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:  # the code runs as this __main__ (what it defines must pickle as __main__.name)
    _code, sys.argv = sys.argv[3], ["-c"] + sys.argv[4:]
    exec(compile(_code, "<string>", "exec"), globals())
"""


def peak_command(command: list[str], peak_file: Path) -> list[str]:
    """`command` ([python, "-m" or "-c", module or code, args...]) run so that it writes its own
    peak resident set (VmHWM, KB) into `peak_file` at exit. The process's VmHWM is its own from
    exec on, while the ru_maxrss that wait4 reports is at least the parent's peak when it started
    the child (Linux folds the parent's high-water mark in at exec), which here is this script's
    with torch and the last run's vectors loaded. The wrapper imports only atexit (and runpy for -m)."""
    python, flag, target, *args = command
    if flag not in ("-m", "-c"):
        raise ValueError(f"peak_command runs python -m or -c, not {flag!r}")
    return [python, "-c", PEAK_WRAPPER, str(peak_file), flag, target, *args]


def child_peak_mb(peak_file: Path, usage) -> float:
    """The child's peak resident set in MB (MiB): its VmHWM if it wrote it, else ru_maxrss."""
    try:
        return int(peak_file.read_text()) / 1024
    except (OSError, ValueError):
        return usage.ru_maxrss / 1024  # Linux reports KB
    finally:
        peak_file.unlink(missing_ok=True)


def run_child(command: list[str], what: str) -> tuple[float, float]:
    """Run `command` as a child process: (wall seconds, its peak resident memory in MB)."""
    peak_file = Path(tempfile.mkstemp(prefix="w2v-peak-")[1])
    start = time.perf_counter()
    child = subprocess.Popen(peak_command(command, peak_file), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    err = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    peak = child_peak_mb(peak_file, usage)
    if os.waitstatus_to_exitcode(status) != 0:
        raise UserError(f"{what} failed: {err.strip().splitlines()[-1] if err.strip() else status}")
    return wall, peak


def train_ours(corpus: Path, out_dir: Path, cfg: Config, load: bool = True) -> tuple[Vectors | None, dict]:
    """Our trainer as a user runs it: `w2v-nce train` in a new process, timed from the command to
    the vectors file (imports, counting, encoding, training, checkpoints, vectors.txt); its vectors
    are read back unless `load` is false."""
    from w2v_nce.config import to_toml
    from w2v_nce.vectors import load_word2vec

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.toml").write_text(to_toml(cfg))
    wall, peak = run_child([sys.executable, "-m", "w2v_nce", "train", str(corpus), "-c", str(out_dir / "bench.toml"),
                            "-o", str(out_dir), "-q"], "w2v-nce train")
    metrics = json.loads((out_dir / "metrics.json").read_text())
    row = {
        "words_per_sec": metrics["words"] / metrics["seconds"] if metrics["seconds"] > 0 else None,
        "train_seconds": metrics["seconds"],
        "wall_seconds": wall,
        "peak_rss_mb": peak,
        "vocab_size": metrics["vocab_size"],
        "corpus_words": metrics["corpus_words"],
        "words": metrics["words"],
    }
    return load_word2vec(out_dir / "vectors.txt") if load else None, {"row": row, "metrics": metrics}


def gensim_params(cfg: Config, workers: int) -> dict:
    """gensim Word2Vec keyword arguments equivalent to our Config: its architecture, and
    hierarchical softmax for loss hs, else negative sampling (gensim has no other loss)."""
    hs = cfg.loss == "hs"
    return {
        "sg": int(cfg.arch == "skipgram"),
        "cbow_mean": 1,
        "hs": int(hs),
        "negative": 0 if hs else cfg.negatives,
        "ns_exponent": cfg.noise_exponent,
        "vector_size": cfg.dim,
        "window": cfg.window,
        "shrink_windows": True,  # each word draws its window in 1..window, as ours
        "min_count": cfg.min_count,
        "max_final_vocab": cfg.max_vocab or None,
        "sample": cfg.sample,
        "alpha": cfg.start_lr,
        "min_alpha": cfg.start_lr * cfg.min_lr_ratio,
        "epochs": cfg.epochs,
        "workers": workers,
        "seed": cfg.seed,
    }


# gensim in a child process, as a user's script would run it: build_vocab and train timed apart,
# then save_word2vec_format (text, as ours writes vectors.txt). params["model"] names the class
# (Word2Vec unless given: scripts/bench_subwords.py passes FastText).
GENSIM_CHILD = """
import json, sys, time
from gensim import models
params, corpus, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
model = getattr(models, params.pop("model", "Word2Vec"))(**params)
start = time.perf_counter()
model.build_vocab(corpus_file=corpus)
vocab_seconds = time.perf_counter() - start
start = time.perf_counter()
trained, raw = model.train(corpus_file=corpus, total_examples=model.corpus_count,
                           total_words=model.corpus_total_words, epochs=model.epochs)
train_seconds = time.perf_counter() - start
model.wv.save_word2vec_format(out + "/vectors.txt")
counts = [int(model.wv.get_vecattr(w, "count")) for w in model.wv.index_to_key]
json.dump({"vocab_seconds": vocab_seconds, "train_seconds": train_seconds, "corpus_words": sum(counts),
           "vocab_size": len(model.wv), "corpus_tokens": model.corpus_total_words, "corpus_lines": model.corpus_count,
           "reported_effective_words": trained, "reported_raw_words": raw}, open(out + "/trainer.json", "w"))
"""


def train_gensim(corpus: Path, params: dict, out_dir: Path, load: bool = True) -> tuple[Vectors | None, dict]:
    """gensim in corpus_file mode in a new process, timed from the command to its vectors file
    (read back unless `load` is false)."""
    from w2v_nce.vectors import load_word2vec

    out_dir.mkdir(parents=True, exist_ok=True)
    wall, peak = run_child([sys.executable, "-c", GENSIM_CHILD, json.dumps(params), str(corpus), str(out_dir)],
                           "gensim")
    details = json.loads((out_dir / "trainer.json").read_text())
    words = details["corpus_words"] * params["epochs"]
    row = {
        "words_per_sec": words / details["train_seconds"] if details["train_seconds"] > 0 else None,
        "train_seconds": details["train_seconds"],
        "wall_seconds": wall,
        "peak_rss_mb": peak,
        "vocab_size": details["vocab_size"],
        "corpus_words": details["corpus_words"],
        "words": words,
    }
    return load_word2vec(out_dir / "vectors.txt") if load else None, {"row": row, "details": details}


# --------------------------------------------------------------------------- quality


def quality(vectors: Vectors, files: dict[str, Path], restrict_vocab: int) -> dict:
    """Our evaluation code, the same for both trainers' vectors."""
    result = analogy(vectors, files["analogy"], restrict_vocab=restrict_vocab, case_insensitive=True)
    out = {
        "analogy_accuracy": result.accuracy,
        "analogy_coverage": result.coverage,
        "analogy_answered": result.answered,
        "analogy_questions": result.questions,
    }
    for key in ("ws353", "simlex"):
        try:
            pairs = similarity(vectors, files[key], case_insensitive=True)
        except UserError:  # no pair has both words in the vocabulary
            out.update({f"{key}_spearman": None, f"{key}_coverage": 0.0})
        else:
            out.update({f"{key}_spearman": pairs.spearman, f"{key}_coverage": pairs.coverage})
    return out


def gensim_cross_check(kv, files: dict[str, Path], restrict_vocab: int, ours_on_gensim: dict) -> dict:
    """gensim's own evaluations of its vectors, next to ours of the same vectors."""
    import warnings

    score, sections = kv.evaluate_word_analogies(
        str(files["analogy"]), restrict_vocab=restrict_vocab, case_insensitive=True
    )
    total = sections[-1]
    check = {
        "analogy_accuracy": float(score),
        "analogy_answered": len(total["correct"]) + len(total["incorrect"]),
        "ours_analogy_accuracy": ours_on_gensim["analogy_accuracy"],
        "ours_analogy_answered": ours_on_gensim["analogy_answered"],
    }
    check["analogy_equal"] = (
        check["analogy_answered"] == check["ours_analogy_answered"]
        and abs(check["analogy_accuracy"] - check["ours_analogy_accuracy"]) < 1e-12
    )
    for key in ("ws353", "simlex"):
        spearman = None
        with warnings.catch_warnings(), contextlib.suppress(Exception):
            warnings.simplefilter("ignore")
            _, result, _ = kv.evaluate_word_pairs(str(files[key]), case_insensitive=True)
            spearman = float(result[0])
        ours = ours_on_gensim[f"{key}_spearman"]
        check[f"{key}_spearman"] = spearman
        check[f"ours_{key}_spearman"] = ours
        if _finite(spearman) and _finite(ours):
            check[f"{key}_equal"] = abs(spearman - ours) < 1e-9
        else:  # both without a number (no pair covered)
            check[f"{key}_equal"] = not _finite(spearman) and not _finite(ours)
    return check


# --------------------------------------------------------------------------- report


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def ratios(ours: dict, gensim: dict | None) -> dict:
    """ours / gensim per row; None where gensim is missing or zero, or either is not a number."""
    out = {}
    for key, _, _ in ROWS:
        a, b = ours.get(key), (gensim or {}).get(key)
        out[key] = a / b if _finite(a) and _finite(b) and b != 0 else None
    return out


def _fmt(value: Any, kind: str) -> str:
    if not _finite(value):
        return ""
    if kind == "int":
        return f"{value:,.0f}"
    if kind == "pct":
        return f"{value:.2%}"
    if kind == "f4":
        return f"{value:.4f}"
    if kind == "f2":
        return f"{value:,.2f}"
    return f"{value:,.1f}"


def format_table(ours: dict, gensim: dict | None, ratio: dict) -> str:
    header = ("metric", "ours", "gensim", "ours/gensim")
    body = [
        (
            label,
            _fmt(ours.get(key), kind),
            _fmt((gensim or {}).get(key), kind),
            f"{ratio[key]:.3f}" if _finite(ratio.get(key)) else "",
        )
        for key, label, kind in ROWS
    ]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(4)]
    lines = [
        "  ".join([header[0].ljust(widths[0])] + [h.rjust(w) for h, w in zip(header[1:], widths[1:])]),
        "  ".join("-" * w for w in widths),
    ]
    for row in body:
        lines.append("  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]))
    return "\n".join(lines)


def summary_line(ours: dict, gensim: dict | None, ratio: dict) -> str:
    def pair(key: str, kind: str) -> str:
        return f"{_fmt(ours.get(key), kind) or 'n/a'} vs {_fmt(gensim.get(key), kind) or 'n/a'}"

    if gensim is None:
        return (
            f"summary: ours {_fmt(ours['words_per_sec'], 'int')} words/s, analogy "
            f"{_fmt(ours['analogy_accuracy'], 'pct')}, WS353 {_fmt(ours['ws353_spearman'], 'f4') or 'n/a'}, "
            f"SimLex {_fmt(ours['simlex_spearman'], 'f4') or 'n/a'} (gensim skipped)"
        )
    speed = ratio["words_per_sec"]
    speed_text = f"{speed:.2f}x gensim's speed" if _finite(speed) else "speed not comparable"
    return (
        f"summary: ours trains at {speed_text} ({pair('words_per_sec', 'int')} words/s); "
        f"analogy {pair('analogy_accuracy', 'pct')}, WS353 {pair('ws353_spearman', 'f4')}, "
        f"SimLex {pair('simlex_spearman', 'f4')} (ours vs gensim)"
    )


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, non-finite floats to None, paths to str."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    io = ap.add_argument_group("corpus and output")
    io.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus, plain or .gz")
    io.add_argument("--max-tokens", type=int, default=0, help="use only the first N tokens (0 = all)")
    io.add_argument("--line-words", type=int, default=1000, help="words per line of the prepared corpus")
    io.add_argument("--workdir", type=Path, default=None,
                    help="keep the prepared corpus and both trainers' vectors here (None: a temp dir, removed)")
    io.add_argument("--json", type=Path, default=None, help="write all numbers to this JSON file")
    io.add_argument("--skip-gensim", action="store_true", help="train only ours (no ratios)")
    io.add_argument("--no-cross-check", action="store_true",
                    help="skip gensim's own evaluation of its vectors (the cross-check)")
    s = ap.add_argument_group("shared settings (both trainers)")
    s.add_argument("--dim", type=int, default=100)
    s.add_argument("--window", type=int, default=5)
    s.add_argument("--negatives", "--negative", type=int, default=5)
    s.add_argument("--sample", type=float, default=1e-3)
    s.add_argument("--min-count", type=int, default=5)
    s.add_argument("--epochs", type=int, default=5)
    s.add_argument("--lr", "--alpha", type=float, default=0.025, help="starting learning rate (alpha)")
    s.add_argument("--defaults", action="store_true",
                   help="each trainer at its own default learning rate (ours: Config's per arch; gensim: 0.025), "
                        "instead of --lr for both")
    s.add_argument("--min-lr-ratio", type=float, default=1e-4, help="final lr = lr * this (gensim min_alpha)")
    s.add_argument("--threads", type=int, default=2,
                   help="torch CPU threads for ours, workers for gensim (0 = all cores for both)")
    s.add_argument("--gensim-workers", type=int, default=None,
                   help="gensim's workers if not --threads. With N > 1 workers, gensim's corpus_file mode "
                   "decays the rate only 1/N of an epoch's worth per epoch (docs/results.md): 1 gives the linear schedule")
    s.add_argument("--seed", type=int, default=1)
    o = ap.add_argument_group("ours only")
    o.add_argument("--config", type=Path, default=None,
                   help="TOML preset for ours (e.g. configs/gpu.toml: batch size, update rule); "
                   "the shared settings above override its keys")
    s.add_argument("--arch", default=None, help="cbow | skipgram (gensim sg=0 | sg=1; default: Config's, cbow)")
    o.add_argument("--loss", default=None,
                   help="softmax | hs | neg | nce | rnce | is (default: Config's, neg); gensim trains hs=1 for hs, "
                   "negative sampling for the others")
    o.add_argument("--batch-size", type=int, default=None,
                   help="examples per SGD step (default: Config's)")
    o.add_argument("--device", default=None,
                   help="auto | cpu | cuda | cuda:N (default: Config's, auto); gensim always runs on the CPU")
    e = ap.add_argument_group("evaluation")
    e.add_argument("--restrict-vocab", type=int, default=30000, help="analogies: only the N most frequent words")
    e.add_argument("--questions", type=Path, default=None, help="analogy questions file")
    e.add_argument("--wordsim", type=Path, default=None, help="WordSim353 pairs file")
    e.add_argument("--simlex", type=Path, default=None, help="SimLex-999 pairs file")
    return ap.parse_args(argv)


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict:
    import torch

    from w2v_nce.train import resolve_device

    if args.max_tokens < 0:
        raise UserError(f"--max-tokens must be 0 (all) or positive, got {args.max_tokens}")
    if not 1 <= args.line_words <= GENSIM_MAX_LINE_WORDS:
        raise UserError(f"--line-words must be in 1..{GENSIM_MAX_LINE_WORDS}, got {args.line_words}")
    if args.restrict_vocab < 1:
        raise UserError(f"--restrict-vocab must be at least 1, got {args.restrict_vocab}")
    cfg = load_config(args.config, {
        "arch": args.arch, "loss": args.loss, "dim": args.dim, "window": args.window, "negatives": args.negatives,
        "sample": args.sample, "min_count": args.min_count, "epochs": args.epochs, "lr": None if args.defaults else args.lr,
        "min_lr_ratio": args.min_lr_ratio, "threads": args.threads, "seed": args.seed,
        "batch_size": args.batch_size, "device": args.device,
    })
    files = eval_files({"analogy": args.questions, "ws353": args.wordsim, "simlex": args.simlex})
    device = str(resolve_device(cfg.device))
    workers = args.gensim_workers or cfg.threads or os.cpu_count() or 1
    gparams = gensim_params(cfg, workers)
    if args.defaults:  # gensim's own default rate, decayed to its own default floor
        gparams.update(alpha=0.025, min_alpha=0.0001)
    machine = machine_info(device)

    arch = "CBOW (sg=0, cbow_mean=1)" if cfg.arch == "cbow" else "skip-gram (sg=1)"
    print(f"settings: {arch}, dim {cfg.dim}, window {cfg.window}, negative {cfg.negatives}, "
          f"sample {cfg.sample:g}, min_count {cfg.min_count}, epochs {cfg.epochs}, alpha {cfg.start_lr:g} -> "
          f"{cfg.start_lr * cfg.min_lr_ratio:g}, threads {cfg.threads or 'all'}, seed {cfg.seed}")
    print(f"  ours:   loss {cfg.loss}, batch_size {cfg.batch_size}, update {cfg.update}, device {device}, torch threads "
          f"{cfg.threads or torch.get_num_threads()}")
    if args.skip_gensim:
        print("  gensim: skipped")
    else:
        print(f"  gensim: Word2Vec corpus_file mode on the CPU, workers {workers}, hs {gparams['hs']}, "
              f"negative {gparams['negative']}, ns_exponent {gparams['ns_exponent']:g}")
    if cfg.loss not in ("neg", "hs"):
        print(f"  note: ours trains with loss {cfg.loss!r}; gensim trains negative sampling")
    gpu = f" ({machine['gpu']})" if machine["gpu"] else ""
    print(f"machine: {machine['cpu_count']} CPUs ({machine['cpus_usable']} usable), {machine['cpu_model']}; "
          f"torch {machine['torch']} on {device}{gpu}; gensim {machine['gensim']} (FAST_VERSION "
          f"{machine['gensim_fast_version']}, corpus_file {machine['gensim_corpusfile_version']}); "
          f"numpy {machine['numpy']}; python {machine['python']}", flush=True)
    if not args.skip_gensim and machine["gensim"] is None:
        raise UserError("gensim is not installed: install it, or run ours alone with --skip-gensim")
    if not args.skip_gensim and machine["gensim_corpusfile_version"] < 0:
        raise UserError("this gensim build has no corpus_file support (gensim.models.word2vec_corpusfile)")

    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-w2v-")))
        else:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        prepared = workdir / "corpus.txt"
        corpus = prepared_corpus(args.corpus, prepared, args.max_tokens, args.line_words)
        print(f"corpus: {args.corpus}" + (f" (first {args.max_tokens:,} tokens)" if args.max_tokens else "")
              + f" -> {corpus['tokens']:,} tokens in {corpus['lines']:,} lines of <= {args.line_words} words",
              flush=True)

        _log("training ours")
        ours_vectors, ours = train_ours(prepared, workdir / "ours", cfg)
        _log(f"ours: {ours['row']['train_seconds']:.1f}s; evaluating")
        ours_row = {**ours["row"], **quality(ours_vectors, files, args.restrict_vocab)}
        del ours_vectors

        gensim_row = gensim_info = cross = None
        if not args.skip_gensim:
            _log("training gensim")
            gensim_vectors, gensim_info = train_gensim(prepared, gparams, workdir / "gensim")
            _log(f"gensim: {gensim_info['row']['train_seconds']:.1f}s; evaluating")
            gensim_row = {**gensim_info["row"], **quality(gensim_vectors, files, args.restrict_vocab)}
            if not args.no_cross_check:
                _log("cross-check: gensim's own evaluation of its vectors")
                cross = gensim_cross_check(gensim_vectors.keyed_vectors(), files, args.restrict_vocab, gensim_row)
            del gensim_vectors

    ratio = ratios(ours_row, gensim_row)
    return {
        "settings": {**dataclasses.asdict(cfg), "device_resolved": device},
        "gensim_params": None if args.skip_gensim else gparams,
        "machine": machine,
        "corpus": {"source": args.corpus, "max_tokens": args.max_tokens, "line_words": args.line_words, **corpus},
        "eval_files": files,
        "restrict_vocab": args.restrict_vocab,
        "rows": [key for key, _, _ in ROWS],
        "ours": ours_row,
        "gensim": gensim_row,
        "ratio": ratio,
        "ours_metrics": ours["metrics"],
        "gensim_details": None if gensim_info is None else gensim_info["details"],
        "cross_check": cross,
        "summary": summary_line(ours_row, gensim_row, ratio),
    }


def report(result: dict) -> str:
    lines = ["", format_table(result["ours"], result["gensim"], result["ratio"])]
    cross = result["cross_check"]
    if cross:
        def same(ok: bool) -> str:
            return "equal" if ok else "DIFFERENT"

        def num(value: Any, kind: str) -> str:
            return _fmt(value, kind) or "n/a"

        lines.append(
            f"cross-check on gensim's vectors, gensim's own evaluation vs ours: analogy "
            f"{num(cross['analogy_accuracy'], 'pct')} ({cross['analogy_answered']} answered) vs "
            f"{num(cross['ours_analogy_accuracy'], 'pct')} ({cross['ours_analogy_answered']}) "
            f"{same(cross['analogy_equal'])}; WS353 {num(cross['ws353_spearman'], 'f4')} vs "
            f"{num(cross['ours_ws353_spearman'], 'f4')} {same(cross['ws353_equal'])}; SimLex "
            f"{num(cross['simlex_spearman'], 'f4')} vs {num(cross['ours_simlex_spearman'], 'f4')} "
            f"{same(cross['simlex_equal'])}"
        )
    lines.append(result["summary"])
    return "\n".join(lines)


def script_main(run: Callable[[], dict], report: Callable[[dict], str] | None, json_path: Path | None,
                after: Callable[[dict], None] | None = None) -> int:
    """A benchmark script's end: run it, print its report (if it has one apart from what it printed
    as it went), write its JSON (atomically), then `after` (a plot); bad input is one `error:` line
    and exit status 2."""
    try:
        result = _clean(run())
        if report is not None:
            print(report(result), flush=True)
        if json_path is not None:
            write_text(json_path, json.dumps(result, indent=2, allow_nan=False) + "\n")
            _log(f"wrote {json_path}")
        if after is not None:
            after(result)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return script_main(lambda: run(args), report, args.json)


if __name__ == "__main__":
    sys.exit(main())
