"""Stopping at the best epoch (--heldout, --patience) and the API's epoch callbacks.

Oracles: `diagnose` (itself checked against explicit loops) for the exact cross-entropy; neg's
loss written out for its held-out loss; a scripted held-out sequence, whose argmin is the epoch
to keep, with the vectors a callback saw at every epoch.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import write_twin_corpus
from oracles import assert_one_error_line, invoke
from w2v_nce import StopTraining, Word2Vec
from w2v_nce.checkpoint import CHECKPOINT, load_checkpoint, load_model
from w2v_nce.diagnose import HeldOut, diagnose
from w2v_nce.errors import UserError
from w2v_nce.vectors import load_word2vec

OPTS = dict(dim=8, window=2, min_count=1, threads=1, device="cpu", sample=0.0)


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("heldout")
    write_twin_corpus(folder / "all.txt", seed=0, classes=15, sentences=360)  # one chain: held-out text like it
    lines = (folder / "all.txt").read_text().splitlines(keepends=True)
    (folder / "train.txt").write_text("".join(lines[:300]))
    (folder / "heldout.txt").write_text("".join(lines[300:]))
    return folder / "train.txt", folder / "heldout.txt"


@pytest.mark.parametrize("loss, arch", [("hs", "cbow"), ("nce", "skipgram"), ("softmax", "cbow")])
def test_heldout_loss_is_diagnoses_cross_entropy(tmp_path, texts, loss, arch):
    train, heldout = texts
    model = Word2Vec(loss=loss, arch=arch, epochs=4, batch_size=64, heldout=str(heldout), heldout_examples=500, **OPTS)
    model.train(train, tmp_path / "run")
    history = model.metrics["history"]
    assert all(math.isfinite(h["heldout"]) for h in history) and model.metrics["heldout_measure"] == "cross_entropy"
    assert model.metrics["heldout_examples"] == 500
    expected = diagnose(load_checkpoint(tmp_path / "run" / CHECKPOINT), heldout, max_examples=500).cross_entropy
    assert history[-1]["heldout"] == pytest.approx(expected, rel=1e-6)  # float32 against diagnose's float64
    assert history[-1]["heldout"] < math.log(30)  # better than the uniform distribution over the vocabulary


def test_neg_heldout_loss_is_negative_samplings_own_loss(tmp_path, texts):
    train, heldout = texts
    model = Word2Vec(loss="neg", epochs=1, **OPTS).train(train, tmp_path / "run")
    loaded = load_model(model._checkpoint())
    measure = HeldOut(heldout, loaded.vocab, loaded.objective, 2, "cbow", "whitespace", 300, seed=4)
    assert measure.measure == "neg_loss"
    got = measure.loss(loaded.model, loaded.objective)
    assert got == measure.loss(loaded.model, loaded.objective)  # the same noise words every time
    ex, cand = measure.examples, measure.candidates
    total = 0.0
    for i in range(len(ex)):  # -log σ(s_x) - Σ log σ(-s_x') over noise words other than the target
        h = loaded.model.inp[ex.context[ex.offsets[i]:ex.offsets[i + 1]]].double().mean(0)
        scores = loaded.model.out[cand.ids[i]].double() @ h
        total -= float(F.logsigmoid(scores[0]))
        total -= sum(float(F.logsigmoid(-s)) for s, w in zip(scores[1:], cand.ids[i, 1:]) if w != ex.targets[i])
    assert got == pytest.approx(total / len(ex), rel=1e-5)


def test_patience_keeps_the_argmin_epoch_and_its_vectors(tmp_path, texts, monkeypatch):
    train, heldout = texts
    scripted = iter([5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 2.0, 2.5, 2.6, 2.7, 2.8])
    monkeypatch.setattr(HeldOut, "loss", lambda self, model, objective: next(scripted))
    seen = {}

    def keep(model, record):
        seen[record["epoch"]] = model.wv.vectors.copy()

    model = Word2Vec(epochs=12, heldout=str(heldout), patience=3, callbacks=[keep], **OPTS)
    model.train(train, tmp_path / "run")
    metrics = model.metrics
    assert metrics["epochs"] == 6 and metrics["stopped"] == "patience"  # epochs 4, 5, 6 were no better than 3
    assert metrics["best_epoch"] == 3 and metrics["best_heldout"] == 3.0
    assert [h["heldout"] for h in metrics["history"]] == [5.0, 4.0, 3.0, 3.5, 3.2, 3.1]
    kept = load_word2vec(tmp_path / "run" / "vectors.txt")
    np.testing.assert_array_equal(kept.matrix, seen[3])
    assert not np.array_equal(seen[3], seen[6])
    state = load_checkpoint(tmp_path / "run" / CHECKPOINT)  # the last epoch's, resumable
    assert state["progress"]["epoch"] == 6 and torch.equal(state["model"]["inp"], torch.from_numpy(seen[6]))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["best_epoch"] == 3

    # more patience: the run goes on from epoch 6, and finds a better epoch
    model = Word2Vec(epochs=12, patience=4, callbacks=[keep]).train(train, tmp_path / "run", resume=True)
    assert model.metrics["epochs"] == 11 and model.metrics["best_epoch"] == 7
    np.testing.assert_array_equal(load_word2vec(tmp_path / "run" / "vectors.txt").matrix, seen[7])


def test_a_callback_sees_the_model_of_each_epoch_and_can_stop_it(tmp_path, texts):
    train, _ = texts
    records, similar = [], []

    def watch(model, record):
        records.append(record)
        similar.append(model.wv.most_similar("a3", topn=1))
        record["mine"] = 1  # a copy: the history is not changed
        if record["epoch"] == 2:
            raise StopTraining

    model = Word2Vec(epochs=5, callbacks=[watch], **OPTS).train(train, tmp_path / "run")
    assert model.metrics["epochs"] == 2 and model.metrics["stopped"] == "callback"
    assert [r["epoch"] for r in records] == [1, 2] and len(similar) == 2
    assert [{k: v for k, v in r.items() if k != "mine"} for r in records] == model.metrics["history"]
    assert "mine" not in model.metrics["history"][0]
    assert model.wv.most_similar("a3", topn=1) == similar[-1]  # the last callback saw the final model

    def fail(model, record):
        raise RuntimeError("boom")

    failing = Word2Vec(epochs=2, callbacks=[fail], **OPTS)
    with pytest.raises(RuntimeError, match="boom"):
        failing.train(train, tmp_path / "failed")
    with pytest.raises(UserError, match="train"):  # still untrained, not half of the failed run
        failing.wv


def test_bad_heldout_is_one_error_line(tmp_path, texts):
    train, _ = texts
    (tmp_path / "unknown.txt").write_text("zz yy xx\n")
    opts = ["-q", "--min-count", "1", "--dim", "8", "--epochs", "1", "--threads", "1", "--device", "cpu"]
    out_dir = tmp_path / "out"
    assert_one_error_line(*invoke(["train", train, "--out", out_dir, "--heldout", tmp_path / "unknown.txt", *opts]),
                          "no in-vocabulary words")
    assert not out_dir.exists()
    assert_one_error_line(*invoke(["train", train, "--out", out_dir, "--heldout", tmp_path / "none.txt", *opts]),
                          "does not exist")
    assert_one_error_line(*invoke(["train", train, "--out", out_dir, "--patience", "2", *opts]), "heldout")
    assert not out_dir.exists()


def test_plot_draws_the_heldout_curve(tmp_path, texts):
    pytest.importorskip("matplotlib")
    from w2v_nce.plot import plot_run

    train, heldout = texts
    Word2Vec(epochs=2, heldout=str(heldout), **OPTS).train(train, tmp_path / "run")
    assert plot_run(tmp_path / "run").stat().st_size > 1000
