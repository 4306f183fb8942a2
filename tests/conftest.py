"""Shared fixtures: one CPU thread for torch (the test machine is shared), small corpora."""

from __future__ import annotations

import os
import random

import pytest
import torch


def pytest_configure(config):
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_thread():
    # train(threads=...) may change the thread count; put it back for every test.
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


def write_twin_corpus(path, seed: int = 0, classes: int = 40, fanout: int = 3, sentences: int = 3000,
                      length: int = 10):
    """A corpus from a Markov chain over `classes` word classes, each emitted as one of two
    "twin" words (a<c>, b<c>) uniformly. Twins never need to co-occur but have identical
    left and right context distributions, so CBOW should place them next to each other.

    Returns the list of twin pairs [(a0, b0), ...].
    """
    rng = random.Random(seed)
    # successors from `fanout` random permutations: the chain is doubly stochastic, so every
    # class (and word) is about equally frequent and none is too rare to learn
    perms = [rng.sample(range(classes), classes) for _ in range(fanout)]
    successors = [[perm[c] for perm in perms] for c in range(classes)]
    twins = [(f"a{c}", f"b{c}") for c in range(classes)]
    lines = []
    for _ in range(sentences):
        c = rng.randrange(classes)
        tokens = []
        for _ in range(length):
            tokens.append(rng.choice(twins[c]))
            c = rng.choice(successors[c])
        lines.append(" ".join(tokens))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return twins


def write_planted_phrases(path, seed: int = 0, sentences: int = 1500) -> dict:
    """Uniform random words w0..w299 (no pair of them is seen 5 times) with "new york times",
    "new york" and "los angeles" planted; returns how many of each were planted. Two passes of
    word2vec scoring at thresholds 10 then 5 join new_york and los_angeles, then new_york_times,
    and nothing else."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(300)]
    planted: dict = {}
    lines = []
    for _ in range(sentences):
        tokens = []
        for _ in range(12):
            r = rng.random()
            phrase = "new_york_times" if r < 0.03 else "new_york" if r < 0.06 else "los_angeles" if r < 0.09 else None
            if phrase:
                planted[phrase] = planted.get(phrase, 0) + 1
                tokens += phrase.split("_")
            else:
                tokens.append(rng.choice(words))
        lines.append(" ".join(tokens))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return planted


@pytest.fixture
def twin_corpus(tmp_path):
    path = tmp_path / "twins.txt"
    twins = write_twin_corpus(path)
    return path, twins


def require_kernel() -> None:
    """Skip the calling test where the fused CPU kernel was not built (no C compiler at install),
    except in CI (CI=true), where the install must have built it: fail there."""
    from w2v_nce import fused

    if not fused.AVAILABLE:
        if os.environ.get("CI"):
            pytest.fail("the fused CPU kernel was not built by the install (setup.py)")
        pytest.skip("the fused CPU kernel is not built")


@pytest.fixture(params=["kernel", "pytorch"])
def cpu_path(request, monkeypatch):
    """Run a test through the fused CPU kernel (w2v_nce.fused) and through the PyTorch path."""
    from w2v_nce import fused

    if request.param == "kernel":
        require_kernel()
    else:
        monkeypatch.setattr(fused, "AVAILABLE", False)
    return request.param
