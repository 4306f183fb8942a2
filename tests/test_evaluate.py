"""Vectors I/O and evaluations, checked against gensim as the oracle on the same vectors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from gensim.models import KeyedVectors, Word2Vec
from gensim.test.utils import datapath
from gensim.utils import simple_preprocess

import w2v_nce.evaluate as evaluate_module
import w2v_nce.vectors as vectors_module
from w2v_nce.errors import UserError
from w2v_nce.evaluate import analogy, neighbors, similarity
from w2v_nce.vectors import Vectors, load_word2vec, save_word2vec

QUESTIONS = datapath("questions-words.txt")
PAIRS = datapath("wordsim353.tsv")


def as_gensim(v: Vectors) -> KeyedVectors:
    kv = KeyedVectors(v.dim)
    kv.add_vectors(v.words, v.matrix)
    return kv


def file_words(path: str, skip) -> list[str]:
    """Distinct words of a test-set file, in order of first appearance."""
    words: dict[str, None] = {}
    with open(path, encoding="utf8") as f:
        for line in f:
            if not skip(line):
                words.update(dict.fromkeys(line.split()[:4]))
    return [w for w in words if not w[0].isdigit()]


def random_vectors(words: list[str], dim: int, seed: int, ternary: bool = False, fillers: int = 0) -> Vectors:
    """Words shuffled, some capitalised twins (case folding) and some duplicate rows (exact ties)."""
    rng = np.random.default_rng(seed)
    twins = [w.capitalize() for w in rng.choice(words, 100, replace=False) if w.capitalize() != w]
    vocab = list(dict.fromkeys(words + twins + [f"filler{i}" for i in range(fillers)]))
    rng.shuffle(vocab)
    if ternary:  # few distinct scores: ties everywhere
        matrix = rng.integers(-1, 2, (len(vocab), dim)).astype(np.float32)
    else:
        matrix = rng.standard_normal((len(vocab), dim)).astype(np.float32)
    rows = rng.choice(len(vocab), 40, replace=False)
    matrix[rows[20:]] = matrix[rows[:20]]
    return Vectors(vocab, matrix)


@pytest.fixture(scope="module")
def lee() -> Vectors:
    """Real (if small) CBOW vectors: gensim Word2Vec on its bundled Lee corpus (~60k tokens)."""
    with open(datapath("lee_background.cor"), encoding="utf8") as f:
        sentences = [simple_preprocess(line) for line in f]
    model = Word2Vec(sentences, sg=0, vector_size=50, min_count=2, workers=1, seed=1, epochs=3)
    return Vectors(list(model.wv.index_to_key), model.wv.vectors)


@pytest.fixture(scope="module")
def question_words() -> list[str]:
    return [w.lower() for w in file_words(QUESTIONS, lambda line: line.startswith(":"))]


@pytest.fixture(scope="module")
def pair_words() -> list[str]:
    return file_words(PAIRS, lambda line: line.startswith("#"))


# --------------------------------------------------------------------------- analogies


@pytest.fixture()
def exact_calls(monkeypatch) -> list[int]:
    """Counts questions that analogy() recomputes one by one, as gensim does (near-ties)."""
    calls = [0]
    exact = evaluate_module._analogy_exact

    def counting(*args):
        calls[0] += 1
        return exact(*args)

    monkeypatch.setattr(evaluate_module, "_analogy_exact", counting)
    return calls


def assert_analogy_equals_gensim(v: Vectors, restrict_vocab: int, case_insensitive: bool) -> int:
    """Checks every section against gensim; returns the number of questions answered."""
    ours = analogy(v, restrict_vocab=restrict_vocab, case_insensitive=case_insensitive)
    score, sections = as_gensim(v).evaluate_word_analogies(
        QUESTIONS, restrict_vocab=restrict_vocab, case_insensitive=case_insensitive
    )
    total = sections.pop()
    assert total["section"] == "Total accuracy"
    assert [(s.name, s.correct, s.incorrect) for s in ours.sections] == [
        (s["section"], len(s["correct"]), len(s["incorrect"])) for s in sections
    ]
    assert ours.accuracy == score
    assert ours.correct == len(total["correct"])
    assert ours.answered == len(total["correct"]) + len(total["incorrect"])
    assert ours.questions == 19544
    assert ours.coverage == ours.answered / ours.questions
    return ours.answered


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # gensim on zero rows
@pytest.mark.parametrize(
    "dim, ternary, fillers, restrict_vocab, case_insensitive",
    [(50, False, 2000, 30000, True), (8, False, 0, 700, False), (4, True, 0, 30000, True)],
    ids=["normal", "restricted-case-sensitive", "ternary-ties"],
)
def test_analogy_equals_gensim_on_random_vectors(
    question_words, exact_calls, dim, ternary, fillers, restrict_vocab, case_insensitive
):
    v = random_vectors(question_words, dim, seed=dim, ternary=ternary, fillers=fillers)
    answered = assert_analogy_equals_gensim(v, restrict_vocab, case_insensitive)
    assert answered > 1000
    if ternary:  # ties: many questions take gensim's own path
        assert exact_calls[0] > answered / 2
    else:  # nearly all take the batched path
        assert exact_calls[0] < answered / 10


def test_analogy_when_padding_outscores_every_row(question_words, exact_calls):
    """Rows sharing one direction (barely trained or diverged vectors) and a question whose b and c
    stand apart: b + c - a scores every other row below zero, below the zero rows that pad the
    matrix to whole blocks. Such a question takes gensim's own path, as a near-tie does."""
    v = random_vectors(question_words, 50, seed=5, fillers=2000)
    assert len(v.words) % evaluate_module._BLOCK_ROWS  # some padding
    rng = np.random.default_rng(5)
    common = rng.standard_normal(50).astype(np.float32)
    matrix = common + 0.05 * v.matrix
    for word in ("greece", "baghdad"):  # questions-words' first question: athens greece baghdad iraq
        matrix[v.words.index(word)] = rng.standard_normal(50)
    answered = assert_analogy_equals_gensim(Vectors(v.words, matrix), restrict_vocab=30000, case_insensitive=True)
    assert answered > 1000 and exact_calls[0] >= 1


def test_analogy_equals_gensim_on_trained_vectors(lee, exact_calls):
    answered = assert_analogy_equals_gensim(lee, restrict_vocab=30000, case_insensitive=True)
    assert answered > 100 and exact_calls[0] < answered / 10


def test_phrase_analogies_mixed_case_on_a_lowercase_vocabulary_equal_gensim(tmp_path, capsys):
    """questions-phrases.txt's form (sections, Mixed_Case phrases) against lowercased vectors with
    no restriction beyond the vocabulary (`analogy --restrict-vocab 0`): gensim's numbers."""
    from w2v_nce.cli import main

    sections = {"newspapers": [("Albuquerque", "Albuquerque_Journal"), ("Baltimore", "Baltimore_Sun"),
                               ("Boston", "Boston_Globe"), ("Cleveland", "Cleveland_Plain_Dealer"),
                               ("Denver", "Denver_Post"), ("Miami", "Miami_Herald")],
                "ice_hockey": [("Atlanta", "Atlanta_Thrashers"), ("Boston", "Boston_Bruins"),
                               ("Buffalo", "Buffalo_Sabres"), ("Calgary", "Calgary_Flames")]}
    lines = []
    for name, pairs in sections.items():
        lines.append(f": {name}")
        lines += [f"{a} {b} {c} {d}" for a, b in pairs for c, d in pairs if a != c]
    questions = tmp_path / "questions-phrases.txt"
    questions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rng = np.random.default_rng(0)
    words, rows = [], []
    offsets = {name: rng.standard_normal(16) for name in sections}
    for name, pairs in sections.items():
        for city, phrase in pairs:
            base = rng.standard_normal(16)
            if city.lower() not in words:
                words.append(city.lower())
                rows.append(base)
            if phrase != "Denver_Post":  # one phrase unknown: coverage below 1
                words.append(phrase.lower())
                rows.append(base + offsets[name] + 0.6 * rng.standard_normal(16))
    words += ["Boston"] + [f"filler{i}" for i in range(200)]  # a case twin after its lowercase word
    rows += list(rng.standard_normal((201, 16)))
    v = Vectors(words, np.array(rows, dtype=np.float32))

    ours = analogy(v, questions, restrict_vocab=None)
    score, found = as_gensim(v).evaluate_word_analogies(str(questions), restrict_vocab=len(words), case_insensitive=True)
    total = found.pop()
    assert [(s.name, s.correct, s.incorrect) for s in ours.sections] == [
        (s["section"], len(s["correct"]), len(s["incorrect"])) for s in found]
    assert ours.accuracy == score and ours.correct == len(total["correct"]) > ours.answered / 2
    assert ours.questions == 30 + 12 and ours.answered == ours.questions - 2 * 5
    save_word2vec(v, tmp_path / "v.txt")
    assert main(["analogy", str(tmp_path / "v.txt"), str(questions), "--restrict-vocab", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["correct"] == ours.correct


def test_analogy_hand_worked(tmp_path):
    # b - a + c for both questions is unit(woman) + unit(king) - unit(man), nearest queen.
    v = Vectors(
        ["man", "woman", "king", "queen", "apple"],
        np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 1, 1], [0, 0, -1]], dtype=np.float32),
    )
    questions = tmp_path / "q.txt"
    questions.write_text(": royal\nman woman king queen\nman king woman queen\nman woman boy girl\n: empty\n")
    result = analogy(v, questions)
    assert [dataclasses.astuple(s) for s in result.sections] == [
        ("royal", 2, 0, 2, 3, 1.0),
        ("empty", 0, 0, 0, 0, 0.0),
    ]
    assert (result.accuracy, result.correct, result.answered, result.questions) == (1.0, 2, 2, 3)
    assert result.coverage == pytest.approx(2 / 3)
    json.dumps(dataclasses.asdict(result))


@pytest.mark.parametrize(
    "text, message",
    [
        ("man woman king queen\n", "line 1: question before the first ': section' line"),
        (": s\nman woman king\n", "line 2: expected 4 words, found 3"),
        (": s\n\n", "has no questions"),
        (b": s\nman \xff king queen\n", "line 2: not valid UTF-8"),
    ],
)
def test_analogy_malformed_questions(tmp_path, lee, text, message):
    path = tmp_path / "q.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UserError, match=message) as error:
        analogy(lee, path)
    assert "q.txt" in str(error.value) and "\n" not in str(error.value)


# --------------------------------------------------------------------------- word pairs


@pytest.mark.parametrize("case_insensitive", [True, False])
def test_similarity_equals_gensim(pair_words, lee, case_insensitive):
    covered = random_vectors([w.lower() for w in pair_words], dim=20, seed=3)
    for v in (covered, lee):
        ours = similarity(v, case_insensitive=case_insensitive)
        pearson, spearman, oov = as_gensim(v).evaluate_word_pairs(PAIRS, case_insensitive=case_insensitive)
        assert (ours.spearman, ours.spearman_pvalue) == tuple(spearman)
        assert (ours.pearson, ours.pearson_pvalue) == tuple(pearson)
        assert ours.oov_ratio * 100 == oov
        assert ours.pairs_total == 353 and ours.coverage == ours.pairs_used / 353
    assert ours.pairs_used < 353  # the Lee vocabulary misses some words


def test_similarity_malformed_pairs(tmp_path, lee):
    path = tmp_path / "pairs.tsv"
    path.write_text("# comment\nlove\tsex\t6.77\n\nlove\tsex\tmuch\n")
    with pytest.raises(UserError, match=r"pairs.tsv' line 4: score 'much' is not a number"):
        similarity(lee, path)
    path.write_text("love\tsex 6.77\n")
    with pytest.raises(UserError, match="line 1: expected 3 tab-separated fields, found 2"):
        similarity(lee, path)


# --------------------------------------------------------------------------- neighbours


def test_neighbors_equal_gensim(lee):
    kv = as_gensim(lee)
    for word in ["the", "government", "australia", "fire", lee.words[-1]]:
        ours = neighbors(lee, word, topn=10)
        theirs = kv.most_similar(word, topn=10)
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=0, atol=1e-5)


def test_neighbors_of_several_words_equal_gensim(lee):
    kv = as_gensim(lee)
    for cosmul in (False, True):
        query = kv.most_similar_cosmul if cosmul else kv.most_similar
        ours = neighbors(kv, ["government", "fire"], ["australia"], topn=7, cosmul=cosmul)
        assert ours == [(w, float(s)) for w, s in query(positive=["government", "fire"], negative=["australia"], topn=7)]


def test_neighbors_unknown_word(lee):
    with pytest.raises(UserError, match=r"^word 'xyzzy' is not in the vocabulary$"):
        neighbors(lee, "xyzzy")


# --------------------------------------------------------------------------- file I/O


@pytest.fixture()
def small() -> Vectors:
    rng = np.random.default_rng(0)
    words = ["the", "café", "東京", "Zürich", "x"]
    matrix = rng.standard_normal((5, 7)).astype(np.float32) * np.float32([[1e-8], [1], [1e3], [-2], [0]])
    return Vectors(words, matrix)


@pytest.mark.parametrize("binary", [False, True])
def test_save_reads_back_in_gensim_and_here(tmp_path, small, binary):
    path = tmp_path / "sub" / "vectors.bin"  # parent created on the fly
    save_word2vec(small, path, binary=binary)
    kv = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert kv.index_to_key == small.words
    if binary:
        np.testing.assert_array_equal(kv.vectors, small.matrix)
    else:
        np.testing.assert_allclose(kv.vectors, small.matrix, rtol=1e-6, atol=1e-6)
    for flag in (binary, None):
        ours = load_word2vec(path, binary=flag)
        assert ours.words == small.words
        np.testing.assert_array_equal(ours.matrix, small.matrix)  # text too: '%.9g' is exact
    assert sorted(p.name for p in path.parent.iterdir()) == ["vectors.bin"]


@pytest.mark.parametrize("binary", [False, True])
def test_load_reads_gensim_files(tmp_path, lee, binary):
    path = tmp_path / "gensim.vec"
    as_gensim(lee).save_word2vec_format(str(path), binary=binary)
    for flag in (binary, None):
        ours = load_word2vec(path, binary=flag)
        assert ours.words == lee.words
        np.testing.assert_array_equal(ours.matrix, lee.matrix)


BINARY_ENTRY = b"a " + np.float32([1, 2]).tobytes()


@pytest.mark.parametrize(
    "content, binary, message",
    [
        (None, None, "does not exist"),
        (b"", None, "is empty"),
        (b"abc\n", None, "line 1: expected a header 'COUNT DIM', found 'abc'"),
        (b"2 3 4\n", None, "line 1: expected a header"),
        (b"1 0\na\n", None, "line 1: expected a header"),
        (b"2 3\na 1 2 3\nb 1 2\n", None, "line 3: expected 3 values, found 2"),
        (b"2 3\na 1 2 3\nb 1 2 3 4\n", None, "line 3: expected 3 values, found 4"),
        (b"1 3\na 1 x 3\n", None, "line 2: value 'x' of word 'a' is not a number"),
        (b"1 2\na nan 1\n", None, "line 2: vector of word 'a' has a non-finite value"),
        (b"3 2\na 1 2\nb 3 4\n", None, "has 2 rows but its header says 3"),
        (b"1 2\na 1 2\nb 3 4\n", None, "line 3: more rows than the 1 the header says"),
        (b"2 2\na 1 2\na 3 4\n", None, "line 3: duplicate word 'a' \\(first seen at line 2\\)"),
        (b"2 2\na 1 2\n\nb 3 4\n", None, "line 3: line starts with a space or is empty"),
        (b"1 2\n\xff 1 2\n", False, "line 2: not valid UTF-8"),
        (b"2 2\n" + BINARY_ENTRY, True, "ends after 1 of the 2 words its header says"),
        (b"1 2\n" + BINARY_ENTRY[:-1], True, "ends after 0 of the 1 words"),
        (b"2 2\n" + BINARY_ENTRY + b"\n" + BINARY_ENTRY, None, "word 2: duplicate word 'a'"),
        (b"1 2\n\xff" + BINARY_ENTRY, True, "word 1: not valid UTF-8"),
        (b"1 2\n" + BINARY_ENTRY + b"junk", True, "data after the 1 words its header says"),
    ],
)
def test_load_malformed(tmp_path, content, binary, message):
    path = tmp_path / "bad.vec"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message) as error:
        load_word2vec(path, binary=binary)
    text = str(error.value)
    assert text.startswith(f"vectors file '{path}'") and "\n" not in text


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("existing", [False, True])
def test_failed_save_leaves_no_file(tmp_path, monkeypatch, small, binary, existing):
    path = tmp_path / "vectors.vec"
    if existing:
        path.write_bytes(b"old")

    def failing(words, matrix):
        yield b"partial data\n"
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(vectors_module, "_encode_binary" if binary else "_encode_text", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_word2vec(small, path, binary=binary)
    assert [p.name for p in tmp_path.iterdir()] == (["vectors.vec"] if existing else [])
    if existing:
        assert path.read_bytes() == b"old"


def test_save_errors_are_user_errors(tmp_path, small):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write vectors file"):
        save_word2vec(small, tmp_path / "file" / "vectors.txt")
    spaced = Vectors(["two words"], np.zeros((1, 2)))
    with pytest.raises(UserError, match="word 'two words' is empty or contains whitespace"):
        save_word2vec(spaced, tmp_path / "v.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
