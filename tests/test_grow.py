"""Growing a model (w2v_nce.grow): train --init RUN [--update-vocab], --init-vectors, --lock-init.

Oracles: counts brute-forced from the two texts and gensim's build_vocab(update=True); the fresh
rows a new run draws (its seeded generator); the Huffman tree and noise distribution built from
the brute-force counts; a set-based brute force of the inner-node map; autograd's step with the
frozen rows' gradient masked; the rows the window kernel really writes.

Training "frozen" at lr 1e-30 leaves every non-zero float32 entry as it was (the step is far
below half an ulp), so the tables a grown run starts from can be read from its checkpoint.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_planted_phrases, write_twin_corpus
from oracles import assert_one_error_line, autograd_step, invoke
from w2v_nce import Word2Vec
from w2v_nce.checkpoint import CHECKPOINT, load_checkpoint, load_model
from w2v_nce.config import ARCHS, LOSSES
from w2v_nce.errors import UserError
from w2v_nce.grow import FrozenRows, _input_rows, grown_vocab
from w2v_nce.model import Model
from w2v_nce.objectives import make_objective
from w2v_nce.sampler import AliasSampler, unigram_power
from w2v_nce.steps import Batched
from w2v_nce.updates import make_update
from w2v_nce.vectors import Vectors, load_word2vec, save_word2vec
from w2v_nce.vocab import HuffmanTree, Vocab
from w2v_nce.windows import EXAMPLES, Centres

OPTS = ["-q", "--dim", "8", "--window", "2", "--threads", "1", "--device", "cpu", "--min-count", "3"]
FROZEN = ["--lr", "1e-30"]  # trains, but moves no non-zero float32 entry


def write_old_and_new(folder: Path) -> tuple[Path, Path]:
    """OLD: twins of classes 0..19 and a word below min_count 3; NEW: twins of classes 0..24 (ten
    new words), a new word seen exactly min_count times, one seen fewer, and OLD's rare word again
    (RUN kept no count of it: only its new count decides, as in gensim)."""
    old, new = folder / "old.txt", folder / "new.txt"
    write_twin_corpus(old, seed=0, classes=20, sentences=300)
    write_twin_corpus(new, seed=1, classes=25, sentences=150)
    with open(old, "a") as f:
        f.write("oldrare a1 oldrare\n")
    with open(new, "a") as f:
        f.write("edge a2 edge b3 edge\nrare a4 rare\noldrare b5 oldrare\n")
    return old, new


def tokens(path: Path) -> Counter:
    return Counter(path.read_text().split())


def brute_merged_counts(old: Path, new: Path, min_count: int) -> dict[str, int]:
    kept = {w for w, c in tokens(old).items() if c >= min_count}
    new_counts = tokens(new)
    merged = {w: tokens(old)[w] + new_counts[w] for w in kept}
    merged.update({w: c for w, c in new_counts.items() if w not in kept and c >= min_count})
    return merged


def fresh_rows(vocab_size: int, dim: int, seed: int = 1) -> torch.Tensor:
    """The input table a new run draws before training (model.Model with the trainer's generator)."""
    return (torch.rand(vocab_size, dim, generator=torch.Generator().manual_seed(seed)) * 2 - 1) / dim


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    return write_old_and_new(tmp_path_factory.mktemp("grow"))


def rows_of(state: dict, table: str = "inp") -> dict[str, torch.Tensor]:
    return dict(zip(state["words"], state["model"][table]))


# --------------------------------------------------------------------------- --init --update-vocab


@pytest.mark.parametrize("loss", ["neg", "hs", "nce"])
def test_update_vocab_merges_counts_and_keeps_the_old_rows(tmp_path, texts, loss):
    old, new = texts
    run, grown = tmp_path / "run", tmp_path / "grown"
    assert invoke(["train", old, "--out", run, "--loss", loss, "--epochs", "2", *OPTS])[0] == 0
    before = digest(run)
    code, out, err = invoke(["train", new, "--init", run, "--out", grown, "--update-vocab", "--epochs", "1",
                             *FROZEN, *OPTS])
    assert code == 0, err
    assert digest(run) == before  # RUN is only read
    assert {"checkpoint.pt", "config.toml", "metrics.json", "vectors.txt"} <= {p.name for p in grown.iterdir()}

    parent, child = load_checkpoint(run / CHECKPOINT), load_checkpoint(grown / CHECKPOINT)
    merged = brute_merged_counts(old, new, 3)
    assert dict(zip(child["words"], child["counts"].tolist())) == merged
    assert "edge" in merged and "rare" not in merged and "oldrare" not in merged and "a24" in merged
    assert (np.diff(child["counts"].numpy()) <= 0).all()  # sorted by the merged count

    # old words keep their rows; new words have the rows a new run draws at their place
    old_inp, new_inp = rows_of(parent), rows_of(child)
    fresh = fresh_rows(len(child["words"]), 8)
    for i, word in enumerate(child["words"]):
        if word in old_inp:
            assert torch.equal(new_inp[word], old_inp[word]), word
        else:
            assert torch.equal(new_inp[word], fresh[i]), word
    loaded = load_model(child)
    counts = np.array([merged[w] for w in child["words"]])
    if loss == "hs":  # the tree of the merged counts, whose inner nodes start at zero as a new run's
        tree = HuffmanTree.from_counts(counts)
        assert torch.equal(loaded.objective.points, torch.from_numpy(tree.points))
        assert child["model"]["out"].abs().max() < 1e-20  # fresh zero rows, moved by lr 1e-30 at most
        assert parent["model"]["out"].abs().max() > 0.01
    else:  # the noise distribution of the merged counts; output rows and biases by word
        np.testing.assert_allclose(loaded.objective.sampler.prob.numpy(), counts ** 0.75 / (counts ** 0.75).sum(),
                                   rtol=1e-6)
        old_out, new_out = rows_of(parent, "out"), rows_of(child, "out")
        for word in child["words"]:
            assert torch.equal(new_out[word], old_out[word]) if word in old_out else new_out[word].abs().max() < 1e-20
        if loss == "nce":
            old_bias = dict(zip(parent["words"], parent["model"]["bias"].tolist()))
            new_bias = dict(zip(child["words"], child["model"]["bias"].tolist()))
            total = counts.sum()
            for word, count in merged.items():
                want = old_bias[word] if word in old_bias else np.log(count / total)
                assert new_bias[word] == pytest.approx(want, abs=1e-6), word
    lineage = child["lineage"]
    assert lineage == [{"run": str(run.resolve()), "corpus": str(old), "words": parent["progress"]["words_done"],
                        "epochs": 2, "vocab_size": len(parent["words"])}]


def test_new_words_and_merged_counts_equal_gensims_update(tmp_path, texts):
    """gensim's build_vocab(update=True) adds the same words with the same merged counts."""
    from gensim.models import Word2Vec as GensimWord2Vec

    old, new = texts
    model = GensimWord2Vec(vector_size=4, min_count=3, sample=0, workers=1)
    model.build_vocab([line.split() for line in old.read_text().splitlines()])
    model.build_vocab([line.split() for line in new.read_text().splitlines()], update=True)
    theirs = {w: int(model.wv.get_vecattr(w, "count")) for w in model.wv.index_to_key}

    run = Word2Vec(dim=4, min_count=3, epochs=1, threads=1, window=2).train(old, tmp_path / "run")
    ours = run.train(new, tmp_path / "grown", update_vocab=True, epochs=1)
    assert dict(zip(ours.wv.index_to_key, ours.wv.expandos["count"].tolist())) == theirs
    assert ours.run_dir == tmp_path / "grown" and (tmp_path / "run" / CHECKPOINT).exists()


def test_without_update_vocab_the_vocabulary_and_every_row_carry_over(tmp_path, texts):
    old, new = texts
    run, grown, doubled = tmp_path / "run", tmp_path / "grown", tmp_path / "doubled"
    assert invoke(["train", old, "--out", run, "--loss", "hs", "--epochs", "1", *OPTS])[0] == 0
    assert invoke(["train", new, "--init", run, "--out", grown, "--epochs", "1", *FROZEN, *OPTS])[0] == 0
    parent, child = load_checkpoint(run / CHECKPOINT), load_checkpoint(grown / CHECKPOINT)
    assert child["words"] == parent["words"] and torch.equal(child["counts"], parent["counts"])
    assert torch.equal(child["model"]["inp"], parent["model"]["inp"])
    assert torch.equal(child["model"]["out"], parent["model"]["out"])  # the same tree: every inner node its own row
    assert "a24" not in child["words"]  # new words are ignored
    # the same text again, with --update-vocab: every count doubles, the tree stays, and so do its rows
    assert invoke(["train", old, "--init", run, "--out", doubled, "--update-vocab", "--epochs", "1", *FROZEN,
                   *OPTS])[0] == 0
    again = load_checkpoint(doubled / CHECKPOINT)
    assert again["words"] == parent["words"] and torch.equal(again["counts"], 2 * parent["counts"])
    assert torch.equal(again["model"]["out"], parent["model"]["out"])


def test_resume_of_a_grown_run_and_a_second_generation(tmp_path, texts):
    old, new = texts
    run, grown, again = tmp_path / "run", tmp_path / "grown", tmp_path / "again"
    assert invoke(["train", old, "--out", run, "--epochs", "1", *OPTS])[0] == 0
    assert invoke(["train", new, "--init", run, "--out", grown, "--update-vocab", "--epochs", "1", *OPTS])[0] == 0
    code, _, err = invoke(["train", new, "--init", run, "--out", grown, "--resume", "--epochs", "2", *OPTS])
    assert code == 0, err
    state = load_checkpoint(grown / CHECKPOINT)
    assert state["progress"]["epoch"] == 2 and len(state["lineage"]) == 1
    code, out, err = invoke(["train", new, "--init", again, "--out", grown, "--resume", *OPTS])
    assert_one_error_line(code, out, err, "continues", str(run.resolve()))
    assert invoke(["train", old, "--init", grown, "--out", again, "--epochs", "1", *OPTS])[0] == 0
    assert [e["run"] for e in load_checkpoint(again / CHECKPOINT)["lineage"]] == [str(run.resolve()),
                                                                                  str(grown.resolve())]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("loss", LOSSES)
def test_every_arch_and_loss_grows(tmp_path, texts, arch, loss):
    old, new = texts
    model = Word2Vec(arch=arch, loss=loss, dim=4, window=2, min_count=3, epochs=1, threads=1, device="cpu",
                     lr=0.01)
    model.train(old, tmp_path / "run")
    before = len(model.wv)
    model.train(new, tmp_path / "grown", update_vocab=True)
    assert len(model.wv) == before + 11 and "edge" in model.wv  # ten twins and edge
    assert np.isfinite(model.wv.vectors).all()
    assert model.metrics["lineage"][0]["run"] == str((tmp_path / "run").resolve())


def test_a_phrase_run_is_continued_with_its_phrase_model(tmp_path):
    corpus, more = tmp_path / "c.txt", tmp_path / "more.txt"
    planted = write_planted_phrases(corpus, sentences=600)
    run = tmp_path / "run"
    Word2Vec(phrases=2, phrase_threshold=(10.0, 5.0), dim=4, min_count=1, epochs=1, threads=1, window=2).train(corpus,
                                                                                                               run)
    more.write_text("new york times is big\nlos angeles lakers\n" * 5)
    model = Word2Vec.load(run).train(more, tmp_path / "grown", update_vocab=True)
    assert (tmp_path / "grown" / "phrases.json").read_bytes() == (run / "phrases.json").read_bytes()
    counts = dict(zip(model.wv.index_to_key, model.wv.expandos["count"].tolist()))
    assert counts["new_york_times"] == planted["new_york_times"] + 5 and counts["lakers"] == 5
    parent = load_checkpoint(run / CHECKPOINT)
    parent_counts = dict(zip(parent["words"], parent["counts"].tolist()))
    assert counts.get("york", 0) == parent_counts.get("york", 0)  # the new text's york is inside its phrases


def test_bad_init_is_one_error_line_and_writes_nothing(tmp_path, texts):
    old, new = texts
    run = tmp_path / "run"
    assert invoke(["train", old, "--out", run, "--epochs", "1", *OPTS])[0] == 0
    before = digest(run)
    cases = [
        (["--init", tmp_path / "nothing"], ["does not exist"]),
        (["--init", tmp_path], ["not a run directory"]),
        (["--init", run, "--dim", "16"], ["cannot change 'dim'", "16"]),
        (["--init", run, "--loss", "hs"], ["cannot change 'loss'"]),
        (["--init", run, "--arch", "skipgram"], ["cannot change 'arch'"]),
        (["--update-vocab"], ["--init"]),
    ]
    for extra, fragments in cases:
        out_dir = tmp_path / "out"
        assert_one_error_line(*invoke(["train", new, "--out", out_dir, *OPTS, *extra]), *fragments)
        assert not out_dir.exists(), extra
    assert_one_error_line(*invoke(["train", new, "--out", run, "--init", run, *OPTS]), "is the --init run itself")
    assert digest(run) == before


# --------------------------------------------------------------------------- hs inner nodes (research variant)


def brute_inner_map(old: HuffmanTree, new: HuffmanTree, old_word: np.ndarray) -> dict[int, tuple[int, float]]:
    """Sets of words: new node n (left L, right R) takes old node m's row when m is the smallest
    old node holding all old words of L and R, and L, R lie below opposite children of m."""
    def sides(tree):
        left, right = defaultdict(set), defaultdict(set)
        for w, n in enumerate(tree.lengths):
            for j in range(n):
                (left if tree.codes[w, j] == 0 else right)[int(tree.points[w, j])].add(w)
        return left, right

    old_left, old_right = sides(old)
    new_left, new_right = sides(new)
    expected = {}
    for row in range(len(new.lengths) - 1):
        lo = {int(old_word[w]) for w in new_left[row] if old_word[w] >= 0}
        ro = {int(old_word[w]) for w in new_right[row] if old_word[w] >= 0}
        if not lo or not ro:
            continue
        m = min((m for m in range(len(old.lengths) - 1) if lo | ro <= old_left[m] | old_right[m]),
                key=lambda m: len(old_left[m] | old_right[m]))
        if lo <= old_left[m] and ro <= old_right[m]:
            expected[row] = (m, 1.0)
        elif lo <= old_right[m] and ro <= old_left[m]:
            expected[row] = (m, -1.0)
    return expected


def bench_grow():
    """scripts/bench_grow.py as a module (it imports its neighbour bench_vs_gensim)."""
    import importlib.util
    import sys

    scripts = Path(__file__).resolve().parent.parent / "scripts"
    sys.path.insert(0, str(scripts))
    try:
        spec = importlib.util.spec_from_file_location("bench_grow", scripts / "bench_grow.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(scripts))
    return module


@pytest.mark.parametrize("seed", range(6))
def test_the_measured_same_decision_map_equals_the_set_brute_force(seed):
    """scripts/bench_grow.py's alternative to zero inner rows (docs/results.md measures it)."""
    inner_node_map = bench_grow().same_decision_rows
    rng = np.random.default_rng(seed)
    old = Vocab([f"w{i}" for i in range(int(rng.integers(2, 40)))], [])
    old = Vocab(old.words, np.sort(rng.integers(1, 60, len(old.words)))[::-1])
    new_words = [f"w{i}" for i in rng.permutation(len(old.words) + 8)]  # some old words, some new
    new = Vocab(new_words, np.sort(rng.integers(1, 60, len(new_words)))[::-1])
    grown = grown_vocab(old, new, min_count=int(rng.integers(1, 30)))
    old_word = np.array([old.index.get(w, -1) for w in grown.words])
    old_tree, new_tree = HuffmanTree.from_counts(old.counts), HuffmanTree.from_counts(grown.counts)
    rows, sources, signs = inner_node_map(old_tree, new_tree, old_word)
    got = {int(r): (int(s), float(g)) for r, s, g in zip(rows, sources, signs)}
    assert got == brute_inner_map(old_tree, new_tree, old_word)
    same = inner_node_map(old_tree, old_tree, np.arange(len(old.words)))  # an unchanged tree maps to itself
    assert same[0].tolist() == same[1].tolist() == list(range(len(old.words) - 1)) and (same[2] == 1).all()


# --------------------------------------------------------------------------- --init-vectors, --lock-init


def write_vectors(path: Path, words: list[str], dim: int, seed: int = 3, binary: bool = False) -> Vectors:
    gen = torch.Generator().manual_seed(seed)
    vectors = Vectors(words, (torch.randn(len(words), dim, generator=gen) * 0.3).numpy())
    save_word2vec(vectors, path, binary=binary)
    return load_word2vec(path)


@pytest.mark.parametrize("binary", [False, True])
def test_init_vectors_give_matched_words_the_files_vectors(tmp_path, texts, binary, recwarn):
    old, _ = texts
    words = [f"a{i}" for i in range(20)] + ["notaword", "another"]
    given = write_vectors(tmp_path / "v.bin", words, 8, binary=binary)
    code, out, err = invoke(["train", old, "--out", tmp_path / "run", "--init-vectors", tmp_path / "v.bin",
                             "--epochs", "1", *FROZEN, *OPTS])
    assert code == 0, err
    assert "warning: --init-vectors" in err and "20 of the 40 vocabulary words" in err
    state = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    rows = rows_of(state)
    fresh = fresh_rows(len(state["words"]), 8)
    for i, word in enumerate(state["words"]):
        want = torch.from_numpy(given.matrix[given.index[word]]) if word in given else fresh[i]
        assert torch.equal(rows[word], want), word


@pytest.mark.parametrize("step, loss, arch, threads", [
    ("auto", "neg", "cbow", 2),  # the window kernel, two Hogwild threads
    ("auto", "hs", "skipgram", 1),
    ("auto", "rnce", "cbow", 1),  # the batched kernel
    ("batched", "nce", "skipgram", 2),  # tensor operations
])
def test_lock_init_keeps_the_rows_bit_identical_and_the_others_train(tmp_path, texts, step, loss, arch, threads):
    old, _ = texts
    given = write_vectors(tmp_path / "v.txt", [f"a{i}" for i in range(20)] + ["b3"], 8)
    model = Word2Vec(dim=8, window=2, min_count=3, epochs=2, threads=threads, device="cpu", step=step, loss=loss,
                     arch=arch, init_vectors=str(tmp_path / "v.txt"), lock_init=True)
    with pytest.warns(UserWarning, match="21 of the 40"):
        model.train(old, tmp_path / "run")
    state = model._checkpoint()
    fresh = fresh_rows(len(state["words"]), 8)
    assert model.metrics["frozen_rows"] == 21
    for i, (word, row) in enumerate(rows_of(state).items()):
        if word in given:
            assert torch.equal(row, torch.from_numpy(given.matrix[given.index[word]])), word
        else:
            assert not torch.equal(row, fresh[i]), word  # trained
    assert len(state["frozen_rows"]) == 21
    # resuming keeps them frozen
    model = Word2Vec(epochs=3).train(old, tmp_path / "run", resume=True)
    for word, row in rows_of(model._checkpoint()).items():
        if word in given:
            assert torch.equal(row, torch.from_numpy(given.matrix[given.index[word]])), word


@pytest.mark.parametrize("one_stream", [False, True], ids=["cpu", "gpu-way"])
def test_frozen_rows_on_the_batched_step_are_its_masked_gradient(one_stream):
    """FrozenRows(Batched) equals autograd's step with the frozen rows' gradient masked: the
    other rows move exactly as without a lock, the frozen ones not at all; both ways of putting
    them back (the CPU's, the GPU's without a host sync) run here on the CPU."""
    vocab, dim, lr = 14, 5, 0.1
    gen = torch.Generator().manual_seed(0)
    counts = np.arange(vocab, 0, -1) * 3
    objective = make_objective("neg", AliasSampler(unigram_power(counts)), 4)
    model = Model(vocab, dim, bias=False, device=torch.device("cpu"), generator=gen)
    model.out = torch.randn(vocab, dim, generator=gen) * 0.5
    batch = EXAMPLES["cbow"](torch.randint(0, vocab, (60,), generator=gen), 3, gen)
    batch.candidates = objective.draw(batch.targets, gen)
    frozen = torch.tensor([0, 2, 5, 9])
    assert torch.isin(batch.context, frozen).any()
    tables = (model.inp.clone(), model.out.clone(), None)
    _, (inp, out, _) = autograd_step(objective, batch, objective.complete(batch.targets, batch.candidates), tables, lr)
    inp[frozen] = tables[0][frozen]
    step = FrozenRows(Batched(), model.inp, frozen)
    step.one_stream = one_stream
    step(model, objective, batch, lr, make_update("sum", 1.0))
    torch.testing.assert_close(model.out, out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.inp, inp, rtol=1e-5, atol=1e-6)
    assert torch.equal(model.inp[frozen], tables[0][frozen])


@pytest.mark.parametrize("arch", ARCHS)
def test_the_rows_a_kernel_slice_writes_are_among_those_restored(arch):
    from w2v_nce.steps import WindowKernel, fused

    if not fused.AVAILABLE:
        pytest.skip("the kernel is not built")
    vocab, dim = 2000, 6
    gen = torch.Generator().manual_seed(1)
    counts = np.arange(vocab, 0, -1) * 2
    objective = make_objective("neg", AliasSampler(unigram_power(counts)), 3)
    model = Model(vocab, dim, bias=False, device=torch.device("cpu"), generator=gen)
    model.out = torch.randn(vocab, dim, generator=gen)
    ids = torch.randint(0, vocab, (3000,), generator=gen)
    ids[::37] = -1
    centres = Centres.of(ids, 3, arch, gen, shuffle=True)
    batch = centres.slice(100, 400)
    before = model.inp.clone()
    WindowKernel()(model, objective, batch, 0.1, make_update("sum", 1.0))
    written = set(torch.nonzero((model.inp != before).any(1)).squeeze(1).tolist())
    assert written and written <= set(_input_rows(batch).tolist())
    assert len(set(_input_rows(batch).tolist())) < vocab  # not simply every row


def test_bad_init_vectors_are_one_error_line(tmp_path, texts):
    old, _ = texts
    write_vectors(tmp_path / "dim4.txt", ["a1", "a2"], 4)
    write_vectors(tmp_path / "none.txt", ["zz", "yy"], 8)
    (tmp_path / "bad.txt").write_text("2 8\na1 0 0\n")
    for name, fragment in (("dim4.txt", "dimension 4"), ("none.txt", "none of its 2 words"), ("bad.txt", "line 2"),
                           ("missing.txt", "does not exist")):
        out_dir = tmp_path / "out"
        assert_one_error_line(*invoke(["train", old, "--out", out_dir, "--init-vectors", tmp_path / name, *OPTS]),
                              fragment)
        assert not out_dir.exists()
    assert_one_error_line(*invoke(["train", old, "--out", tmp_path / "out", "--lock-init", *OPTS]), "init_vectors")
    with pytest.raises(UserError, match="lock_init"):
        Word2Vec(lock_init=True)
