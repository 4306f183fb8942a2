"""Streaming tokenizer and vocabulary: block boundaries, sentence ends, bad files, pruning,
subsampling probabilities (against gensim's)."""

from __future__ import annotations

import gzip
import random
from collections import Counter

import numpy as np
import pytest

from w2v_nce.corpus import Shard, count_words, merge_counts, read_corpus, read_pieces, reduce_counts
from w2v_nce.errors import UserError
from w2v_nce.vocab import SENTENCE_END, Vocab

WORDS = ["a", "the", "é", "café", "日本", "日本語", "naïve", "😀", "x😀y", "ß", "word", "Ω", "ü"]
# str.split() separators, ASCII and not (NBSP, ideographic space, line/paragraph separators...)
SPACES = [" ", " ", " ", "  ", "\t", "\r", "\u00a0", "\u3000", "\x0b", "\x0c", "\u2028", "\x1c", " \t "]


def random_text(rng: random.Random, n_tokens: int, newline_p: float = 0.05) -> str:
    parts = []
    for _ in range(n_tokens):
        parts.append(rng.choice(WORDS))
        if rng.random() < newline_p:
            parts.append(rng.choice(["\n", "\r\n", "\n\n", " \n "]))
        else:
            parts.append(rng.choice(SPACES))
    if rng.random() < 0.5:
        parts.insert(0, rng.choice(SPACES + ["\n"]))
    return "".join(parts)


def sentences_from_pieces(pieces):
    sentences, current = [], []
    for tokens, ends in pieces:
        current += tokens
        if ends:
            sentences.append(current)
            current = []
    return sentences, current


def expected_sentences(text: str):
    lines = text.split("\n")
    return [line.split() for line in lines[:-1]], lines[-1].split()


@pytest.mark.parametrize("block_bytes", [1, 2, 3, 4, 5, 7, 13, 64, 1 << 16])
def test_single_long_line_split_across_blocks(tmp_path, block_bytes):
    rng = random.Random(block_bytes)
    text = " ".join(rng.choice(WORDS) for _ in range(3000))  # one line, many blocks
    path = tmp_path / "line.txt"
    path.write_text(text, encoding="utf-8")
    pieces = list(read_pieces(path, block_bytes=block_bytes))
    assert [t for tokens, _ in pieces for t in tokens] == text.split()
    assert not any(ends for _, ends in pieces)  # no newline, no sentence end


@pytest.mark.parametrize("block_bytes", [1, 2, 3, 6, 11, 50, 4096])
@pytest.mark.parametrize("seed", range(4))
def test_random_text_matches_str_split_with_sentence_ends(tmp_path, block_bytes, seed):
    rng = random.Random(seed * 1000 + block_bytes)
    text = random_text(rng, 400)
    if seed == 0:
        text += "\n"  # trailing newline: the last sentence is ended
    path = tmp_path / "t.txt"
    path.write_bytes(text.encode("utf-8"))
    sentences, trailing = sentences_from_pieces(read_pieces(path, block_bytes=block_bytes))
    exp_sentences, exp_trailing = expected_sentences(text)
    assert sentences == exp_sentences
    assert trailing == exp_trailing


def test_gzip_input_same_as_plain(tmp_path):
    rng = random.Random(9)
    text = random_text(rng, 2000)
    plain, packed = tmp_path / "c.txt", tmp_path / "c.txt.gz"
    plain.write_bytes(text.encode())
    packed.write_bytes(gzip.compress(text.encode()))
    disguised = tmp_path / "c.dat"  # gzip is recognised by its magic bytes, not the name
    disguised.write_bytes(gzip.compress(text.encode()))
    expected = sentences_from_pieces(read_pieces(plain, block_bytes=37))
    assert sentences_from_pieces(read_pieces(packed, block_bytes=37)) == expected
    assert sentences_from_pieces(read_pieces(disguised)) == expected
    assert expected == expected_sentences(text)
    counts, total = count_words(packed)
    assert counts == Counter(text.split()) and total == len(text.split())


def test_count_words(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("b a b\n\nc b a\n", encoding="utf-8")
    counts, total = count_words(path)
    assert counts == Counter({"b": 3, "a": 2, "c": 1}) and total == 6
    assert list(counts) == ["b", "a", "c"]  # first-seen order kept


def _bad_files(tmp_path):
    (tmp_path / "dir").mkdir()
    files = {
        "missing": (tmp_path / "missing.txt", None),
        "directory": (tmp_path / "dir", None),
        "empty": (tmp_path / "empty.txt", b""),
        "whitespace": (tmp_path / "blank.txt", b" \n\n\t \n"),
        "binary": (tmp_path / "bin.txt", b"hello\x00\x01\x02 world\n"),
        "binary-late": (tmp_path / "bin2.txt", b"word " * 20000 + b"\x00"),
        "latin1": (tmp_path / "latin1.txt", "caf\u00e9 au lait\n".encode("latin-1")),
        "truncated-utf8": (tmp_path / "cut.txt", "日本".encode()[:-1]),
        "truncated-gzip": (tmp_path / "cut.gz", gzip.compress(b"a b c\n" * 1000)[:40]),
        "gzip-of-binary": (tmp_path / "zbin.gz", gzip.compress(b"a\x00b")),
    }
    for path, data in files.values():
        if data is not None:
            path.write_bytes(data)
    return files


@pytest.mark.parametrize(
    "kind",
    ["missing", "directory", "empty", "whitespace", "binary", "binary-late", "latin1", "truncated-utf8",
     "truncated-gzip", "gzip-of-binary"],
)
def test_bad_corpus_is_a_user_error_naming_the_file(tmp_path, kind):
    path, _ = _bad_files(tmp_path)[kind]
    with pytest.raises(UserError) as info:
        count_words(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message


def test_corrupt_gzip_is_a_user_error(tmp_path):
    good = gzip.compress(b"hello world\n" * 1000)
    bad = good[:10] + bytes(b ^ 0x55 for b in good[10:40]) + good[40:]
    path = tmp_path / "corrupt.gz"
    path.write_bytes(bad)
    with pytest.raises(UserError, match="corrupt.gz"):
        count_words(path)


@pytest.mark.parametrize("kind", ["binary", "latin1"])
def test_bad_bytes_detected_even_with_tiny_blocks(tmp_path, kind):
    path, _ = _bad_files(tmp_path)[kind]
    with pytest.raises(UserError, match=str(path)):
        list(read_pieces(path, block_bytes=3))


# --------------------------------------------------------------------------- vocabulary


def test_from_counts_order_min_count_max_vocab():
    counts = Counter()
    for word, c in [("d", 2), ("a", 5), ("b", 7), ("c", 5), ("e", 1), ("f", 5)]:
        counts[word] = c
    v = Vocab.from_counts(counts, min_count=2)
    assert v.words == ["b", "f", "c", "a", "d"]  # by count, ties last-seen first (gensim's order)
    assert v.counts.tolist() == [7, 5, 5, 5, 2] and v.counts.dtype == np.int64
    assert v.index == {w: i for i, w in enumerate(v.words)} and len(v) == 5
    assert Vocab.from_counts(counts, min_count=5).words == ["b", "f", "c", "a"]
    assert Vocab.from_counts(counts, min_count=1, max_vocab=3).words == ["b", "f", "c"]
    assert Vocab.from_counts(counts, min_count=6, max_vocab=3).words == ["b"]
    assert Vocab.from_counts(counts, min_count=1, max_vocab=0).words == ["b", "f", "c", "a", "d", "e"]


def test_from_counts_matches_gensim_vocabulary():
    from gensim.models import Word2Vec

    rng = random.Random(0)
    sentences = [[f"w{int(rng.paretovariate(1.0))}" for _ in range(20)] for _ in range(300)]
    counts = Counter(w for s in sentences for w in s)
    for min_count in (1, 3, 10):
        ours = Vocab.from_counts(counts, min_count=min_count)
        model = Word2Vec(vector_size=4, min_count=min_count, sample=1e-3, workers=1)
        model.build_vocab(sentences)
        # same words in the same order, ties included
        assert ours.words == model.wv.index_to_key
        assert ours.counts.tolist() == [model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key]
        assert ours.counts.tolist() == [counts[w] for w in ours.words]
        # subsampling keep probability: gensim stores round(p * 2**32)
        gensim_keep = np.array([model.wv.get_vecattr(w, "sample_int") for w in ours.words]) / 2**32
        np.testing.assert_allclose(ours.keep_prob(1e-3), gensim_keep, atol=1e-8)


def test_empty_vocabulary_is_a_user_error():
    with pytest.raises(UserError, match="min_count=5.*occurs 4 times"):
        Vocab.from_counts(Counter({"a": 4, "b": 2}), min_count=5)
    with pytest.raises(UserError):
        Vocab.from_counts(Counter(), min_count=1)


def test_keep_prob_is_word2vec_formula():
    counts = np.array([1000, 100, 10, 1])
    v = Vocab([f"w{i}" for i in range(4)], counts)
    total = counts.sum()
    for t in (1e-1, 1e-3, 1e-5):
        expected = []
        for c in counts:
            f = c / total
            expected.append(min(1.0, (t / f) ** 0.5 + t / f))
        np.testing.assert_allclose(v.keep_prob(t), expected, rtol=1e-12)
    # by hand: t = 1e-3, f = 1000/1111 -> t/f = 0.001111, sqrt(0.001111) + 0.001111 = 0.0333317 + 0.001111
    assert v.keep_prob(1e-3)[0] == pytest.approx(0.03444267, rel=1e-6)
    assert v.keep_prob(0.0).tolist() == [1.0] * 4
    assert v.keep_prob(-1.0).tolist() == [1.0] * 4


def test_encode_drops_unknown_words_and_marks_sentence_ends(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("a x b\n\nzz\nb a\nc", encoding="utf-8")
    v = Vocab(["a", "b", "c"], np.array([3, 2, 1]))
    ids = np.concatenate(list(v.encode(path))).tolist()
    E = SENTENCE_END
    assert ids == [0, 1, E, E, E, 1, 0, E, 2]
    assert all(a.dtype == np.int32 for a in v.encode(path))


def test_a_directory_a_list_and_token_lists_read_as_the_one_file(tmp_path):
    """Every regular file of a directory, sorted (gensim's PathLineSentences), or a list of paths,
    or the sentences as token lists: the same pieces as the concatenated file."""
    from w2v_nce.corpus import corpus_files, read_corpus

    lines = [f"w{i} w{i + 1} w{i % 3}" for i in range(30)]
    (tmp_path / "all.txt").write_text("\n".join(lines) + "\n")
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "b.txt").write_text("\n".join(lines[10:]) + "\n")
    with gzip.open(folder / "a.txt.gz", "wt") as f:
        f.write("\n".join(lines[:10]) + "\n")

    def sentences(corpus):
        out, current = [], []
        for tokens, end in read_corpus(corpus):
            current += tokens
            if end:
                out.append(current)
                current = []
        return out + ([current] if current else [])

    want = sentences(tmp_path / "all.txt")
    assert len(want) == 30
    assert sentences(folder) == want
    assert sentences([folder / "a.txt.gz", str(folder / "b.txt")]) == want
    assert sentences([line.split() for line in lines]) == want
    assert [p.name for p in corpus_files(folder)] == ["a.txt.gz", "b.txt"]


@pytest.mark.parametrize("bad, fragment", [(123, "corpus is a path"), (iter(["a b c"]), "list of tokens")])
def test_a_corpus_of_the_wrong_kind_is_a_user_error(bad, fragment):
    from w2v_nce.corpus import count_words

    with pytest.raises(UserError, match=fragment):
        count_words(bad)


# --------------------------------------------------------------------------- bounded counting, shards


def test_reduce_counts_drops_the_rarest_as_word2vec_does():
    """word2vec.c's ReduceVocab: drop counts <= floor + 1, raise the floor, until within budget."""
    counts = Counter({"a": 5, "b": 1, "c": 2, "d": 1, "e": 3})
    assert reduce_counts(counts, 5) == (counts, 0)
    kept, floor = reduce_counts(counts, 3)
    assert (list(kept.items()), floor) == ([("a", 5), ("c", 2), ("e", 3)], 1)
    kept, floor = reduce_counts(counts, 2)
    assert (list(kept.items()), floor) == ([("a", 5), ("e", 3)], 2)


def test_count_words_within_a_budget(tmp_path):
    """With a budget the table never holds more types than it (checked per line here) and the
    frequent words keep counts within the final floor of the truth; no budget is exact."""
    path = tmp_path / "c.txt"
    lines = [f"the of w{i} w{i % 7}" for i in range(300)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    exact, total = count_words(path)
    assert total == 1200 and len(exact) == 302
    budgeted, total = count_words(path, budget=50)
    assert total == 1200 and len(budgeted) <= 50
    for word in ["the", "of"] + [f"w{i}" for i in range(7)]:
        assert exact[word] - 3 <= budgeted[word] <= exact[word]


def test_merge_counts_sums_parts_within_the_budget():
    parts = [Counter({"a": 3, "b": 1}), Counter({"c": 1, "a": 2, "d": 4})]
    assert list(merge_counts(parts).items()) == [("a", 5), ("b", 1), ("c", 1), ("d", 4)]
    assert merge_counts(parts, budget=2) == Counter({"a": 5, "d": 4})


@pytest.mark.parametrize("unit", [3, 10_000])
def test_shards_partition_the_corpus(tmp_path, unit):
    """The parts of a corpus are disjoint and together hold every token (units of whole sentences,
    or `unit` tokens of a long one), each part in corpus order."""
    lines = [" ".join(f"t{i}_{j}" for j in range(i % 9)) for i in range(50)]
    path = tmp_path / "c.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    everything = [t for tokens, _ in read_corpus(path) for t in tokens]
    parts = [[t for tokens, _ in read_corpus(Shard(path, i, 3, unit_tokens=unit)) for t in tokens] for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(everything)
    for part in parts:
        assert part == [t for t in everything if t in set(part)]
        assert len(part) > len(everything) / 5
