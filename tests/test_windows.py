"""CBOW and skip-gram example construction against a brute-force enumeration of word2vec's rule."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from scipy import stats

from w2v_nce.vocab import SENTENCE_END
from w2v_nce.windows import Examples, cbow_examples, skipgram_examples, subsample


def brute_force(ids: list[int], radius: list[int]) -> list[tuple[int, list[int]]]:
    """word2vec's rule, literally: for each word in order (radius[k] for the k-th word), the
    context is the words within that radius in the same sentence, in order, itself excluded;
    words with no context are skipped."""
    sentences, current = [], []
    for x in ids:
        if x == SENTENCE_END:
            sentences.append(current)
            current = []
        else:
            current.append(x)
    sentences.append(current)
    examples = []
    k = 0
    for sentence in sentences:
        for i, word in enumerate(sentence):
            r = radius[k]
            k += 1
            context = [sentence[j] for j in range(i - r, i + r + 1) if j != i and 0 <= j < len(sentence)]
            if context:
                examples.append((word, context))
    assert k == len(radius)
    return examples


def as_list(ex: Examples) -> list[tuple[int, list[int]]]:
    offsets = ex.offsets.tolist()
    context = ex.context.tolist()
    return [(t, context[offsets[i] : offsets[i + 1]]) for i, t in enumerate(ex.targets.tolist())]


def random_ids(rng: random.Random, n: int, vocab: int, p_end: float) -> list[int]:
    return [SENTENCE_END if rng.random() < p_end else rng.randrange(vocab) for _ in range(n)]


@pytest.mark.parametrize("window", [1, 2, 3, 5, 8])
def test_cbow_examples_match_brute_force(window):
    rng = random.Random(window)
    for trial in range(40):
        ids = random_ids(rng, rng.randrange(0, 60), vocab=7, p_end=rng.choice([0.0, 0.1, 0.3, 0.6]))
        if trial % 10 == 0:  # consecutive and leading/trailing sentence ends
            ids = [SENTENCE_END, SENTENCE_END] + ids + [SENTENCE_END, SENTENCE_END]
        n_words = sum(x != SENTENCE_END for x in ids)
        radius = [rng.randint(1, window) for _ in range(n_words)]
        ex = cbow_examples(
            torch.tensor(ids, dtype=torch.int32), window, None, radius=torch.tensor(radius, dtype=torch.int64)
        )
        expected = brute_force(ids, radius)
        assert as_list(ex) == expected, (ids, radius)
        # layout invariants
        assert ex.targets.dtype == ex.context.dtype == ex.offsets.dtype == ex.bag.dtype == torch.int64
        assert len(ex.offsets) == len(ex) + 1 and int(ex.offsets[0]) == 0
        assert int(ex.offsets[-1]) == len(ex.context) == len(ex.bag)
        assert ex.bag.tolist() == [i for i, (_, c) in enumerate(expected) for _ in c]


def test_cbow_examples_with_drawn_radius_obey_the_rule():
    """With the radius drawn inside: use distinct word ids, so a target names its position;
    every word in a sentence of 2+ words gives one example, in order, whose context is the
    brute-force context for some radius in 1..window."""
    rng = random.Random(0)
    window = 4
    ids, next_id = [], 0
    for _ in range(60):
        length = rng.choice([0, 1, 2, 3, 7, 15])
        ids += list(range(next_id, next_id + length)) + [SENTENCE_END]
        next_id += length
    n_words = next_id
    got = as_list(cbow_examples(torch.tensor(ids), window, torch.Generator().manual_seed(1)))
    by_radius = [dict(brute_force(ids, [r] * n_words)) for r in range(1, window + 1)]
    assert [t for t, _ in got] == sorted(by_radius[0])  # targets: all words with a neighbour, in order
    radii = []
    for target, context in got:
        matches = [r + 1 for r in range(window) if by_radius[r][target] == context]
        assert matches, (target, context)
        radii.append(matches[0])
    assert set(radii) == set(range(1, window + 1))  # all radii occur


def test_cbow_examples_empty_inputs():
    for ids in ([], [SENTENCE_END], [SENTENCE_END, SENTENCE_END], [3], [3, SENTENCE_END, 4]):
        ex = cbow_examples(torch.tensor(ids, dtype=torch.int32), 3, torch.Generator().manual_seed(0))
        assert len(ex) == 0
        assert ex.offsets.tolist() == [0]
        assert len(ex.context) == 0 and len(ex.bag) == 0


def test_radius_draw_is_uniform_chi_square():
    """In one long sentence of distinct words, an interior word's context has 2*radius words."""
    window = 5
    n = 30_000
    ids = torch.arange(n, dtype=torch.int32)
    ex = cbow_examples(ids, window, torch.Generator().manual_seed(2024))
    assert len(ex) == n
    sizes = (ex.offsets[1:] - ex.offsets[:-1])[window:-window]
    assert (sizes % 2 == 0).all()
    radii = (sizes // 2).numpy()
    counts = np.bincount(radii, minlength=window + 1)
    assert counts[0] == 0 and len(counts) == window + 1
    p_value = stats.chisquare(counts[1:]).pvalue
    assert p_value > 1e-3, counts


@pytest.mark.parametrize("start,stop", [(0, 0), (0, 1), (0, 37), (5, 17), (36, 37), (20, 37), (10, 10)])
def test_examples_slice_is_consistent(start, stop):
    rng = random.Random(1)
    ids = random_ids(rng, 60, vocab=9, p_end=0.1)
    ex = cbow_examples(torch.tensor(ids), 3, torch.Generator().manual_seed(4))
    assert len(ex) >= 37
    full = as_list(ex)
    part = ex.slice(start, stop)
    assert len(part) == stop - start
    assert as_list(part) == full[start:stop]
    assert int(part.offsets[0]) == 0 and int(part.offsets[-1]) == len(part.context) == len(part.bag)
    # bag ids rebased: each context word belongs to the example whose offset range holds it
    expected_bag = torch.repeat_interleave(torch.arange(len(part)), part.offsets[1:] - part.offsets[:-1])
    assert torch.equal(part.bag, expected_bag)


def test_subsample_keeps_sentence_ends_and_order():
    rng = random.Random(3)
    ids = random_ids(rng, 2000, vocab=10, p_end=0.1)
    keep = torch.tensor([0.0, 1.0, 0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.05, 1.0])
    t = torch.tensor(ids, dtype=torch.int32)
    out = subsample(t, keep, torch.Generator().manual_seed(0)).tolist()
    assert out.count(SENTENCE_END) == ids.count(SENTENCE_END)
    assert 0 not in out  # keep prob 0
    assert out.count(1) == ids.count(1) and out.count(9) == ids.count(9)  # keep prob 1
    # the result is a subsequence of the input
    it = iter(ids)
    assert all(any(x == y for y in it) for x in out)


def test_subsample_keeps_each_word_with_its_keep_probability():
    vocab = 8
    keep = torch.tensor([0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.4])
    occurrences = 20_000
    ids = torch.arange(vocab, dtype=torch.int32).repeat(occurrences)
    ids[::97] = SENTENCE_END  # some sentence ends in between
    n = np.bincount(ids[ids >= 0].numpy(), minlength=vocab)
    kept_total = np.zeros(vocab)
    draws = 5
    gen = torch.Generator().manual_seed(99)
    for _ in range(draws):
        out = subsample(ids, keep, gen)
        assert int((out == SENTENCE_END).sum()) == int((ids == SENTENCE_END).sum())
        kept_total += np.bincount(out[out >= 0].numpy(), minlength=vocab)
    trials = n * draws
    p = keep.double().numpy()
    z = (kept_total - trials * p) / np.sqrt(trials * p * (1 - p))
    assert np.abs(z).max() < 5, z
    # and not trivially: the kept fraction really varies with keep_prob
    np.testing.assert_allclose(kept_total / trials, p, atol=0.01)


def test_skipgram_pairs_match_brute_force():
    """Skip-gram (gensim sg=1): one (window word, centre) pair per word within the centre's
    radius, the window word the input (a bag of one) and the centre the target."""
    rng = random.Random(7)
    for trial in range(40):
        window = rng.choice([1, 2, 3, 5])
        ids = random_ids(rng, rng.randrange(0, 60), vocab=7, p_end=rng.choice([0.0, 0.1, 0.3]))
        n_words = sum(x != SENTENCE_END for x in ids)
        radius = [rng.randint(1, window) for _ in range(n_words)]
        got = skipgram_examples(torch.tensor(ids, dtype=torch.int64), window, None,
                                radius=torch.tensor(radius, dtype=torch.int64))
        want = [(centre, [word]) for centre, context in brute_force(ids, radius) for word in context]
        assert as_list(got) == want
        assert torch.equal(got.offsets, torch.arange(len(want) + 1))


def test_skipgram_shuffle_permutes_the_centres_and_keeps_their_pairs_together():
    ids = torch.tensor(random_ids(random.Random(3), 500, vocab=50, p_end=0.05), dtype=torch.int64)
    plain = skipgram_examples(ids, 4, torch.Generator().manual_seed(5))
    shuffled = skipgram_examples(ids, 4, torch.Generator().manual_seed(5), shuffle=True)
    pairs = sorted(zip(plain.context.tolist(), plain.targets.tolist()))
    assert sorted(zip(shuffled.context.tolist(), shuffled.targets.tolist())) == pairs
    assert shuffled.targets.tolist() != plain.targets.tolist()
    # the shuffled CBOW windows, split: each centre's window words in a row
    windows = cbow_examples(ids, 4, torch.Generator().manual_seed(5), shuffle=True)
    assert shuffled.targets.tolist() == windows.targets.repeat_interleave(windows.sizes).tolist()
    assert torch.equal(shuffled.context, windows.context)
