#!/usr/bin/env python
"""Measure growing a model (issue 20): continue on new text, start from vectors, stop early.

Four measurements, each chosen with --measure (default: the first three, the issue's):

  halves        wiki65m cut into a first and a second half at a line end; ours trained on the
                first, then continued on the second with --update-vocab (`train --init`), against
                one run on the whole (the same passes over the same words) and a fresh run on the
                second half alone; gensim's build_vocab(update=True) + train on the same halves
                (and its run on the whole) side by side. Analogy (restrict 30k), WS353, SimLex,
                and the rank check of the second-half-only words (words the first half's run does
                not have): the nearest neighbour a word has in the run on the whole ranks in the
                top --rank-top of its neighbours in the model checked (both over the words all
                compared models have; --rank-words of them, a seeded sample).
  init-vectors  vectors from a wiki65m run, then --epochs-target (1) epoch of wiki17m: with
                --init-vectors, with --init-vectors --lock-init, and from a cold start. wiki17m
                is wiki65m's first 17M tokens, so the source run trains on the rest of wiki65m
                (with --max-tokens N: wiki65m's tokens N..2N); the halves' run on all of wiki65m,
                when --workdir has it, is a second source; --init-from FILE replaces both.
  early-stop    wiki17m without its last --heldout-tokens tokens (the held-out text) at lr
                --stop-lr (0.05) for up to --max-epochs (20) with --heldout --patience: which
                epoch it keeps, and its quality against the default run (5 epochs).
  hs-inner      what a continued hs run's inner-node rows should start from when --update-vocab
                reshapes the Huffman tree, on a slice of wiki65m (--max-tokens, default 2M, in
                halves, and a tenth more held out): zeros (w2v_nce.grow.carry_over's choice), the
                row of the old node that made the same decision (same_decision_rows), or gensim's
                rows by index; the held-out cross-entropy of the continued model before it trains
                (an epoch at lr 1e-30 moves nothing) and after --epochs, with the quality.

Every corpus is prepared once into --workdir (lines of at most 1,000 words, as
scripts/bench_vs_gensim.py makes them) and reused. --max-tokens N keeps the first N tokens of each
source (wiki65m, wiki17m) for a quick run: the smoke test uses ~1M. Everything runs in this
process, ours through w2v_nce.train.train, gensim through its Python API with --threads workers.

Usage (the issue's measurements, on the full corpora; the lead runs them):
  python scripts/bench_grow.py --measure halves --epochs 1 --workdir runs/grow --json runs/grow/halves.json
  python scripts/bench_grow.py --measure init-vectors --workdir runs/grow --json runs/grow/init.json
  python scripts/bench_grow.py --measure early-stop --workdir runs/grow --json runs/grow/stop.json
  python scripts/bench_grow.py --measure hs-inner --max-tokens 2000000 --workdir runs/hs --json runs/hs.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

import bench_vs_gensim as bench  # scripts/, beside this file
from w2v_nce.config import Config, load_config
from w2v_nce.errors import UserError
from w2v_nce.vectors import Vectors, load_word2vec
from w2v_nce.vocab import HuffmanTree

WIKI65M = bench.SHARED / "corpora" / "wiki65m.txt.gz"
WIKI17M = bench.SHARED / "corpora" / "wiki17m.txt.gz"
MEASURES = ("halves", "init-vectors", "early-stop", "hs-inner")


def _log(message: str) -> None:
    print(f"[grow] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- corpora


def prepared(source: Path, workdir: Path, name: str, max_tokens: int) -> Path:
    """`source` as lines of at most 1,000 words in workdir/NAME.txt (made once per source and size)."""
    target = workdir / f"{name}.txt"
    bench.prepared_corpus(source, target, max_tokens)
    return target


def split_lines(corpus: Path, parts: dict[str, float], workdir: Path) -> dict[str, Path]:
    """`corpus` cut at line ends into consecutive files whose shares of the tokens are `parts`."""
    total = sum(len(line.split()) for line in open(corpus, encoding="utf-8"))
    paths = {name: workdir / f"{corpus.stem}.{name}.txt" for name in parts}
    names, bounds, acc = list(parts), [], 0.0
    for share in parts.values():
        acc += share
        bounds.append(acc * total)
    outs = [open(paths[n], "w", encoding="utf-8") for n in names]
    seen, part = 0, 0
    try:
        for line in open(corpus, encoding="utf-8"):
            while part < len(names) - 1 and seen >= bounds[part]:
                part += 1
            outs[part].write(line)
            seen += len(line.split())
    finally:
        for out in outs:
            out.close()
    for name in names:
        if paths[name].stat().st_size == 0:
            raise UserError(f"corpus '{corpus}' is too small to cut into {', '.join(names)}")
    return paths


# --------------------------------------------------------------------------- training


def train_ours(corpus: Path | list[Path], out_dir: Path, cfg: Config, **kwargs) -> tuple[Vectors, dict]:
    from w2v_nce.train import train

    metrics = train(corpus, out_dir, cfg, progress_bar=False, **kwargs)
    return load_word2vec(out_dir / "vectors.txt"), metrics


def train_gensim(halves: list[Path], params: dict, out_dir: Path) -> dict[str, Vectors]:
    """gensim on the first file, then build_vocab(update=True) and train on each next one: the
    vectors after each stage."""
    from gensim.models import Word2Vec

    model = Word2Vec(**params)
    stages = {}
    for i, path in enumerate(halves):
        model.build_vocab(corpus_file=str(path), update=i > 0)
        model.train(corpus_file=str(path), total_examples=model.corpus_count, total_words=model.corpus_total_words,
                    epochs=params["epochs"])
        out = out_dir / f"stage{i}.txt"
        out_dir.mkdir(parents=True, exist_ok=True)
        model.wv.save_word2vec_format(str(out))
        stages[path.stem] = load_word2vec(out)
    return stages


def rank_check(models: dict[str, Vectors], reference: str, words: list[str], top: int, sample: int,
               seed: int = 0) -> dict[str, dict]:
    """For `words` that every model has (a seeded sample of `sample`): the rank of a word's nearest
    neighbour in `reference` among its neighbours in each model, all over the words every model
    has. Returns per model the words checked, how many rank below `top`, and the median rank."""
    shared = set.intersection(*(set(v.words) for v in models.values()))
    checked = sorted(w for w in words if w in shared)
    if len(checked) > sample:
        checked = sorted(np.random.default_rng(seed).choice(checked, sample, replace=False).tolist())
    vocab = sorted(shared)
    if not checked:
        return {name: {"words": 0, "sensible": 0, "share": None, "median_rank": None} for name in models}

    def unit(v: Vectors) -> np.ndarray:
        m = v.matrix[[v.index[w] for w in vocab]]
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)

    at = {w: i for i, w in enumerate(vocab)}
    rows = np.array([at[w] for w in checked])
    ref = unit(models[reference])
    sims = ref[rows] @ ref.T
    sims[np.arange(len(rows)), rows] = -np.inf
    nearest = sims.argmax(1)
    out = {}
    for name, vectors in models.items():
        m = unit(vectors)
        sims = m[rows] @ m.T
        sims[np.arange(len(rows)), rows] = -np.inf
        ranks = (sims > sims[np.arange(len(rows)), nearest][:, None]).sum(1)
        out[name] = {"words": len(checked), "sensible": int((ranks < top).sum()),
                     "share": float((ranks < top).mean()), "median_rank": float(np.median(ranks))}
    return out


def row(vectors: Vectors, files: dict, metrics: dict | None = None) -> dict:
    out = {"vocab_size": len(vectors), **bench.quality(vectors, files, 30000)}
    if metrics is not None:
        out.update(seconds=metrics["seconds"], words=metrics["words"], epochs=metrics["epochs"])
    return out


# --------------------------------------------------------------------------- measurements


def measure_halves(args, cfg: Config, files: dict, workdir: Path) -> dict:
    whole = prepared(WIKI65M if args.wiki65m is None else args.wiki65m, workdir, "wiki65m", args.max_tokens)
    halves = split_lines(whole, {"first": 0.5, "second": 0.5}, workdir)
    first, second = halves["first"], halves["second"]
    runs, vectors = {}, {}
    for name, corpus, kwargs in (("ours_first_half", first, {}),
                                 ("ours_continued", second, {"init": workdir / "ours_first_half",
                                                             "update_vocab": True}),
                                 ("ours_whole", whole, {}),
                                 ("ours_second_half_only", second, {})):
        _log(f"training {name}")
        vectors[name], metrics = train_ours(corpus, workdir / name, cfg, **kwargs)
        runs[name] = row(vectors[name], files, metrics)
    if not args.skip_gensim:
        params = bench.gensim_params(cfg, cfg.threads or 1)
        _log("training gensim on the halves (build_vocab(update=True) for the second)")
        stages = train_gensim([first, second], params, workdir / "gensim_halves")
        vectors["gensim_continued"] = stages[second.stem]
        runs["gensim_continued"] = row(vectors["gensim_continued"], files)
        _log("training gensim on the whole")
        vectors["gensim_whole"] = train_gensim([whole], params, workdir / "gensim_whole")[whole.stem]
        runs["gensim_whole"] = row(vectors["gensim_whole"], files)
    new_words = [w for w in vectors["ours_continued"].words if w not in vectors["ours_first_half"].index]
    checked = {k: v for k, v in vectors.items() if k != "ours_first_half" and k != "gensim_whole"}
    ranks = rank_check(checked, "ours_whole", new_words, args.rank_top, args.rank_words)
    if "gensim_whole" in vectors:  # gensim's continued run against gensim's own run on the whole
        ranks["gensim_continued_vs_gensim_whole"] = rank_check(
            {k: vectors[k] for k in ("gensim_whole", "gensim_continued")}, "gensim_whole", new_words,
            args.rank_top, args.rank_words)["gensim_continued"]
    return {"corpus": str(whole), "halves": {k: str(v) for k, v in halves.items()}, "runs": runs,
            "second_half_only_words": len(new_words), "rank_check": ranks, "rank_top": args.rank_top}


def measure_init_vectors(args, cfg: Config, files: dict, workdir: Path) -> dict:
    target = prepared(WIKI17M if args.wiki17m is None else args.wiki17m, workdir, "wiki17m", args.max_tokens)
    target_tokens = sum(len(line.split()) for line in open(target, encoding="utf-8"))
    sources = {}
    if args.init_from is not None:
        sources["given"] = args.init_from
    else:  # wiki17m is wiki65m's first 17M tokens: the source run trains on the rest of wiki65m
        whole = prepared(WIKI65M if args.wiki65m is None else args.wiki65m, workdir, "wiki65m_source",
                         2 * args.max_tokens if args.max_tokens else 0)
        rest = after_tokens(whole, target_tokens, workdir / "wiki65m_after_target.txt")
        sources["wiki65m_rest"] = workdir / "source_wiki65m_rest" / "vectors.txt"
        if not sources["wiki65m_rest"].is_file():
            _log(f"training the source run on {rest} (wiki65m after the target's {target_tokens:,} tokens)")
            train_ours(rest, workdir / "source_wiki65m_rest", cfg)
        if (workdir / "ours_whole" / "vectors.txt").is_file():  # the halves' run on all of wiki65m, target included
            sources["wiki65m_whole"] = workdir / "ours_whole" / "vectors.txt"
    one = dataclasses.replace(cfg, epochs=args.epochs_target)
    plans = [("cold_start", {})]
    for name, path in sources.items():
        plans += [(f"init_{name}", {"init_vectors": str(path)}),
                  (f"init_{name}_locked", {"init_vectors": str(path), "lock_init": True})]
    runs = {}
    for name, extra in plans:
        _log(f"training {name} on {target}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            vectors, metrics = train_ours(target, workdir / f"target_{name}", dataclasses.replace(one, **extra))
        runs[name] = {**row(vectors, files, metrics), "frozen_rows": metrics["frozen_rows"],
                      "warnings": [str(w.message) for w in caught]}
    return {"sources": {k: str(v) for k, v in sources.items()}, "target": str(target), "target_tokens": target_tokens,
            "epochs": args.epochs_target, "runs": runs}


def after_tokens(corpus: Path, skip: int, target: Path) -> Path:
    """The lines of `corpus` after its first `skip` tokens (from the first line end past them)."""
    seen = 0
    with open(corpus, encoding="utf-8") as lines, open(target, "w", encoding="utf-8") as out:
        for line in lines:
            if seen >= skip:
                out.write(line)
            seen += len(line.split())
    if target.stat().st_size == 0:
        raise UserError(f"'{corpus}' has no text after its first {skip:,} tokens")
    return target


def measure_early_stop(args, cfg: Config, files: dict, workdir: Path) -> dict:
    corpus = prepared(WIKI17M if args.wiki17m is None else args.wiki17m, workdir, "wiki17m", args.max_tokens)
    total = sum(len(line.split()) for line in open(corpus, encoding="utf-8"))
    share = min(0.5, args.heldout_tokens / max(total, 1))
    parts = split_lines(corpus, {"train": 1 - share, "heldout": share}, workdir)
    runs = {}
    stop_cfg = dataclasses.replace(cfg, lr=args.stop_lr, epochs=args.max_epochs, heldout=str(parts["heldout"]),
                                   patience=args.patience, eval_each_epoch=args.eval_each_epoch)
    _log(f"training early_stop (lr {args.stop_lr}, up to {args.max_epochs} epochs, patience {args.patience})")
    vectors, metrics = train_ours(parts["train"], workdir / "early_stop", stop_cfg)
    runs["early_stop"] = {**row(vectors, files, metrics), "best_epoch": metrics["best_epoch"],
                          "stopped": metrics["stopped"], "history": metrics["history"]}
    default = dataclasses.replace(cfg, epochs=5, heldout=str(parts["heldout"]))  # held-out loss recorded, no stop
    _log("training default_5_epochs")
    default_run = workdir / "default_5_epochs"
    _, metrics = train_ours(parts["train"], default_run, default)
    last = Vectors(*_last_vectors(default_run))  # the 5th epoch's (vectors.txt holds the best)
    runs["default_5_epochs"] = {**row(last, files, metrics), "best_epoch": metrics["best_epoch"],
                                "history": metrics["history"]}
    return {"train": str(parts["train"]), "heldout": str(parts["heldout"]), "runs": runs}


def _last_vectors(run: Path) -> tuple[list[str], np.ndarray]:
    from w2v_nce.checkpoint import CHECKPOINT, load_checkpoint

    state = load_checkpoint(run / CHECKPOINT)
    return list(state["words"]), state["model"]["inp"].numpy()


# hs inner nodes: the alternatives to zero rows (w2v_nce.grow.carry_over's choice), measured by
# measure_hs_inner; each maps (old tree, new tree, old id of each new word) to (new rows, old rows, signs).


def gensim_rows_by_index(old, new, old_word):
    """gensim's choice (update_weights): inner node i keeps old row i, the rows past them zero."""
    n = min(len(old.lengths), len(new.lengths)) - 1
    return np.arange(n), np.arange(n), np.ones(n, dtype=np.float32)


def tree_links(tree: HuffmanTree) -> tuple[np.ndarray, np.ndarray]:
    """(parent, bit) of every node of `tree`: words are nodes 0..V-1, inner node row r is node V + r
    (the root, 2V - 2, has parent -1); bit is the code of the turn from the parent (1: right).

    >>> parent, bit = tree_links(HuffmanTree.from_counts(np.array([5, 3, 2, 1])))
    >>> parent.tolist(), bit.tolist()
    ([6, 5, 4, 4, 5, 6, -1], [0, 0, 1, 0, 1, 1, 0])
    """
    v = len(tree.lengths)
    parent = np.full(2 * v - 1, -1, dtype=np.int64)
    bit = np.zeros(2 * v - 1, dtype=np.int64)
    words = np.arange(v)
    last = tree.lengths - 1
    parent[:v], bit[:v] = v + tree.points[words, last], tree.codes[words, last]
    for j in range(1, tree.points.shape[1]):  # along each path, node j hangs below node j - 1
        live = tree.lengths > j
        parent[v + tree.points[live, j]] = v + tree.points[live, j - 1]
        bit[v + tree.points[live, j]] = tree.codes[live, j - 1]
    return parent, bit


def same_decision_rows(old: HuffmanTree, new: HuffmanTree, old_word: np.ndarray) -> tuple[np.ndarray, ...]:
    """The measured alternative to zero rows: which old inner node's row each new inner node
    takes, as (new rows, old rows, signs ±1).

    A new node n splits the old words below it into those on its left (L) and on its right (R).
    In the old tree let m be the lowest node above all of L ∪ R. When L lies wholly below one
    child of m and R below the other, m's row made the same decision between them: n takes it,
    negated when L lies on m's right (a row scores the left turn, code 0). Otherwise (no old word
    on one side, or one side reaching both children of m) n has no counterpart and keeps its
    fresh zero row. The same tree maps every node to itself. `old_word[w]` is new word w's id
    in the old tree, -1 for a word the old tree lacks.

    >>> tree = HuffmanTree.from_counts(np.array([5, 3, 2, 1]))
    >>> [a.tolist() for a in same_decision_rows(tree, tree, np.arange(4))]
    [[0, 1, 2], [0, 1, 2], [1.0, 1.0, 1.0]]
    """
    old_parent, old_bit = tree_links(old)
    new_parent, new_bit = tree_links(new)
    v_old, v_new = len(old.lengths), len(new.lengths)
    depth = np.zeros(2 * v_old - 1, dtype=np.int64)
    for node in range(2 * v_old - 3, -1, -1):  # a parent is made after its children: higher ids
        depth[node] = depth[old_parent[node]] + 1
    children = np.zeros((2 * v_new - 1, 2), dtype=np.int64)
    children[new_parent[:-1], new_bit[:-1]] = np.arange(2 * v_new - 2)
    below = np.full(2 * v_new - 1, -1, dtype=np.int64)  # the old node lowest above a new node's old words
    below[:v_new] = old_word
    rows, sources, signs = [], [], []
    op, dp = old_parent.tolist(), depth.tolist()  # plain lists: the walks below index them one by one
    for node in range(v_new, 2 * v_new - 1):  # children before parents
        a, b = (int(below[c]) for c in children[node])
        if a < 0 or b < 0:
            below[node] = max(a, b)
            continue
        x, y = a, b
        while dp[x] > dp[y]:
            x = op[x]
        while dp[y] > dp[x]:
            y = op[y]
        if x == y:  # one side reaches both children of x
            below[node] = x
            continue
        while op[x] != op[y]:
            x, y = op[x], op[y]
        below[node] = op[x]
        rows.append(node - v_new)
        sources.append(op[x] - v_old)
        signs.append(1.0 if old_bit[x] == 0 else -1.0)
    return (np.array(rows, dtype=np.int64), np.array(sources, dtype=np.int64), np.array(signs, dtype=np.float32))



def carrying_inner_rows(mapping):
    """w2v_nce.grow.carry_over, then the inner rows of a reshaped tree by `mapping` instead of zeros."""
    from w2v_nce import grow

    def carry(model, objective, parent, vocab):
        carried = grow.carry_over(model, objective, parent, vocab)
        if len(model.out) != len(vocab) and not grow.same_tree(parent.vocab, vocab):
            old_word = np.array([parent.vocab.index.get(w, -1) for w in vocab.words])
            rows, sources, signs = (torch.from_numpy(a) for a in mapping(
                HuffmanTree.from_counts(parent.vocab.counts), HuffmanTree.from_counts(vocab.counts), old_word))
            model.out[rows] = parent.model.out[sources] * signs[:, None]
        return carried

    return carry


def measure_hs_inner(args, cfg: Config, files: dict, workdir: Path) -> dict:
    from w2v_nce.diagnose import HeldOut
    from w2v_nce.checkpoint import CHECKPOINT, load_checkpoint, load_model

    tokens = args.max_tokens or 2_000_000
    source = prepared(WIKI65M if args.wiki65m is None else args.wiki65m, workdir, "hs_slice", tokens + tokens // 10)
    parts = split_lines(source, {"first": 0.455, "second": 0.455, "heldout": 0.09}, workdir)
    hs = dataclasses.replace(cfg, loss="hs")
    _log("training the hs parent on the first part")
    train_ours(parts["first"], workdir / "hs_parent", hs)
    from w2v_nce import train as train_module

    maps = {"zero": None, "same_decision": same_decision_rows, "gensim_by_index": gensim_rows_by_index}
    original, runs = train_module.carry_over, {}

    def heldout(run: Path) -> float:
        loaded = load_model(load_checkpoint(run / CHECKPOINT))
        measure = HeldOut(parts["heldout"], loaded.vocab, loaded.objective, hs.window, hs.arch, hs.tokenizer,
                          args.heldout_examples)
        return measure.loss(loaded.model, loaded.objective)

    try:
        for name, mapping in maps.items():
            train_module.carry_over = original if mapping is None else carrying_inner_rows(mapping)
            _log(f"continuing with inner rows: {name}")
            start = workdir / f"hs_{name}_start"  # an epoch at lr 1e-30: the continued model as it starts
            train_ours(parts["second"], start, dataclasses.replace(hs, lr=1e-30, epochs=1), init=workdir / "hs_parent",
                       update_vocab=True)
            vectors, metrics = train_ours(parts["second"], workdir / f"hs_{name}", hs, init=workdir / "hs_parent",
                                          update_vocab=True)
            runs[name] = {**row(vectors, files, metrics), "heldout_start": heldout(start),
                          "heldout_trained": heldout(workdir / f"hs_{name}")}
    finally:
        train_module.carry_over = original
    parent, child = (load_checkpoint(workdir / run / CHECKPOINT) for run in ("hs_parent", "hs_zero"))
    index = {w: i for i, w in enumerate(parent["words"])}
    old_word = np.array([index.get(w, -1) for w in child["words"]])
    trees = [HuffmanTree.from_counts(state["counts"].numpy()) for state in (parent, child)]
    clock = time.perf_counter()
    mapped = same_decision_rows(*trees, old_word)
    return {"parts": {k: str(v) for k, v in parts.items()}, "runs": runs, "parent_heldout": heldout(workdir / "hs_parent"),
            "inner_nodes": len(child["words"]) - 1, "inner_nodes_mapped": len(mapped[0]),
            "map_seconds": round(time.perf_counter() - clock, 3), "heldout_examples": args.heldout_examples}


# --------------------------------------------------------------------------- report


def report(name: str, result: dict) -> str:
    cols = ("vocab_size", "analogy_accuracy", "ws353_spearman", "simlex_spearman")
    lines = [f"\n## {name}", "| run | " + " | ".join(cols) + " | other |", "|---" * (len(cols) + 2) + "|"]
    for run, values in result["runs"].items():
        other = {k: v for k, v in values.items() if k in ("best_epoch", "stopped", "frozen_rows", "heldout_start",
                                                          "heldout_trained", "epochs")}
        cells = [_fmt(values.get(c)) for c in cols]
        lines.append(f"| {run} | " + " | ".join(cells) + f" | {json.dumps(other) if other else ''} |")
    if "rank_check" in result:
        lines.append(f"rank check of {result['second_half_only_words']:,} second-half-only words "
                     f"(nearest neighbour in ours_whole within the top {result['rank_top']}):")
        for run, r in result["rank_check"].items():
            lines.append(f"  {run}: {r['sensible']}/{r['words']} ({_fmt(r['share'])}), median rank {r['median_rank']}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--measure", action="append", choices=MEASURES, default=None,
                    help="what to measure (repeat; default: halves, init-vectors, early-stop)")
    ap.add_argument("--wiki65m", type=Path, default=None, help=f"the halves' corpus (default {WIKI65M})")
    ap.add_argument("--wiki17m", type=Path, default=None, help=f"the target corpus (default {WIKI17M})")
    ap.add_argument("--max-tokens", type=int, default=0, help="keep the first N tokens of each corpus (0: all)")
    ap.add_argument("--workdir", type=Path, default=None, help="corpora and runs (default: a temp dir, removed)")
    ap.add_argument("--json", type=Path, default=None, help="write all numbers here")
    ap.add_argument("--skip-gensim", action="store_true")
    s = ap.add_argument_group("training (ours and gensim)")
    s.add_argument("--arch", default="cbow")
    s.add_argument("--loss", default="neg")
    s.add_argument("--dim", type=int, default=100)
    s.add_argument("--sample", type=float, default=1e-3)
    s.add_argument("--epochs", type=int, default=1, help="epochs of each run (halves: of each half)")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--seed", type=int, default=1)
    m = ap.add_argument_group("measurements")
    m.add_argument("--rank-top", type=int, default=10)
    m.add_argument("--rank-words", type=int, default=2000)
    m.add_argument("--init-from", type=Path, default=None, help="init-vectors: the vectors file to start from")
    m.add_argument("--epochs-target", type=int, default=1, help="init-vectors: epochs on the target")
    m.add_argument("--stop-lr", type=float, default=0.05)
    m.add_argument("--max-epochs", type=int, default=20)
    m.add_argument("--patience", type=int, default=3)
    m.add_argument("--heldout-tokens", type=int, default=200_000)
    m.add_argument("--heldout-examples", type=int, default=5_000)
    m.add_argument("--eval-each-epoch", action="store_true", help="early-stop: analogy and WS353 after every epoch")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    if args.max_tokens < 0:
        raise UserError(f"--max-tokens must be 0 (all) or positive, got {args.max_tokens}")
    cfg = load_config(None, {"arch": args.arch, "loss": args.loss, "dim": args.dim, "epochs": args.epochs,
                             "sample": args.sample,
                             "threads": args.threads, "seed": args.seed, "device": "cpu",
                             "heldout_examples": args.heldout_examples})
    files = bench.eval_files({})
    measures = args.measure or list(MEASURES[:3])
    result: dict[str, Any] = {"settings": dataclasses.asdict(cfg), "machine": bench.machine_info("cpu"),
                              "max_tokens": args.max_tokens}
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-grow-")))
        workdir.mkdir(parents=True, exist_ok=True)
        for name in measures:
            fn = {"halves": measure_halves, "init-vectors": measure_init_vectors, "early-stop": measure_early_stop,
                  "hs-inner": measure_hs_inner}[name]
            start = time.perf_counter()
            result[name] = fn(args, cfg, files, workdir)
            result[name]["seconds"] = round(time.perf_counter() - start, 1)
            print(report(name, result[name]), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return bench.script_main(lambda: run(args), None, args.json)


if __name__ == "__main__":
    sys.exit(main())
