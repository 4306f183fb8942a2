"""diagnose: held-out cross-entropy and log Z statistics against explicit Python loops on a
hand-built checkpoint; and trained models against the uniform baseline."""

from __future__ import annotations

import dataclasses
import math
import random
import statistics

import numpy as np
import pytest
import torch

from conftest import write_twin_corpus
from w2v_nce.config import Config, load_config
from w2v_nce.diagnose import diagnose
from w2v_nce.errors import UserError
from w2v_nce.objectives import LOSSES
from w2v_nce.checkpoint import load_checkpoint
from w2v_nce.train import train

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "a", "red", "hat"]


def make_state(loss="nce", window=2, dim=4, bias=True, log_z=None, seed=0, arch="cbow", buckets=0):
    gen = torch.Generator().manual_seed(seed)
    cfg = Config(arch=arch, loss=loss, window=window, dim=dim, output_bias=bias, min_count=1,
                 **(dict(maxn=5, buckets=buckets) if buckets else {}))
    rows = len(WORDS) - 1 if loss == "hs" else len(WORDS)  # hs: the inner nodes
    model = {
        "inp": torch.randn(len(WORDS) + buckets, dim, generator=gen),
        "out": torch.randn(rows, dim, generator=gen),
        "bias": torch.randn(rows, generator=gen) if bias else None,
    }
    state = {
        "config": dataclasses.asdict(cfg),
        "words": list(WORDS),
        "counts": torch.arange(len(WORDS), 0, -1, dtype=torch.int64) * 10,
        "model": model,
        "objective": {} if log_z is None else {"log_z": log_z},
    }
    return state


def write_heldout(path, seed=0, lines=12):
    rng = random.Random(seed)
    text = []
    for _ in range(lines):
        length = rng.choice([0, 1, 2, 3, 5, 8, 13])
        # some out-of-vocabulary tokens, which are dropped before windows are taken
        text.append(" ".join(rng.choice(WORDS + ["OOV", "zzz"]) for _ in range(length)))
    path.write_text("\n".join(text) + "\n", encoding="utf-8")


def brute_force(state, heldout_path, max_examples=None):
    """Explicit loops: every in-vocabulary word, context = in-vocabulary words within `window`
    in the same line (itself excluded); no context, no example. CBOW: one example, h the mean
    of the context; skip-gram: one example per context word, h its vector. Softmax over every
    word's score, or for hs the product of σ(±s) along the word's path in gensim's tree. With
    subwords a word is its row and its n-grams' (gensim's hashes), and skip-gram's centre word is
    the input of each pair, a context word its target (fastText)."""
    from gensim.models.fasttext import ft_ngram_hashes

    cfg = state["config"]
    window = state["config"]["window"]
    arch, loss = state["config"]["arch"], state["config"]["loss"]
    index = {w: i for i, w in enumerate(state["words"])}
    inp = state["model"]["inp"].double().tolist()
    out = state["model"]["out"].double().tolist()
    bias = state["model"]["bias"]
    bias = [0.0] * len(index) if bias is None else bias.double().tolist()
    model_log_z = state["objective"].get("log_z", 0.0)
    if loss == "hs":
        tree = _gensim_tree(state["words"], state["counts"].tolist())
    ce, log_zs, unnorm = [], [], []
    for line in heldout_path.read_text(encoding="utf-8").split("\n"):
        ids = [index[t] for t in line.split() if t in index]
        for i, target in enumerate(ids):
            context = [ids[j] for j in range(i - window, i + window + 1) if j != i and 0 <= j < len(ids)]
            if not context:
                continue
            bags = [(context, target)] if arch == "cbow" else [([c], target) for c in context]
            if cfg["maxn"] and arch == "skipgram":
                bags = [([target], c) for c in context]
            for words, target in bags:
                bag = words
                if cfg["maxn"]:
                    bag = [r for w in words for r in [w] + [len(index) + int(b) for b in ft_ngram_hashes(
                        state["words"][w], cfg["minn"], cfg["maxn"], cfg["buckets"])]]
                dim = len(inp[0])
                h = [sum(inp[c][d] for c in bag) / len(bag) for d in range(dim)]
                s = [sum(h[d] * out[v][d] for d in range(dim)) + bias[v] for v in range(len(out))]
                if loss == "hs":
                    code, point = tree[target]
                    log_z, log_p = 0.0, sum(-math.log1p(math.exp(s[n] if c else -s[n])) for c, n in zip(code, point))
                else:
                    top = max(s)
                    log_z = top + math.log(math.fsum(math.exp(x - top) for x in s))
                    log_p = s[target] - log_z
                ce.append(-log_p)
                log_zs.append(log_z)
                unnorm.append(model_log_z - (log_p + log_z))
    if max_examples is not None:
        ce, log_zs, unnorm = ce[:max_examples], log_zs[:max_examples], unnorm[:max_examples]
    return {
        "examples": len(ce),
        "cross_entropy": statistics.fmean(ce),
        "perplexity": math.exp(statistics.fmean(ce)),
        "log_z_mean": statistics.fmean(log_zs),
        "log_z_std": statistics.stdev(log_zs) if len(log_zs) > 1 else 0.0,  # sample std (n - 1)
        "unnormalized_cross_entropy": statistics.fmean(unnorm),
        "model_log_z": model_log_z,
    }


def _gensim_tree(words, counts):
    """gensim's Huffman codes and points (an independent oracle for ours)."""
    from gensim.models import Word2Vec

    model = Word2Vec(vector_size=4, min_count=1, hs=1, negative=0)
    model.build_vocab_from_freq(dict(zip(words, counts)))
    return [(list(model.wv.get_vecattr(w, "code")), list(model.wv.get_vecattr(w, "point"))) for w in words]


@pytest.mark.parametrize(
    "loss,window,bias,log_z,batch_size,arch,buckets",
    [(*row, 0) for row in [
        ("nce", 2, True, 1.3, 1024, "cbow"),
        ("nce", 1, True, None, 3, "cbow"),
        ("neg", 3, False, None, 7, "cbow"),
        ("softmax", 2, True, None, 1, "cbow"),
        ("rnce", 5, True, None, 16, "cbow"),
        ("is", 2, False, None, 1024, "cbow"),
        ("hs", 2, False, None, 5, "cbow"),
        ("hs", 3, False, None, 1024, "skipgram"),
        ("neg", 2, False, None, 7, "skipgram"),
        ("nce", 2, True, 0.4, 1024, "skipgram"),
    ]] + [("nce", 2, True, None, 16, "cbow", 13), ("hs", 2, False, None, 5, "skipgram", 17),
          ("neg", 3, False, None, 1024, "skipgram", 11)],
)
def test_diagnose_matches_brute_force(tmp_path, loss, window, bias, log_z, batch_size, arch, buckets):
    state = make_state(loss=loss, window=window, bias=bias, log_z=log_z, seed=window, arch=arch, buckets=buckets)
    heldout = tmp_path / "heldout.txt"
    write_heldout(heldout, seed=window)
    got = diagnose(state, heldout, batch_size=batch_size)
    expected = brute_force(state, heldout)
    assert expected["examples"] > 20
    assert got.loss == loss and got.arch == arch and got.examples == expected["examples"]
    for key in ("cross_entropy", "perplexity", "log_z_mean", "log_z_std", "unnormalized_cross_entropy",
                "model_log_z"):
        assert getattr(got, key) == pytest.approx(expected[key], rel=1e-6, abs=1e-6), key


def test_diagnose_max_examples_takes_the_first_examples(tmp_path):
    state = make_state(window=2, log_z=-0.5)
    heldout = tmp_path / "heldout.txt"
    # one long line, so that examples are not limited by sentence ends
    rng = random.Random(5)
    heldout.write_text(" ".join(rng.choice(WORDS) for _ in range(200)) + "\n", encoding="utf-8")
    got = diagnose(state, heldout, max_examples=37, batch_size=8)
    expected = brute_force(state, heldout, max_examples=37)
    assert got.examples == 37
    for key in ("cross_entropy", "log_z_mean", "log_z_std", "unnormalized_cross_entropy"):
        assert getattr(got, key) == pytest.approx(expected[key], rel=1e-6, abs=1e-6), key


def test_diagnose_uses_max_examples_when_available(tmp_path):
    state = make_state(window=2)
    heldout = tmp_path / "heldout.txt"
    rng = random.Random(1)
    heldout.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(10)) for _ in range(50)) + "\n")
    assert brute_force(state, heldout)["examples"] == 500
    got = diagnose(state, heldout, max_examples=300)
    assert got.examples == 300


def test_diagnose_after_many_one_word_lines(tmp_path):
    state = make_state(window=2)
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("cat\n" * 30 + "the cat sat on the mat\n" * 10)
    expected = brute_force(state, heldout, max_examples=20)
    assert expected["examples"] == 20
    got = diagnose(state, heldout, max_examples=20)
    assert got.examples == 20
    assert got.cross_entropy == pytest.approx(expected["cross_entropy"], rel=1e-6)


def test_diagnose_errors(tmp_path):
    state = make_state()
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("OOV zzz\nzzz\n")
    # (the message says "no word with a context": every line still yields a sentence end)
    with pytest.raises(UserError, match="unknown.txt"):
        diagnose(state, unknown)
    lonely = tmp_path / "lonely.txt"
    lonely.write_text("cat\ndog zzz\nhat\n")
    with pytest.raises(UserError, match="no word with a context"):
        diagnose(state, lonely)
    with pytest.raises(UserError, match="does not exist"):
        diagnose(state, tmp_path / "missing.txt")


# --------------------------------------------------------------------------- trained models


@pytest.fixture(scope="module")
def twin_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("diag")
    corpus, heldout = root / "train.txt", root / "heldout.txt"
    write_twin_corpus(corpus, seed=0)
    write_twin_corpus(heldout, seed=0, sentences=300)  # same chain (same seed), new draws after
    return root, corpus, heldout


def _params(loss):
    if loss == "is":
        return pytest.param(loss, marks=pytest.mark.xfail(
            strict=True,
            reason="objectives.py ImportanceSampling: log Ẑ excludes the target, so the target's "
            "gradient is a constant -1 and the loss is unbounded below; scores run away (held-out "
            "log Z ~100-250, cross-entropy 25-110 nats vs 4.38 for uniform)"))
    return loss


@pytest.mark.parametrize("loss", [_params(name) for name in LOSSES])
def test_trained_model_beats_uniform_on_heldout(twin_files, loss):
    """Calibrated over 4 seeds x 3 corpora: softmax ~2.3, neg/rnce ~2.9, nce ~3.0 nats vs
    log 80 = 4.38 for the uniform model (and 4.30-4.38 for any model after one epoch). Batch 1024:
    with 80 words every row is hit ~300 times in a batch of 4096, which the default cap of 64
    damps to a fifth, and 30k tokens give only ~20 such steps."""
    root, corpus, heldout = twin_files
    cfg = load_config(None, dict(loss=loss, dim=24, epochs=3, threads=1, min_count=1, window=2, sample=0.0,
                                  device="cpu", batch_size=1024))
    train(corpus, root / loss, cfg, progress_bar=False)
    got = diagnose(load_checkpoint(root / loss / "checkpoint.pt"), heldout)
    assert got.examples == 3000
    assert got.cross_entropy < math.log(80) - 1.0
    if loss == "nce":  # Local NCE with log Z fixed at 0 self-normalises: exp(s) ~ p(x|c)
        assert abs(got.log_z_mean) < 1.0
        assert got.unnormalized_cross_entropy == pytest.approx(got.cross_entropy, abs=1.0)
    assert np.isfinite(got.log_z_std)


@pytest.mark.parametrize("loss", ["softmax", "nce", "rnce", "is"])
def test_untrained_model_is_the_unigram_distribution(tmp_path, loss):
    """The output bias starts at log unigram probabilities: before training (lr ~ 0), every
    context predicts the unigram distribution, normalised (log Z = 0), and the held-out
    cross-entropy is the unigram cross-entropy, computed here from the counts by hand."""
    corpus, heldout = tmp_path / "train.txt", tmp_path / "heldout.txt"
    write_twin_corpus(corpus, seed=0)
    write_twin_corpus(heldout, seed=1, sentences=100)
    cfg = load_config(None, dict(loss=loss, dim=8, epochs=1, lr=1e-9, threads=1, min_count=1, window=2,
                                  sample=0.0, device="cpu"))
    train(corpus, tmp_path / "run", cfg, progress_bar=False)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    got = diagnose(state, heldout, max_examples=500)

    counts = dict(zip(state["words"], state["counts"].tolist()))
    total = sum(counts.values())
    tokens = heldout.read_text(encoding="utf-8").split()[:500]  # sentences of 10: every word has context
    expected = -sum(math.log(counts[w] / total) for w in tokens) / len(tokens)
    assert got.examples == 500
    assert got.cross_entropy == pytest.approx(expected, abs=1e-4)
    assert got.log_z_mean == pytest.approx(0.0, abs=1e-4)
