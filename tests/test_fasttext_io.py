"""What a subword run gives its users (w2v_nce.fasttext_io, the CLI): gensim's FastTextKeyedVectors
whose vectors are the means of the words' rows computed here by hand, Facebook's .bin as gensim's
load_facebook_model / load_facebook_vectors and fastText's own load_model read it, vectors for
unseen words in the query commands (--oov), and every bad query one error line."""

from __future__ import annotations

import numpy as np
import pytest
from gensim.models.fasttext import FastTextKeyedVectors, ft_ngram_hashes, load_facebook_model, load_facebook_vectors

from conftest import write_twin_corpus
from oracles import fasttext_matrix, small_cfg
from w2v_nce import Word2Vec
from w2v_nce.checkpoint import CHECKPOINT, load_checkpoint
from w2v_nce.cli import main
from w2v_nce.errors import UserError
from w2v_nce.fasttext_io import keyed_vectors, save_fasttext_bin
from w2v_nce.train import train

UNSEEN = ["a333", "zebra", "b7ü", "日本語"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("ft") / "twins.txt"
    write_twin_corpus(path, sentences=400)
    with open(path, "a", encoding="utf-8") as f:  # a few non-ASCII words with their n-grams
        f.write("naïve straße où a1 b2 ñandú\n" * 5)
    return path


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    """Small trained runs: subword skip-gram neg, CBOW hs, and word-level CBOW neg."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for name, kw in {"sg_neg": dict(arch="skipgram", loss="neg", subwords=True, buckets=500),
                     "cbow_hs": dict(arch="cbow", loss="hs", subwords=True, buckets=300, minn=4, maxn=5),
                     "words": dict(arch="cbow", loss="neg")}.items():
        train(corpus, root / name, small_cfg(epochs=1, dim=10, **kw), progress_bar=False)
        made[name] = root / name
    return made


def by_hand(state: dict, word: str) -> np.ndarray:
    """fastText's getWordVector from the checkpoint's table as fastText's (oracles.fasttext_matrix):
    the mean of the word's row (if known) and its n-grams' rows, the buckets from gensim's hash."""
    cfg, words, table = state["config"], list(state["words"]), fasttext_matrix(state).astype(np.float64)
    rows = [words.index(word)] if word in words else []
    rows += [len(words) + int(b) for b in ft_ngram_hashes(word, cfg["minn"], cfg["maxn"], cfg["buckets"])]
    return table[rows].mean(0)


@pytest.mark.parametrize("name", ["sg_neg", "cbow_hs"])
def test_wv_is_fasttexts_keyed_vectors_of_our_tables(runs, name):
    from gensim.models import KeyedVectors

    model = Word2Vec.load(runs[name])
    state = load_checkpoint(runs[name] / CHECKPOINT)
    kv = model.wv
    assert isinstance(kv, FastTextKeyedVectors)
    for word in kv.index_to_key[:5] + ["naïve", "straße"] + UNSEEN:
        np.testing.assert_allclose(kv[word], by_hand(state, word), rtol=1e-5, atol=1e-7)
    assert "a333" not in kv.key_to_index and kv.most_similar("a333", topn=3)
    # gensim's own composition of the same tables gives the same word vectors
    again = FastTextKeyedVectors(kv.vector_size, kv.min_n, kv.max_n, kv.bucket)
    again.add_vectors(kv.index_to_key, np.zeros_like(kv.vectors))
    again.vectors_vocab, again.vectors_ngrams = kv.vectors_vocab, kv.vectors_ngrams
    again.recalc_char_ngram_buckets()
    again.adjust_vectors()
    np.testing.assert_allclose(kv.vectors, again.vectors, rtol=1e-5, atol=1e-7)
    assert [b.tolist() for b in kv.buckets_word] == [b.tolist() for b in again.buckets_word]
    # vectors.txt holds the same word vectors (fastText's .vec)
    from_file = KeyedVectors.load_word2vec_format(str(runs[name] / "vectors.txt"))
    assert from_file.index_to_key == kv.index_to_key
    np.testing.assert_allclose(from_file.vectors, kv.vectors, atol=1e-6)
    assert list(kv.expandos["count"]) == state["counts"].tolist()


@pytest.mark.parametrize("name", ["sg_neg", "cbow_hs", "words"])
def test_the_fasttext_bin_reads_back_in_gensim(runs, name, tmp_path):
    state = load_checkpoint(runs[name] / CHECKPOINT)
    ours = keyed_vectors(state)
    save_fasttext_bin(state, tmp_path / "model.bin")
    full, wv = load_facebook_model(str(tmp_path / "model.bin")), load_facebook_vectors(str(tmp_path / "model.bin"))
    for theirs in (full.wv, wv):
        assert theirs.index_to_key == ours.index_to_key
        np.testing.assert_allclose(theirs.vectors, ours.vectors, rtol=1e-6, atol=1e-7)
        if name != "words":
            for word in UNSEEN:
                np.testing.assert_allclose(theirs[word], ours[word], rtol=1e-6, atol=1e-7)
    cfg = state["config"]
    assert (full.wv.min_n, full.wv.max_n, full.wv.bucket) == ((cfg["minn"], cfg["maxn"], cfg["buckets"])
                                                              if cfg["maxn"] else (cfg["minn"], 0, 0))
    assert (full.sg, full.hs, full.window, full.epochs) == (cfg["arch"] == "skipgram", cfg["loss"] == "hs",
                                                            cfg["window"], cfg["epochs"])
    out = state["model"]["out"].numpy()
    np.testing.assert_array_equal((full.syn1 if cfg["loss"] == "hs" else full.syn1neg)[: len(out)], out)


@pytest.mark.parametrize("name", ["sg_neg", "cbow_hs", "words"])
def test_the_fasttext_bin_reads_back_in_fasttext(runs, name, tmp_path):
    fasttext = pytest.importorskip("fasttext", reason="fasttext-wheel is an optional test dependency")
    state = load_checkpoint(runs[name] / CHECKPOINT)
    ours = keyed_vectors(state)
    save_fasttext_bin(state, tmp_path / "model.bin")
    ft = fasttext.load_model(str(tmp_path / "model.bin"))
    assert ft.get_words() == ours.index_to_key
    table = fasttext_matrix(state) if name != "words" else state["model"]["inp"].numpy()
    np.testing.assert_array_equal(ft.get_input_matrix(), table)
    for word in ours.index_to_key[:20] + ["naïve", "straße"]:
        np.testing.assert_allclose(ft.get_word_vector(word), ours[word], rtol=1e-5, atol=1e-7)
    if name != "words":
        for word in UNSEEN:
            np.testing.assert_allclose(ft.get_word_vector(word), by_hand(state, word), rtol=1e-5, atol=1e-7)
            assert ft.get_subwords(word)[1].tolist() == [len(ours) + int(b) for b in ft_ngram_hashes(
                word, ours.min_n, ours.max_n, ours.bucket)]


# --------------------------------------------------------------------------- the command line


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error(code: int, out: str, err: str, fragment: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert "Traceback" not in out + err


def test_vectors_prints_any_words_vector(runs, capsys, monkeypatch):
    import io

    state = load_checkpoint(runs["sg_neg"] / CHECKPOINT)
    code, out, _ = cli(capsys, "vectors", runs["sg_neg"], "a3", "zebra")
    assert code == 0
    for line, word in zip(out.splitlines(), ["a3", "zebra"]):
        name, *values = line.split(" ")
        assert name == word and len(values) == 10
        np.testing.assert_allclose(np.array(values, dtype=float), by_hand(state, word), rtol=1e-4, atol=1e-5)
    monkeypatch.setattr("sys.stdin", io.StringIO("a3 zebra\n"))
    assert cli(capsys, "vectors", runs["sg_neg"])[1] == out  # words from standard input
    one_error(*cli(capsys, "vectors", runs["words"], "a3", "zebra"), "'zebra' is not in the vocabulary (and the "
              "model has no subwords")
    one_error(*cli(capsys, "vectors", runs["cbow_hs"], "x"), "'x' is not in the vocabulary and has no character "
              "n-grams of 4 to 5")


def test_export_fasttext_and_query_the_bin(runs, capsys, tmp_path):
    code, out, _ = cli(capsys, "export", runs["sg_neg"], "--format", "fasttext", "--out", tmp_path / "m.bin")
    assert code == 0 and "500 n-gram buckets" in out
    from_run = cli(capsys, "neighbors", runs["sg_neg"], "zebra", "--oov", "--json")[1]
    from_bin = cli(capsys, "neighbors", tmp_path / "m.bin", "zebra", "--oov", "--json")[1]
    assert from_run == from_bin
    one_error(*cli(capsys, "export", runs["sg_neg"], "--format", "fasttext", "--which", "output", "--out",
                   tmp_path / "o.bin"), "leave out --which")
    (tmp_path / "bad.bin").write_bytes((tmp_path / "m.bin").read_bytes()[:3000])
    one_error(*cli(capsys, "neighbors", tmp_path / "bad.bin", "a3"), "cannot be read")


def test_neighbors_with_oov_are_gensims_most_similar(runs, capsys):
    import json

    kv = Word2Vec.load(runs["sg_neg"]).wv
    code, out, _ = cli(capsys, "neighbors", runs["sg_neg"], "-p", "zebra", "a3", "-n", "b7", "--oov", "--json",
                       "--topn", "4")
    assert code == 0
    found = [(n["word"], n["similarity"]) for n in json.loads(out)["neighbors"]]
    expected = kv.most_similar(positive=["zebra", "a3"], negative=["b7"], topn=4)
    assert [w for w, _ in found] == [w for w, _ in expected]
    np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], rtol=1e-6)
    one_error(*cli(capsys, "neighbors", runs["sg_neg"], "zebra"), "--oov gives it")
    one_error(*cli(capsys, "neighbors", runs["words"], "a3", "--oov"), "--oov needs subwords")
    one_error(*cli(capsys, "neighbors", runs["words"] / "vectors.txt", "a3", "--oov"), "--oov needs subwords")


def test_similarity_with_oov_scores_every_pair_by_hand(runs, capsys, tmp_path):
    import json

    from scipy import stats

    pairs = [("a1", "b1", 9.0), ("a2", "zebra", 1.0), ("naïve", "a5", 2.0), ("A3", "b3", 8.5), ("a333", "a3", 7.0)]
    (tmp_path / "pairs.tsv").write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in pairs), encoding="utf-8")
    kv = Word2Vec.load(runs["sg_neg"]).wv

    def vector(word):  # case folded to the vocabulary's first variant when known, else as written
        known = {w.upper(): w for w in reversed(kv.index_to_key)}
        return kv[known.get(word.upper(), word)]

    cos = [float(np.dot(vector(a), vector(b)) / np.linalg.norm(vector(a)) / np.linalg.norm(vector(b)))
           for a, b, _ in pairs]
    code, out, _ = cli(capsys, "similarity", runs["sg_neg"], tmp_path / "pairs.tsv", "--oov", "--json")
    result = json.loads(out)
    assert code == 0 and result["pairs_used"] == 5
    assert result["spearman"] == pytest.approx(stats.spearmanr([s for *_, s in pairs], cos)[0], abs=1e-9)
    assert result["pearson"] == pytest.approx(stats.pearsonr([s for *_, s in pairs], cos)[0], rel=1e-5)
    without = json.loads(cli(capsys, "similarity", runs["sg_neg"], tmp_path / "pairs.tsv", "--json")[1])
    assert without["pairs_used"] == 3  # gensim's evaluate_word_pairs: zebra and a333 are unseen


def test_analogy_with_oov_answers_questions_with_unseen_words(runs, capsys, tmp_path):
    import json

    from w2v_nce.evaluate import analogy

    kv = Word2Vec.load(runs["sg_neg"]).wv
    questions = [("a1", "b1", "a2", "b2"), ("zebra", "b1", "a2", "b2"), ("a1", "b1", "a333", "b2"),
                 ("a1", "b1", "a2", "zebra")]
    (tmp_path / "q.txt").write_text(": twins\n" + "".join(" ".join(q) + "\n" for q in questions), encoding="utf-8")
    result = json.loads(cli(capsys, "analogy", runs["sg_neg"], tmp_path / "q.txt", "--oov", "--json")[1])
    assert result["answered"] == 3  # the unseen answer "zebra" cannot be among the candidates
    expected = 0
    for a, b, c, d in questions[:3]:  # gensim's most_similar, which takes unseen words from their n-grams
        expected += kv.most_similar(positive=[b, c], negative=[a], topn=1)[0][0] == d
    assert result["correct"] == expected
    assert analogy(kv, tmp_path / "q.txt", oov=True).answered == 3
    assert json.loads(cli(capsys, "analogy", runs["sg_neg"], tmp_path / "q.txt", "--json")[1])["answered"] == 1


def test_a_query_without_a_vector_is_one_error(runs):
    model = Word2Vec.load(runs["words"])
    assert "zebra" not in model.wv
    with pytest.raises(UserError, match="no subwords"):
        from w2v_nce.fasttext_io import word_vector

        word_vector(model.wv, "zebra")


def test_the_api_takes_subwords_and_predicts_from_bags_of_rows(corpus, tmp_path):
    """Word2Vec(subwords=True): the shorthand as the CLI's; predict's h is the mean of all rows of
    the context words' bags (brute force from the checkpoint and gensim's hashes)."""
    import torch

    model = Word2Vec(subwords=True, buckets=300, loss="nce", dim=8, epochs=1, min_count=1, window=2, threads=1,
                     device="cpu").train(corpus, tmp_path / "run")
    assert (model.config.minn, model.config.maxn) == (3, 6) and isinstance(model.wv, FastTextKeyedVectors)
    state = model._checkpoint()
    words, table = list(state["words"]), torch.from_numpy(fasttext_matrix(state)).double()
    rows = [r for w in ("a3", "naïve") for r in [words.index(w)] + [len(words) + int(b) for b in
                                                                   ft_ngram_hashes(w, 3, 6, 300)]]
    p = torch.softmax(state["model"]["out"].double() @ table[rows].mean(0) + state["model"]["bias"].double(), 0)
    for word, got in model.predict(["a3", "naïve"], topn=5):
        assert got == pytest.approx(float(p[words.index(word)]), rel=1e-5)
