"""The Python API (w2v_nce.api.Word2Vec): gensim objects out, exact probabilities, run directories."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import write_twin_corpus
from w2v_nce import Word2Vec
from w2v_nce.errors import UserError

OPTS = dict(dim=12, epochs=2, min_count=1, window=2, threads=1, device="cpu")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "twins.txt"
    write_twin_corpus(path, sentences=800)
    return path


@pytest.mark.parametrize("loss, arch", [("nce", "cbow"), ("hs", "skipgram"), ("softmax", "cbow"), ("hs", "cbow")])
def test_predict_is_the_exact_distribution(corpus, loss, arch):
    model = Word2Vec(loss=loss, arch=arch, **OPTS).train(corpus)
    vocab = len(model.wv)
    ranked = model.predict(["a3", "b7"], topn=vocab)
    probs = np.array([p for _, p in ranked])
    assert len(ranked) == vocab and math.isclose(probs.sum(), 1.0, rel_tol=1e-6)  # normalised over the vocabulary
    assert (np.diff(probs) <= 0).all()
    if loss != "hs":  # brute force: the softmax of h . out + bias over every word
        state = model._checkpoint()["model"]
        index = model.wv.key_to_index
        h = (state["inp"][index["a3"]] + state["inp"][index["b7"]]) / 2
        scores = state["out"] @ h + (state["bias"] if state["bias"] is not None else 0)
        p = torch.softmax(scores.double(), 0)
        for word, got in ranked[:5]:
            assert got == pytest.approx(float(p[index[word]]), rel=1e-5)


def test_predict_refuses_negative_sampling_and_unknown_context(corpus):
    model = Word2Vec(loss="neg", **OPTS).train(corpus)
    with pytest.raises(UserError, match="negative sampling"):
        model.predict(["a3"])
    nce = Word2Vec(loss="nce", **OPTS).train(corpus)
    with pytest.raises(UserError, match="vocabulary"):
        nce.predict(["nosuchword"])
    assert isinstance(UserError("x"), ValueError)


def test_wv_is_gensims_keyed_vectors_and_equals_the_vectors_file(corpus, tmp_path):
    from gensim.models import KeyedVectors

    model = Word2Vec(**OPTS).train(corpus, tmp_path / "run")
    assert isinstance(model.wv, KeyedVectors)
    from_file = KeyedVectors.load_word2vec_format(str(tmp_path / "run" / "vectors.txt"))
    assert model.wv.index_to_key == from_file.index_to_key
    np.testing.assert_allclose(model.wv.vectors, from_file.vectors, atol=1e-6)
    assert model.wv.get_vecattr(model.wv.index_to_key[0], "count") >= model.wv.get_vecattr(model.wv.index_to_key[-1], "count")
    assert model.wv.most_similar("a3", topn=3)  # gensim's own queries work on it


def test_save_load_round_trip_and_token_lists(tmp_path):
    sentences = [line.split() for line in
                 (write_twin_corpus(tmp_path / "c.txt", sentences=300) and (tmp_path / "c.txt").read_text().splitlines())]
    model = Word2Vec(loss="hs", **OPTS).train(sentences)
    model.save(tmp_path / "kept")
    again = Word2Vec.load(tmp_path / "kept")
    assert again.config == model.config
    assert again.predict(["a1"], topn=5) == model.predict(["a1"], topn=5)
    np.testing.assert_array_equal(again.wv.vectors, model.wv.vectors)
    # the same tokens from a file give the same model (one thread, one seed)
    from_file = Word2Vec(loss="hs", **OPTS).train(tmp_path / "c.txt")
    np.testing.assert_array_equal(from_file.wv.vectors, model.wv.vectors)


def test_untrained_and_bad_options_are_user_errors():
    with pytest.raises(UserError, match="train"):
        Word2Vec().wv
    with pytest.raises(UserError, match="unknown config key"):
        Word2Vec(dimension=5)
    with pytest.raises(UserError, match="unknown arch"):
        Word2Vec(arch="glove")


def test_resuming_through_the_api_follows_the_options_table(corpus, tmp_path):
    """One resume rule for the CLI, the API and torchrun (checkpoint.resume_config): asking the API
    to continue a neg run as nce is refused, and nothing in the run changes; settings it was not
    given come from the run (resuming an nce run with only more epochs stays nce)."""
    run = tmp_path / "neg_run"
    Word2Vec(loss="neg", **OPTS).train(corpus, out_dir=run)
    before = {name: (run / name).read_bytes() for name in ("config.toml", "metrics.json", "checkpoint.pt")}
    with pytest.raises(UserError, match="cannot change 'loss' when resuming"):
        Word2Vec(loss="nce", **OPTS).train(corpus, out_dir=run, resume=True)
    assert {name: (run / name).read_bytes() for name in before} == before

    nce_run = tmp_path / "nce_run"
    Word2Vec(loss="nce", **OPTS).train(corpus, out_dir=nce_run)
    model = Word2Vec(epochs=3, threads=1).train(corpus, out_dir=nce_run, resume=True)
    assert model.config.loss == "nce" and model.metrics["epochs"] == 3
    assert 'loss = "nce"' in (nce_run / "config.toml").read_text()
