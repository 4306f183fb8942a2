"""fastText's subword model (w2v_nce.subwords): n-grams and buckets against gensim's own functions, the
bags' layout against brute force, and training with bags of n-gram rows against fastText's update
written out (every row of a bag moves by the whole error): autograd for the batched step on every
loss, word2vec's loop over brute-force examples in fastText's orientation for the window kernel."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import numpy as np
import pytest
import torch
from gensim.models.fasttext import ft_ngram_hashes
from gensim.models.fasttext_inner import compute_ngrams, compute_ngrams_bytes, ft_hash_bytes

from conftest import require_kernel
from oracles import autograd_step, kernel_examples, small_cfg, word2vec_loop
from w2v_nce import fused
from w2v_nce.checkpoint import CHECKPOINT, load_checkpoint, load_model, vectors_from_checkpoint
from w2v_nce.config import ARCHS, LOSSES, load_config
from w2v_nce.errors import UserError
from w2v_nce.model import Model
from w2v_nce.objectives import make_objective
from w2v_nce.sampler import AliasSampler, unigram_power
from w2v_nce.steps import choose_step
from w2v_nce.subwords import Subwords, expand_bags, ft_hash, ngram_buckets, ngrams
from w2v_nce.train import train
from w2v_nce.vectors import load_word2vec
from w2v_nce.updates import make_update
from w2v_nce.vocab import HuffmanTree
from w2v_nce.windows import Examples, example_maker, skipgram_examples

WORDS = ["the", "a", "aaaaaaa", "abababab", "où", "naïve", "straße", "中文字", "日本", "ñandú", "x", "résumé",
         "ko\u0301", "emoji😀s", "Ωmega", "ab", "ba"]


def toy_words(count: int, seed: int = 0) -> list[str]:
    """WORDS (non-ASCII, repeated n-grams, one-letter words) and random words up to `count`."""
    rng = random.Random(seed)
    words = list(WORDS)
    while len(words) < count:
        word = "".join(rng.choice("abcdeéü") for _ in range(rng.randint(1, 9)))
        if word not in words:
            words.append(word)
    return words


def gensim_bag(words: list[str], i: int, minn: int, maxn: int, buckets: int) -> list[int]:
    """Word i's input rows from gensim's hashes: its row, then V + its n-grams' buckets."""
    return [i] + [len(words) + int(b) for b in ft_ngram_hashes(words[i], minn, maxn, buckets)]


# --------------------------------------------------------------------------- n-grams and buckets


@pytest.mark.parametrize("minn,maxn", [(3, 6), (1, 4), (2, 2), (4, 9)])
def test_ngrams_and_buckets_are_gensims(minn, maxn):
    for word in toy_words(60):
        ours = ngrams(word, minn, maxn)
        # gensim's byte-level port of fastText, in fastText's order (and its rule for '<' and '>')
        assert [g.encode() for g in ours] == compute_ngrams_bytes(word, minn, maxn), word
        # gensim's character version differs only there: the lone '<' and '>' of minn = 1
        fenced = [g for g in compute_ngrams(word, minn, maxn) if g not in ("<", ">")]
        assert Counter(ours) == Counter(fenced), word
        assert ngram_buckets(word, minn, maxn, 1000) == [int(b) for b in ft_ngram_hashes(word, minn, maxn, 1000)]
        for gram in ours:
            assert ft_hash(gram.encode()) == ft_hash_bytes(gram.encode())


def test_the_hash_sign_extends_bytes():
    """fastText xors each byte as int8: 0xC3 enters as 0xFFFFFFC3, not 0xC3 (gensim agrees)."""
    data = "é".encode()
    unsigned = 2166136261
    for byte in data:
        unsigned = ((unsigned ^ byte) * 16777619) & 0xFFFFFFFF
    assert ft_hash(data) == ft_hash_bytes(data) != unsigned


@pytest.mark.parametrize("minn,maxn,buckets", [(3, 6, 2_000_000), (1, 3, 7), (5, 5, 100)])
def test_the_layout_is_every_words_bag_in_gensims_order(minn, maxn, buckets):
    words = toy_words(300, seed=1)
    layout = Subwords.build(words, minn, maxn, buckets)
    assert layout.offsets[0] == 0 and layout.offsets[-1] == len(layout.rows)
    for i in range(len(words)):
        assert layout.bag(i).tolist() == gensim_bag(words, i, minn, maxn, buckets), words[i]
    assert layout.max_rows == max(len(gensim_bag(words, i, minn, maxn, buckets)) for i in range(len(words)))


def test_repeat_factors_by_brute_force():
    words = toy_words(80)
    layout = Subwords.build(words, 1, 4, 13)  # few buckets: collisions inside words too
    for i, got in enumerate(layout.repeat_factors()):
        bag = Counter(layout.bag(i).tolist())
        assert got == pytest.approx(sum(m * m for m in bag.values()) / sum(bag.values()))
    assert layout.repeat_factors()[words.index("aaaaaaa")] > 1


def test_expand_bags_by_brute_force():
    words = toy_words(40)
    layout = Subwords.build(words, 3, 6, 50)
    gen = torch.Generator().manual_seed(0)
    context = torch.randint(0, len(words), (30,), generator=gen)
    offsets = torch.tensor([0, 1, 1, 7, 20, 30])
    rows, new = expand_bags(context, offsets, torch.from_numpy(layout.offsets), torch.from_numpy(layout.rows))
    for i in range(len(offsets) - 1):
        expected = [r for w in context[offsets[i]:offsets[i + 1]].tolist() for r in gensim_bag(words, w, 3, 6, 50)]
        assert rows[new[i]:new[i + 1]].tolist() == expected


def test_skipgram_pairs_turn_round_with_subwords():
    """fastText's orientation: the centre is the input, each window word a target."""
    ids = torch.tensor([4, 5, 6, -1, 7, 8])
    radius = torch.tensor([2, 1, 2, 1, 1])
    words = skipgram_examples(ids, 2, None, radius=radius)
    centres = skipgram_examples(ids, 2, None, radius=radius, centre_input=True)
    assert list(zip(centres.context.tolist(), centres.targets.tolist())) == \
        list(zip(words.targets.tolist(), words.context.tolist()))


# --------------------------------------------------------------------------- training steps


def toy_model(loss: str, seed: int, dim: int, bias: bool, vocab: int = 40, buckets: int = 30, negatives: int = 4):
    words = toy_words(vocab, seed)
    gen = torch.Generator().manual_seed(seed)
    counts = np.arange(vocab, 0, -1) ** 2
    objective = make_objective(loss, AliasSampler(unigram_power(counts), "cpu"), negatives, log_z=0.2,
                               learn_log_z=loss == "nce", tree=HuffmanTree.from_counts(counts))
    rows = objective.output_rows(vocab)
    model = Model(vocab, dim, bias, torch.device("cpu"), gen, out_rows=rows,
                  subwords=Subwords.build(words, 3, 6, buckets))
    model.inp = torch.randn(vocab + buckets, dim, generator=gen) * 0.3
    model.out = torch.randn(rows, dim, generator=gen) * 0.3
    if bias:
        model.bias = torch.randn(rows, generator=gen) * 0.1
    return words, objective, model, gen


def row_batch(words: list[str], batch: Examples, buckets: int) -> Examples:
    """`batch` with every word replaced by its rows from gensim's hashes (fastText's bow)."""
    bags = [[r for w in batch.context[lo:hi].tolist() for r in gensim_bag(words, w, 3, 6, buckets)]
            for lo, hi in zip(batch.offsets[:-1].tolist(), batch.offsets[1:].tolist())]
    offsets = torch.tensor(np.cumsum([0] + [len(b) for b in bags]), dtype=torch.int64)
    return Examples(targets=batch.targets, context=torch.tensor([r for b in bags for r in b]), offsets=offsets)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("loss", LOSSES)
def test_batched_step_with_subwords_is_fasttexts_update(loss, arch, cpu_path):
    """h is the mean of all rows of all the bag's words (fastText's computeHidden) and every row of
    the bag moves by -lr x d(loss)/dh (its unsupervised update: no division by the bag's size).
    Oracle: autograd's step on bags of rows made from gensim's hashes."""
    words, objective, model, gen = toy_model(loss, 0, 6, bias=loss not in ("neg", "hs"))
    ids = torch.randint(0, len(words), (40,), generator=gen)
    ids[::9] = -1
    batch = example_maker(arch, subwords=True)(ids, 3, gen)
    drawn = objective.draw(batch.targets, gen)
    cand = objective.complete(batch.targets, drawn)
    tables = (model.inp.clone(), model.out.clone(), None if model.bias is None else model.bias.clone())
    expected_loss, (inp, out, bias) = autograd_step(objective, row_batch(words, batch, 30), cand, tables, 0.05)

    step, _ = choose_step("auto", model, objective, make_update("sum", 1.0))
    if step.name == "window_kernel":  # checked against fastText's loop below
        step, _ = choose_step("batched", model, objective, make_update("sum", 1.0))
    batch.candidates = drawn
    got_loss, trained = step(model, objective, batch, 0.05, make_update("sum", 1.0))
    assert trained == len(batch)
    assert float(got_loss) == pytest.approx(expected_loss, rel=1e-5)
    torch.testing.assert_close(model.out, out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.inp, inp, rtol=1e-5, atol=1e-6)
    assert not torch.equal(model.inp[len(words):], tables[0][len(words):])  # the n-gram rows learnt
    if bias is not None:
        torch.testing.assert_close(model.bias, bias, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("loss,bias", [("neg", False), ("hs", False), ("nce", True)])
@pytest.mark.parametrize("window,aligned", [(1, False), (4, True)])
def test_window_kernel_with_subwords_is_fasttexts_loop(arch, loss, bias, window, aligned):
    """The kernel against fastText's loop written out in float64 (word2vec's loop on bags of rows:
    h the mean of the bag as it is at each example, every row moved by each example's error) over
    brute-force examples in fastText's orientation. The kernel moves a skip-gram bag's rows once per
    centre and keeps h up to date meanwhile: the same arithmetic, repeated n-grams included."""
    require_kernel()
    words, objective, model, gen = toy_model(loss, 3, 17, bias, vocab=60, buckets=40, negatives=5)
    ids = torch.randint(0, len(words), (300,), generator=gen, dtype=torch.int32)
    ids[torch.randperm(300, generator=gen)[:25]] = -1
    positions = torch.nonzero(ids >= 0).squeeze(1)
    centres = positions[torch.randperm(len(positions), generator=gen)]
    tables = (model.inp.clone(), model.out.clone(), None if model.bias is None else model.bias.clone())
    seed, lr, skipgram = 4242, 0.05, arch == "skipgram"
    if aligned:  # rows a cache line apart, as the trainer lays them out for the kernel
        model.align_rows()
        assert model.inp.stride(0) == 32 != model.inp.shape[1]

    rows, const = objective.logit_offset()
    loss_ours, _, n = fused.window_sgd(model.inp, model.out, model.bias, ids, centres, window, skipgram, lr, seed,
                                       row_offset=rows, const_offset=float(const), hot=(0, 7),
                                       subwords=model.kernel_subwords(), **objective.kernel_candidates())

    examples = kernel_examples(ids.tolist(), centres.tolist(), window, seed, skipgram, centre_input=True)
    targets = torch.tensor([t for _, t in examples])
    words_batch = Examples(targets=targets, context=torch.tensor([w for bag, _ in examples for w in bag]),
                           offsets=torch.tensor(np.cumsum([0] + [len(bag) for bag, _ in examples])))
    drawn = None
    if loss != "hs":  # the noise stream, k draws per example in order
        drawn = fused.alias_sample(objective.sampler.accept, objective.sampler.alias, (len(examples), objective.k),
                                   seed)
        drawn = torch.cat([targets[:, None], drawn], dim=1)
    cand = objective.complete(targets, drawn)
    loss_ref, (inp, out, bias_ref) = word2vec_loop(objective, row_batch(words, words_batch, 40), cand, tables, lr)
    assert n == len(examples) > 0
    assert loss_ours == pytest.approx(loss_ref, rel=1e-5)
    torch.testing.assert_close(model.inp, inp, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.out, out, rtol=1e-4, atol=1e-5)
    if bias:
        torch.testing.assert_close(model.bias, bias_ref, rtol=1e-4, atol=1e-5)
    assert not torch.equal(model.inp[len(words):], tables[0][len(words):])


# --------------------------------------------------------------------------- options and checkpoints


def test_the_subwords_shorthand_and_the_options_checks():
    cfg = load_config(None, {"subwords": True})
    assert (cfg.minn, cfg.maxn, cfg.buckets, cfg.subwords) == (3, 6, 2_000_000, True)
    assert load_config(None, {"subwords": True, "maxn": 5}).maxn == 5  # what is given explicitly wins
    assert not load_config(None, {}).subwords
    for overrides, message in [({"maxn": 2}, r"maxn \(2\) must be at least minn \(3\)"),
                               ({"subwords": True, "buckets": 0}, "buckets must be at least 1"),
                               ({"subwords": True, "buckets": 2**33}, r"would take 3.44 TB \(buckets x dim x 4"),
                               ({"subwords": True, "minn": 0}, "minn must be at least 1"),
                               ({"subwords": 1}, "'subwords' must be bool"),
                               ({"buckets": 1000}, "buckets is set but maxn is 0")]:
        with pytest.raises(UserError, match=message):
            load_config(None, overrides)


def test_a_table_larger_than_memory_is_one_error():
    with pytest.raises(UserError, match=r"would take 4 TB \(1,000,000,010 rows x dim 1000"):
        Model(5, 1000, False, torch.device("cpu"), torch.Generator(), out_rows=5,
              subwords=Subwords.build(list("abcde"), 3, 6, 10**9))


def test_the_bucket_rows_start_as_the_word_rows_do():
    """uniform(±1/dim) for every input row, as fastText's createRandomMatrix and our word rows."""
    model = Model(4, 50, False, torch.device("cpu"), torch.Generator().manual_seed(0),
                  subwords=Subwords.build(list("abcd"), 3, 6, 5000))
    assert model.inp.shape == (5004, 50)
    assert model.inp.abs().max() <= 1 / 50 and model.inp.abs().max() > 0.99 / 50
    assert abs(float(model.inp[4:].mean())) < 1e-4 and float(model.inp[4:].std()) == pytest.approx(
        1 / 50 / 3**0.5, rel=0.01)


@pytest.mark.parametrize("arch", ARCHS)
def test_resume_with_subwords_is_bit_identical_and_carries_the_buckets(tmp_path, twin_corpus, arch):
    corpus, _ = twin_corpus
    cfg = small_cfg(arch=arch, epochs=2, dim=8, subwords=True, buckets=500, min_lr_ratio=1.0)  # constant LR
    train(corpus, tmp_path / "straight", cfg, progress_bar=False)
    train(corpus, tmp_path / "resumed", dataclasses.replace(cfg, epochs=1), progress_bar=False)
    train(corpus, tmp_path / "resumed", cfg, resume=True, asked={"epochs": 2}, progress_bar=False)
    straight, resumed = (load_checkpoint(tmp_path / run / CHECKPOINT) for run in ("straight", "resumed"))
    vocab = len(straight["words"])
    full = Subwords.build(straight["words"], 3, 6, 500).rows
    used = np.unique(full[full >= vocab] - vocab)  # the buckets the words' n-grams hash into, by brute force
    assert straight["model"]["inp"].shape == (vocab + len(used), 8) and len(used) < 500
    assert sorted(straight["model"]["bucket_ids"].tolist()) == used.tolist()
    assert straight["config"]["buckets"] == 500 and straight["config"]["maxn"] == 6
    assert torch.equal(straight["model"]["inp"], resumed["model"]["inp"])
    assert torch.equal(straight["model"]["bucket_ids"], resumed["model"]["bucket_ids"])
    with pytest.raises(UserError, match="cannot change 'buckets'"):
        train(corpus, tmp_path / "resumed", cfg, resume=True, asked={"buckets": 600}, progress_bar=False)


def test_a_checkpoint_whose_table_does_not_fit_its_buckets_is_one_error(tmp_path, twin_corpus):
    corpus, _ = twin_corpus
    train(corpus, tmp_path / "run", small_cfg(epochs=1, dim=8, subwords=True, buckets=300), progress_bar=False)
    state = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    state["config"]["buckets"] = 400
    for read in (load_model, vectors_from_checkpoint):
        with pytest.raises(UserError, match=r"\(80 words, 400 buckets, dim 8\): its bucket rows lack \d+ of the \d+ "
                                            "buckets its words' n-grams use in 400 buckets"):
            read(state)


def test_a_grown_subword_run_carries_the_n_gram_rows_and_keeps_the_hashing(tmp_path, twin_corpus):
    """train --init on a subword run: word rows by word, and every bucket row (the same minn, maxn
    and buckets, which a child cannot change); lr 1e-30 moves no non-zero float32 entry."""
    corpus, _ = twin_corpus
    train(corpus, tmp_path / "run", small_cfg(epochs=1, dim=8, subwords=True, buckets=300), progress_bar=False)
    grown_cfg = small_cfg(epochs=1, dim=8, subwords=True, buckets=300, lr=1e-30, min_count=2)
    train(corpus, tmp_path / "grown", grown_cfg, init=tmp_path / "run", asked={"lr": 1e-30, "min_count": 2},
          progress_bar=False)
    parent, child = (load_checkpoint(tmp_path / run / CHECKPOINT) for run in ("run", "grown"))
    assert child["words"] == parent["words"]
    assert torch.equal(child["model"]["inp"], parent["model"]["inp"])
    with pytest.raises(UserError, match="cannot change 'buckets'"):
        train(corpus, tmp_path / "other", grown_cfg, init=tmp_path / "run", asked={"buckets": 400},
              progress_bar=False)


@pytest.mark.parametrize("loss", ["neg", "nce"])
def test_a_held_out_text_keeps_the_best_epochs_word_vectors(tmp_path, twin_corpus, loss):
    """With --heldout the run keeps the best epoch's word vectors (the bags' means, not the n-gram
    table) and writes them into vectors.txt; the held-out loss is diagnose's on the same examples."""
    from w2v_nce.diagnose import diagnose

    corpus, _ = twin_corpus
    cfg = small_cfg(epochs=2, dim=8, subwords=True, buckets=300, loss=loss, heldout=str(corpus),
                    heldout_examples=500, arch="skipgram")
    metrics = train(corpus, tmp_path / "run", cfg, progress_bar=False)
    state = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert state["best_inp"].shape == (len(state["words"]), 8)
    vectors = load_word2vec(tmp_path / "run" / "vectors.txt")
    torch.testing.assert_close(torch.from_numpy(vectors.matrix), state["best_inp"], rtol=0, atol=1e-6)
    if loss == "nce":  # the cross-entropy, as diagnose computes it on the same first examples
        last = metrics["history"][-1]["heldout"]
        assert last == pytest.approx(diagnose(state, corpus, max_examples=500).cross_entropy, rel=1e-4)


def test_skipgram_with_subwords_draws_noise_per_example_even_when_shared_is_asked():
    """shared_negatives (one draw per window) is for word skip-gram, whose examples share their
    target; with subwords each window word is a target, so the kernel draws per example: the same
    tables bit for bit as without it (that path is checked against fastText's loop above)."""
    require_kernel()
    results = []
    for shared in (False, True):
        words, objective, model, gen = toy_model("neg", 5, 16, False, vocab=60, buckets=40)
        ids = torch.randint(0, len(words), (300,), generator=gen, dtype=torch.int32)
        centres = torch.nonzero(ids >= 0).squeeze(1)
        out = fused.window_sgd(model.inp, model.out, None, ids, centres, 3, True, 0.05, 99, shared_noise=shared,
                               subwords=model.kernel_subwords(), **objective.kernel_candidates())
        results.append((out, model.inp, model.out))
    (a, inp_a, out_a), (b, inp_b, out_b) = results
    assert a == b and torch.equal(inp_a, inp_b) and torch.equal(out_a, out_b)


# --------------------------------------------------------------------------- only the used buckets stored


def test_bucket_starts_are_the_kernels_stream_by_bucket_id():
    """bucket_init (numpy) and the C kernel's draw both give bucket b's start from the seed and b
    alone, as the splitmix64 stream by hand (oracles.bucket_start); uniform in ±1/dim."""
    from oracles import bucket_start
    from w2v_nce.subwords import bucket_init, fill_buckets

    ids = np.array([0, 1, 7, 1_999_999, 2**31 - 2])
    for seed in (1, 0xF123456789ABCDEF):
        expected = np.stack([bucket_start(seed, int(b), 10) for b in ids])
        np.testing.assert_array_equal(bucket_init(seed, ids, 10), expected)
        if fused.AVAILABLE:
            padded = torch.full((len(ids), 16), 9.0)[:, :10]  # rows a cache line apart, as the trainer's
            fill_buckets(padded, seed, ids)
            np.testing.assert_array_equal(padded.numpy(), expected)
    many = bucket_init(3, np.arange(20_000), 10)
    assert many.min() >= -0.1 and many.max() < 0.1 and abs(float(many.mean())) < 1e-3


def test_a_compact_layout_is_the_full_one_with_rows_renumbered():
    words = toy_words(300, seed=2)
    full, compact = (Subwords.build(words, 3, 6, 5000, compact=c) for c in (False, True))
    vocab = len(words)
    used = np.unique(full.rows[full.rows >= vocab] - vocab)
    assert sorted(compact.stored.tolist()) == used.tolist() and len(used) < 5000
    assert np.array_equal(compact.full_rows(), full.rows) and np.array_equal(compact.offsets, full.offsets)
    assert compact.rows.max() == vocab + len(used) - 1
    # the order words first use them: the bags read rows V, V+1, ... as they first meet a bucket
    first = [r for r in compact.rows.tolist() if r >= vocab]
    assert list(dict.fromkeys(first)) == list(range(vocab, vocab + len(used)))


def run_layouts(monkeypatch, corpus, out, full: bool, **kw):
    """A subword run trained with only its buckets stored, or (`full`) fastText's whole table."""
    import w2v_nce.train as train_module

    if full:
        monkeypatch.setattr(train_module, "subwords_for", lambda cfg, words: Subwords.build(
            words, cfg.minn, cfg.maxn, cfg.buckets, compact=False))
    train(corpus, out, small_cfg(subwords=True, buckets=500, dim=8, epochs=2, **kw), progress_bar=False)
    monkeypatch.undo()
    return load_checkpoint(out / CHECKPOINT)


@pytest.mark.parametrize("arch,step", [("skipgram", "kernel"), ("cbow", "kernel"), ("cbow", "batched"),
                                       ("skipgram", "batched")])
def test_storing_only_the_used_buckets_trains_the_full_tables_model(tmp_path, twin_corpus, monkeypatch, arch, step):
    """The oracle is the run that holds fastText's whole table (row V + b for every bucket b): the
    same start (the word rows from the run's generator, the buckets by id), the same examples, the
    same arithmetic on the same values, so the same vectors bit for bit, for known words and
    unseen ones (whose n-grams may fall in buckets no word uses), and the same .vec."""
    from oracles import fasttext_matrix
    from w2v_nce.fasttext_io import keyed_vectors

    if step == "kernel":
        require_kernel()
    corpus, _ = twin_corpus
    compact = run_layouts(monkeypatch, corpus, tmp_path / "compact", False, arch=arch, step=step)
    full = run_layouts(monkeypatch, corpus, tmp_path / "full", True, arch=arch, step=step)
    vocab = len(full["words"])
    assert len(compact["model"]["inp"]) < vocab + 500 == len(full["model"]["inp"])
    np.testing.assert_array_equal(fasttext_matrix(compact), full["model"]["inp"].numpy())
    ours, theirs = keyed_vectors(compact), keyed_vectors(full)
    for word in ours.index_to_key[:10] + ["zebra", "a333", "qqqq", "日本語"]:
        np.testing.assert_array_equal(ours[word], theirs[word])
    assert (tmp_path / "compact" / "vectors.txt").read_bytes() == (tmp_path / "full" / "vectors.txt").read_bytes()


def test_a_checkpoint_of_the_full_table_loads_and_resumes_as_the_compact_one(tmp_path, twin_corpus):
    """A checkpoint that holds fastText's whole table (no bucket_ids: every bucket in order) reads
    back as the compact run it was made from: the same vectors, and resuming from it (the run keeps
    its whole table) trains on bit for bit as resuming the compact checkpoint."""
    from oracles import fasttext_matrix
    from w2v_nce.checkpoint import save_checkpoint
    from w2v_nce.fasttext_io import keyed_vectors

    corpus, _ = twin_corpus
    cfg = small_cfg(subwords=True, buckets=500, dim=8, epochs=1, min_lr_ratio=1.0)
    train(corpus, tmp_path / "compact", cfg, progress_bar=False)
    state = load_checkpoint(tmp_path / "compact" / CHECKPOINT)
    whole = {**state, "model": {k: v for k, v in state["model"].items() if k not in ("bucket_ids", "bucket_seed")}}
    whole["model"]["inp"] = torch.from_numpy(fasttext_matrix(state))
    (tmp_path / "whole").mkdir()
    save_checkpoint(whole, tmp_path / "whole" / CHECKPOINT)
    for word in state["words"][:5] + ["zebra", "a333"]:
        np.testing.assert_array_equal(keyed_vectors(whole)[word], keyed_vectors(state)[word])
    np.testing.assert_array_equal(vectors_from_checkpoint(whole).matrix, vectors_from_checkpoint(state).matrix)
    for run in ("compact", "whole"):
        train(corpus, tmp_path / run, dataclasses.replace(cfg, epochs=2), resume=True, asked={"epochs": 2},
              progress_bar=False)
    a, b = (load_checkpoint(tmp_path / run / CHECKPOINT) for run in ("compact", "whole"))
    assert len(b["model"]["inp"]) == len(b["words"]) + 500  # the run goes on holding the table it had
    np.testing.assert_array_equal(fasttext_matrix(a), fasttext_matrix(b))


@pytest.fixture(scope="module")
def small_subword_run(tmp_path_factory):
    from conftest import write_twin_corpus

    root = tmp_path_factory.mktemp("subword_run")
    write_twin_corpus(root / "twins.txt")
    train(root / "twins.txt", root / "run", small_cfg(subwords=True, buckets=500, dim=8, epochs=1),
          progress_bar=False)
    return root / "run"


@pytest.mark.parametrize("change,message", [
    (lambda m: m.update(bucket_ids=m["bucket_ids"][:-1]), r"bucket_ids has \d+ buckets for the \d+ bucket rows"),
    (lambda m: m["bucket_ids"].__setitem__(0, 500), "a bucket outside 0..499"),
    (lambda m: m["bucket_ids"].__setitem__(0, -1), "a bucket outside 0..499"),
    (lambda m: m["bucket_ids"].__setitem__(1, int(m["bucket_ids"][0])), "holds a bucket twice"),
    (lambda m: m.update(bucket_ids=m["bucket_ids"].float()), "not a vector of integers"),
    (lambda m: m.update(bucket_ids=[1, 2]), "not a vector of integers"),
    (lambda m: m.update(bucket_seed="1"), "bucket_seed is '1', not an integer"),
    (lambda m: m.update(inp=m["inp"][:-1]), r"bucket_ids has \d+ buckets for the \d+ bucket rows"),
    (lambda m: m.update(inp=m["inp"][:, :4]), r"inp has shape \(\d+, 4\), expected"),
    (lambda m: m.pop("bucket_ids"), r"inp has \d+ rows, expected \d+ \(\d+ words \+ 500 buckets\)"),
])
def test_a_checkpoint_with_bad_bucket_rows_is_one_error(tmp_path, small_subword_run, change, message):
    import shutil

    from oracles import invoke
    from w2v_nce.checkpoint import save_checkpoint

    shutil.copytree(small_subword_run, tmp_path / "run")
    state = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    change(state["model"])
    for read in (load_model, vectors_from_checkpoint):
        with pytest.raises(UserError, match="checkpoint does not fit its own config .*" + message):
            read(state)
    save_checkpoint(state, tmp_path / "run" / CHECKPOINT)
    code, out, err = invoke(["vectors", str(tmp_path / "run"), "a3"])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out + err, err


def test_a_grown_vocabulary_takes_the_parents_buckets_stored_or_not(tmp_path, twin_corpus):
    """train --init --update-vocab: the new words' n-grams use buckets the parent never stored;
    they start as the parent's vectors for them (its start, oracles.bucket_start under the parent's
    seed, which the child keeps), the others carry the parent's rows (lr 1e-30 moves nothing)."""
    from oracles import bucket_start, fasttext_matrix

    corpus, _ = twin_corpus
    train(corpus, tmp_path / "run", small_cfg(subwords=True, buckets=500, dim=8, epochs=1), progress_bar=False)
    more = tmp_path / "more.txt"
    more.write_text(corpus.read_text() + "zebra quokka wombat axolotl\n" * 5)
    grown_cfg = small_cfg(subwords=True, buckets=500, dim=8, epochs=1, lr=1e-30, seed=9)
    train(more, tmp_path / "grown", grown_cfg, init=tmp_path / "run", update_vocab=True,
          asked={"lr": 1e-30, "seed": 9}, progress_bar=False)
    parent, child = (load_checkpoint(tmp_path / run / CHECKPOINT) for run in ("run", "grown"))
    assert len(child["words"]) == len(parent["words"]) + 4
    assert child["model"]["bucket_seed"] == parent["model"]["bucket_seed"] == 1
    new = set(child["model"]["bucket_ids"].tolist()) - set(parent["model"]["bucket_ids"].tolist())
    assert new
    theirs = fasttext_matrix(parent)[len(parent["words"]):]
    np.testing.assert_array_equal(fasttext_matrix(child)[len(child["words"]):], theirs)
    for b in sorted(new)[:5]:
        np.testing.assert_array_equal(theirs[b], bucket_start(1, b, 8))
