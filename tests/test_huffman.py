"""Hierarchical softmax: the Huffman tree equals gensim's (codes and inner-node indices), and
the model it defines is a probability distribution over the vocabulary."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from w2v_nce.corpus import count_words
from w2v_nce.objectives import HierarchicalSoftmax
from w2v_nce.vocab import HuffmanTree, Vocab

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "wiki1.5m.txt.gz"


def _gensim_and_ours(words: list[str], counts: list[int]):
    """(code, point) of every word from gensim's hs=1 vocabulary, and from our tree built over
    the counts in gensim's word order (its order of equal counts is its own)."""
    from gensim.models import Word2Vec

    model = Word2Vec(vector_size=4, min_count=1, hs=1, negative=0)
    model.build_vocab_from_freq(dict(zip(words, counts)))
    order = model.wv.index_to_key
    theirs = [(list(model.wv.get_vecattr(w, "code")), list(model.wv.get_vecattr(w, "point"))) for w in order]
    tree = HuffmanTree.from_counts(np.array([model.wv.get_vecattr(w, "count") for w in order]))
    ours = [(tree.codes[i, :n].tolist(), tree.points[i, :n].tolist()) for i, n in enumerate(tree.lengths)]
    return theirs, ours, tree


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_codes_and_points_equal_gensims_on_random_counts(seed):
    rng = np.random.default_rng(seed)
    counts = sorted(rng.integers(1, 40, size=int(rng.integers(2, 400))).tolist(), reverse=True)  # many ties
    theirs, ours, _ = _gensim_and_ours([f"w{i}" for i in range(len(counts))], counts)
    assert ours == theirs


def test_codes_and_points_equal_gensims_on_the_bundled_corpus():
    counts, _ = count_words(SAMPLE)
    vocab = Vocab.from_counts(Counter(counts), min_count=5)
    theirs, ours, tree = _gensim_and_ours(vocab.words, vocab.counts.tolist())
    assert len(vocab) > 18_000 and tree.points.shape[1] > 15
    assert ours == theirs


def test_tree_shape():
    tree = HuffmanTree.from_counts(np.array([9, 5, 5, 3, 2, 1, 1]))
    assert tree.inner_nodes == 6
    assert (tree.points[:, 0] == 5).all()  # every path starts at the root, inner node V - 2
    # a prefix code: no word's code is the start of another's
    codes = ["".join(map(str, tree.codes[i, :n])) for i, n in enumerate(tree.lengths)]
    assert not any(a != b and b.startswith(a) for a in codes for b in codes)
    # Huffman: more frequent words never have longer codes
    assert all(np.diff(tree.lengths) >= 0)


def test_one_word_is_an_error():
    from w2v_nce.errors import UserError

    with pytest.raises(UserError, match="at least 2 words"):
        HuffmanTree.from_counts(np.array([4]))


@pytest.mark.parametrize("vocab", [2, 3, 17, 200])
def test_probabilities_over_the_vocabulary_sum_to_one(vocab):
    gen = torch.Generator().manual_seed(vocab)
    counts = torch.randint(1, 1000, (vocab,), generator=gen).sort(descending=True).values.numpy()
    hs = HierarchicalSoftmax(HuffmanTree.from_counts(counts))
    inner = torch.randn(8, vocab - 1, generator=gen, dtype=torch.float64) * 3  # scores of all inner nodes
    log_p = hs.vocab_log_prob(inner)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(8, dtype=torch.float64))
    # the training loss of each word is exactly -log p(word): brute force over the vocabulary
    for word in range(vocab):
        targets = torch.full((8,), word)
        cand = hs.candidates(targets)
        loss, _ = hs.loss_grad(torch.gather(inner, 1, cand.ids), cand)
        torch.testing.assert_close(loss, -log_p[:, word])
        log_prob, log_z = hs.log_prob(lambda ids: torch.gather(inner, 1, ids), targets)
        torch.testing.assert_close(log_prob, log_p[:, word])
        assert (log_z == 0).all()


def test_loss_is_gensims_update():
    """The gradient on each inner node's score is gensim's -(1 - code - σ(s)) (fast_sentence_*_hs)."""
    counts = np.array([10, 6, 3, 1])
    hs = HierarchicalSoftmax(HuffmanTree.from_counts(counts))
    cand = hs.candidates(torch.arange(4))
    scores = torch.randn(cand.ids.shape, dtype=torch.float64)
    _, grad = hs.loss_grad(scores, cand)
    code = torch.from_numpy(HuffmanTree.from_counts(counts).codes).double()
    want = -(1 - code - torch.sigmoid(scores)) * cand.mask
    torch.testing.assert_close(grad, want)
    assert F.logsigmoid(torch.tensor(0.0)) < 0  # (the loss is a sum of -log σ terms)
