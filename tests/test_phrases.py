"""Phrase detection against its oracles: a brute-force count scored with each formula, gensim's
Phrases on real text (phrases, scores, pruning and the joined sentences), and word2phrase.c's
loop written out in Python; the command's round trip and its one-line errors."""

from __future__ import annotations

import gzip
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from w2v_nce import phrases as P
from w2v_nce.cli import app, main
from w2v_nce.errors import UserError
from w2v_nce.phrases import Phrases, phrased_pieces

DATA = Path(__file__).resolve().parents[1] / "data" / "wiki1.5m.txt.gz"
ENGLISH = P.english_connectors()


# --- References -------------------------------------------------------------------------------------

def brute_counts(sentences, connectors=frozenset()):
    """Unigram counts (connectors left out), pair counts keyed (a, *connectors, b), all tokens."""
    words, pairs, total = Counter(), Counter(), 0
    for sentence in sentences:
        total += len(sentence)
        start, between = None, []
        for w in sentence:
            if w in connectors:
                if start is not None:
                    between.append(w)
                continue
            words[w] += 1
            if start is not None:
                pairs[(start, *between, w)] += 1
            start, between = w, []
    return words, pairs, total


def brute_phrases(sentences, scoring, min_count, threshold, connectors=frozenset()):
    """{phrase tuple: score} by each reference's formula, one pair at a time in Python."""
    words, pairs, total = brute_counts(sentences, connectors)
    len_vocab = len(words) + len(pairs)
    found = {}
    for pair, n in pairs.items():
        na, nb = words[pair[0]], words[pair[-1]]
        if scoring == "word2vec":  # word2phrase.c, float32
            if min(n, na, nb) < min_count:
                continue
            f = np.float32
            score = f(n - min_count) / f(na) / f(nb) * f(total)
            if score > f(threshold):
                found[pair] = float(score)
        elif scoring == "gensim":  # original_scorer
            score = (n - min_count) / float(na * nb) * len_vocab
            if score > threshold:
                found[pair] = score
        else:  # npmi_scorer
            if n < min_count:
                continue
            pa, pb, pab = na / float(total), nb / float(total), n / float(total)
            score = math.log(pab / (pa * pb)) / -math.log(pab)
            if score > threshold:
                found[pair] = score
    return found


def brute_apply(sentence, found, connectors=frozenset(), delimiter="_"):
    """gensim's analyze_sentence: greedy from the left; a joined word starts no pair."""
    out, start, between = [], None, []
    for w in sentence:
        if w in connectors:
            (between if start is not None else out).append(w)
            continue
        if start is not None and (start, *between, w) in found:
            out.append(delimiter.join((start, *between, w)))
            start, between = None, []
            continue
        if start is not None:
            out += [start, *between]
        start, between = w, []
    if start is not None:
        out += [start, *between]
    return out


def word2phrase(lines, min_count, threshold):
    """word2phrase.c's LearnVocabFromTrainFile and TrainModel transcribed (one vocabulary of
    "a" and "a_b" strings, float32 scores, pa/pb/li carried from word to word and across lines),
    except that pairs are counted within lines, as w2v-nce counts them (the C code also counts
    the pair across each line break). Returns the output lines split into tokens."""
    vocab, train_words = Counter(), 0
    for line in lines:
        words = line.split()
        for i, w in enumerate(words):
            train_words += 1
            vocab[w] += 1
            if i:
                vocab[words[i - 1] + "_" + w] += 1
    vocab = {k: c for k, c in vocab.items() if c >= min_count}  # SortVocab
    f = np.float32
    out, pa, pb, pab, li = [], 0, 0, 0, None
    for line in lines:
        last, tokens = "\n", []
        for w in line.split():
            oov = False
            i = w if w in vocab else None
            if i is None:
                oov = True
            else:
                pb = vocab[w]
            if li is None:
                oov = True
            li = i
            bigram = last + "_" + w
            if bigram in vocab:
                pab = vocab[bigram]
            else:
                oov = True
            if pa < min_count or pb < min_count:
                oov = True
            score = f(0) if oov else f(pab - min_count) / f(pa) / f(pb) * f(train_words)
            if score > f(threshold):
                tokens[-1] += "_" + w
                pb = 0
            else:
                tokens.append(w)
            pa, last = pb, w
        out.append(tokens)
    return out


def gensim_phrases(sentences, scoring, min_count, threshold, connectors, max_vocab=40_000_000):
    from gensim.models.phrases import Phrases as GensimPhrases

    return GensimPhrases(sentences, min_count=min_count, threshold=threshold, max_vocab_size=max_vocab,
                         scoring="default" if scoring == "gensim" else scoring, connector_words=connectors)


def phrase_dict(model, p=0):
    return dict(zip(model.layers[p].phrases, model.layers[p].scores))


@pytest.fixture(scope="module")
def wiki_lines():
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for _, line in zip(range(400), f)]  # 400k tokens


@pytest.fixture(scope="module")
def wiki_slice(tmp_path_factory, wiki_lines):
    path = tmp_path_factory.mktemp("wiki") / "wiki400k.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(wiki_lines) + "\n")
    return path


def planted_corpus(seed=0, sentences=1500, connectors=("of", "the", "and")):
    """Zipf-ish random words with planted collocations (some with connectors inside)."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(300)]
    weights = [1 / (i + 1) for i in range(300)]
    planted = [["new", "york"], ["bank", "of", "america"], ["united", "states"], ["hong", "kong"],
               ["lord", "of", "the", "rings"], ["new", "jersey"], ["salt", "and", "pepper"]]
    corpus = []
    for _ in range(sentences):
        sentence = []
        for _ in range(rng.randint(0, 25)):
            r = rng.random()
            if r < 0.08:
                sentence += rng.choice(planted)
            elif r < 0.2:
                sentence.append(rng.choice(connectors))
            else:
                sentence += rng.choices(words, weights)
        corpus.append(sentence)
    return corpus


# --- Scores and counts against brute force ----------------------------------------------------------

def test_hand_worked_scores():
    # "a b" 3 times, "a c" once, "b c" once: 9 tokens; a: 4, b: 3, c: 2
    corpus = [["a", "b"], ["a", "b"], ["a", "b", "c"], ["a", "c"]]
    counts = P._Counter([], 0).count(P.sentence_pieces(corpus))
    pairs = {(counts.words[a], counts.words[b]): n for a, b, n in zip(counts.a, counts.b, counts.pairs)}
    assert pairs == {("a", "b"): 3, ("b", "c"): 1, ("a", "c"): 1} and counts.total == 9
    assert counts.len_vocab == 3 + 3
    # a_b: word2vec (3 - 1) / 4 / 3 * 9 = 1.5; gensim (3 - 1) / 12 * 6 = 1; npmi ln((3/9) / (4/9 3/9)) / -ln(3/9)
    assert P.word2vec_score([3], [4], [3], 1, 9)[0] == np.float32(1.5)
    assert P.gensim_score([3], [4], [3], 1, 6)[0] == 1.0
    assert P.npmi_score([3], [4], [3], 1, 9)[0] == pytest.approx(math.log(9 / 4) / math.log(3))
    model = Phrases.learn(corpus, passes=1, min_count=1, threshold=1.0, scoring="word2vec")
    assert phrase_dict(model) == {("a", "b"): 1.5}  # a_c and b_c score (1 - 1) ... = 0
    assert model.apply(["a", "b", "c", "a", "b"]) == ["a_b", "c", "a_b"]
    for scoring, threshold in (("word2vec", 1.5), ("gensim", 1.0)):  # a score equal to the threshold is not above it
        model = Phrases.learn(corpus, passes=1, min_count=1, threshold=threshold, scoring=scoring)
        assert model.layers[0].phrases == ()


def test_word2vec_scores_and_compares_in_float32():
    # in float64 (6 - 5) / 6 / 39 * 1000003 = 4273.517094... is above 4273.51708984375, the float32
    # score equals it: word2phrase.c does not join the pair
    n = (np.array([6]), np.array([6]), np.array([39]))
    assert P.word2vec_score(*n, 5, 1000003)[0] == np.float32(4273.51708984375)
    assert not P._chosen("word2vec", *n, 5, 4273.51708984375, 1000003, 0)[0][0]
    assert not P._chosen("word2vec", *n, 5, 4273.5170, 1000003, 0)[0][0]  # the threshold is a float32 too
    assert P._chosen("word2vec", *n, 5, 4273.5165, 1000003, 0)[0][0]


@pytest.mark.parametrize("scoring, thresholds", [("word2vec", [1.0, 20.0]), ("gensim", [1.0, 10.0]),
                                                 ("npmi", [-0.5, 0.0, 0.3])])
@pytest.mark.parametrize("connectors", [frozenset(), frozenset({"of", "the", "and"})], ids=["plain", "connectors"])
def test_planted_corpus_equals_brute_force(scoring, thresholds, connectors):
    corpus = planted_corpus()
    for min_count in (1, 5):
        for threshold in thresholds:
            model = Phrases.learn(corpus, passes=1, min_count=min_count, threshold=threshold, scoring=scoring,
                                  connectors=connectors, block_tokens=500)
            expected = brute_phrases(corpus, scoring, min_count, threshold, connectors)
            assert phrase_dict(model) == expected, (min_count, threshold)
            assert [model.apply(s) for s in corpus[:300]] == [brute_apply(s, expected, connectors) for s in corpus[:300]]
    if scoring == "gensim" and connectors:
        assert ("bank", "of", "america") in expected and ("lord", "of", "the", "rings") in expected


def test_counts_equal_brute_force_across_blocks():
    corpus = planted_corpus(seed=3)
    words, pairs, total = brute_counts(corpus, frozenset({"of", "the", "and"}))
    for block_tokens in (1, 7, 1 << 18):
        counts = P._Counter(["and", "of", "the"], 0).count(P.sentence_pieces(corpus), block_tokens)
        gaps = counts.gap_sequences
        got = {(counts.words[a], *(counts.words[c] for c in gaps[g]), counts.words[b]): n
               for a, g, b, n in zip(counts.a, counts.gap, counts.b, counts.pairs)}
        assert got == dict(pairs) and counts.total == total
        assert {w: int(counts.unigrams[i]) for i, w in enumerate(counts.words) if i >= 3} == dict(words)


# --- Real text: gensim and word2phrase ---------------------------------------------------------------

@pytest.mark.parametrize("scoring, threshold, connectors, max_vocab", [
    ("gensim", 10.0, frozenset(), 40_000_000),
    ("gensim", 10.0, ENGLISH, 40_000_000),
    ("npmi", 0.5, ENGLISH, 40_000_000),
    ("gensim", 10.0, ENGLISH, 100_000),  # gensim prunes 3 times on the way
], ids=["default", "connectors", "npmi", "pruned"])
def test_real_text_equals_gensim(wiki_slice, wiki_lines, scoring, threshold, connectors, max_vocab):
    sentences = [line.split() for line in wiki_lines]
    reference = gensim_phrases(sentences, scoring, 5, threshold, connectors, max_vocab)
    model = Phrases.learn(wiki_slice, passes=1, min_count=5, threshold=threshold, scoring=scoring,
                          connectors=connectors, max_vocab=max_vocab, block_tokens=3000)
    assert model.layers[0].vocabulary == len(reference.vocab)  # gensim's len_vocab, after its pruning
    assert model.export() == reference.export_phrases()  # the same phrases, the same scores to the bit
    assert len(model.layers[0].phrases) > 500
    if max_vocab < 40_000_000:  # pruned (gensim does not keep its floor after a first add_vocab)
        assert model.layers[0].min_reduce > 2
    frozen = reference.freeze()
    assert list(model.transform(wiki_slice)) == [frozen[s] for s in sentences]


@pytest.mark.parametrize("connectors", [frozenset(), frozenset({"of", "the", "and"})], ids=["plain", "connectors"])
def test_pruning_equals_gensim_at_every_budget(connectors):
    """gensim's max_vocab_size rule: after a sentence that leaves more types than the budget, drop
    those counted fewer than min_reduce times (1, 2, ...); same types, counts and phrases."""
    corpus = planted_corpus(seed=5, sentences=800)
    floors = set()
    for budget in (150, 400, 401, 1000, 2500, 4000):
        reference = gensim_phrases(corpus, "gensim", 2, 1.0, connectors, budget)
        model = Phrases.learn(corpus, passes=1, min_count=2, threshold=1.0, scoring="gensim", connectors=connectors,
                              max_vocab=budget, block_tokens=997)
        assert model.layers[0].vocabulary == len(reference.vocab), budget
        assert model.export() == reference.export_phrases(), budget
        floors.add(model.layers[0].min_reduce)
    assert len(floors) >= 3  # from a few prunes to many


def test_real_text_equals_word2phrase(wiki_lines, tmp_path):
    lines = wiki_lines[:150]
    path = tmp_path / "slice.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = Phrases.learn(path, passes=1, min_count=5, threshold=20.0, scoring="word2vec")
    out = list(model.transform(path))
    assert out == word2phrase(lines, 5, 20.0)
    assert sum(t.count("_") for s in out for t in s) > 500


def test_second_pass_counts_the_first_pass_output(wiki_lines, tmp_path):
    lines = wiki_lines[:150]
    path = tmp_path / "slice.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = Phrases.learn(path, passes=2, min_count=5, threshold=[40.0, 20.0], scoring="word2vec")
    once = word2phrase(lines, 5, 40.0)
    twice = word2phrase([" ".join(s) for s in once], 5, 20.0)
    assert list(model.transform(path)) == twice
    assert any(t.count("_") >= 2 for s in twice for t in s)  # longer phrases formed


# --- Streams: pieces of one sentence, files, stdin ----------------------------------------------------

def test_phrases_span_the_pieces_of_a_long_line(wiki_lines, tmp_path, monkeypatch):
    """A single 150k-token line read in 64-byte pieces, counted and joined in blocks of 100 tokens,
    gives the model and the output of the line taken whole."""
    line = " ".join(wiki_lines[:150])
    path = tmp_path / "one_line.txt"
    path.write_text(line, encoding="utf-8")
    whole = Phrases.learn([line.split()], passes=2, min_count=3, threshold=10.0, scoring="gensim")
    monkeypatch.setattr(P, "BLOCK_BYTES", 64)
    pieces = list(P.sentence_pieces(path))
    assert len(pieces) > 10_000
    split = Phrases.learn(path, passes=2, min_count=3, threshold=10.0, scoring="gensim", block_tokens=100)
    assert split.layers == whole.layers
    out = [t for tokens, _ in phrased_pieces(path, split) for t in tokens]
    assert out == whole.apply(line.split())
    assert sum("_" in t for t in out) > 1000


def test_sentences_do_not_join_across_lines_or_files(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("x new\nyork y\n" * 5 + "new", encoding="utf-8")
    (tmp_path / "d" / "b.txt.gz").write_bytes(gzip.compress(("york z\n" + "new york\n" * 5).encode()))
    model = Phrases.learn(tmp_path / "d", passes=1, min_count=1, threshold=1.0, scoring="gensim")
    assert phrase_dict(model) == brute_phrases([s.split() for s in ("x new\nyork y\n" * 5 + "new\nyork z\n"
                                                                   + "new york\n" * 5).splitlines()], "gensim", 1, 1.0)
    assert list(model.transform(tmp_path / "d"))[10:12] == [["new"], ["york", "z"]]


def test_unicode_text():
    corpus = [["são", "paulo", "é", "grande"], ["eu", "amo", "são", "paulo"], ["東京", "タワー", "です"]] * 5
    model = Phrases.learn(corpus, passes=1, min_count=2, threshold=1.0, scoring="gensim")
    assert model.apply(["são", "paulo", "東京", "タワー"]) == ["são_paulo", "東京_タワー"]


# --- Model file -------------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    corpus = planted_corpus(seed=1)
    model = Phrases.learn(corpus, passes=2, min_count=3, threshold=[5.0, 3.0], scoring="gensim",
                          connectors={"of", "the", "and"}, delimiter="+")
    model.save(tmp_path / "m.json")
    loaded = Phrases.load(tmp_path / "m.json")
    assert loaded == model and loaded.layers[0].phrases
    assert [loaded.apply(s) for s in corpus] == [model.apply(s) for s in corpus]
    assert "bank+of+america" in loaded.export(0)


@pytest.mark.parametrize("text, fragment", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"format": "gensim"}', "format"),
    ('{"format": "w2v-nce phrases", "version": 1, "scoring": "word2vec", "min_count": true, "delimiter": "_", '
     '"connectors": [], "passes": []}', "min_count"),
    ('{"format": "w2v-nce phrases", "version": 1, "scoring": "word2vec", "min_count": 5, "delimiter": "_", '
     '"connectors": ["of"], "passes": [{"threshold": 1, "phrases": [[["of", "x"], 2.0]]}]}', "start and end"),
    ('{"format": "w2v-nce phrases", "version": 1, "scoring": "word2vec", "min_count": 5, "delimiter": "_", '
     '"connectors": [], "passes": [{"threshold": 1, "phrases": [[["a", "b"], NaN]]}]}', "NaN"),
    ('{"format": "w2v-nce phrases", "version": 1, "scoring": "word2vec", "min_count": 5, "delimiter": "_", '
     '"connectors": [], "passes": [{"threshold": 1, "phrases": [[["a b", "c"], 2.0]]}]}', r"not \[\[word"),
])
def test_malformed_model_is_one_user_error(tmp_path, text, fragment):
    path = tmp_path / "m.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=fragment):
        Phrases.load(path)


# --- Command line ------------------------------------------------------------------------------------

def run_cli(capsys, args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_round_trip_then_apply_to_new_text(tmp_path, wiki_lines):
    train = tmp_path / "train.txt.gz"
    with gzip.open(train, "wt", encoding="utf-8") as f:
        f.write("\n".join(wiki_lines[:200]) + "\n")
    out = tmp_path / "out" / "phrased.txt"
    result = CliRunner().invoke(app, ["phrases", str(train), "--out", str(out), "--scoring", "gensim",
                                      "--threshold", "20", "--threshold", "10", "--connectors", "english"])
    assert result.exit_code == 0, result.output
    model_path = tmp_path / "out" / "phrased.txt.phrases.json"
    model = Phrases.load(model_path)
    assert [layer.threshold for layer in model.layers] == [20.0, 10.0] and model.connectors == ENGLISH
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [line.split() for line in lines] == list(model.transform(train)) and len(lines) == 200
    new_text = tmp_path / "new.txt"
    new_text.write_text("\n".join(wiki_lines[300:320]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["phrases", str(new_text), "--apply", str(model_path), "-o", str(tmp_path / "n.txt")])
    assert result.exit_code == 0, result.output
    applied = (tmp_path / "n.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split() for line in applied] == [model.apply(line.split()) for line in wiki_lines[300:320]]
    assert any("_" in line for line in applied)


def test_cli_reads_stdin(tmp_path, monkeypatch, capsys):
    import io
    import sys

    text = "new york is big\ni love new york\n" * 4
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    code, out, err = run_cli(capsys, ["phrases", "-", "-o", tmp_path / "o.txt", "--model", tmp_path / "m.json",
                                      "--min-count", "1", "--threshold", "1", "--scoring", "gensim", "--passes", "1"])
    assert code == 0, err
    assert (tmp_path / "o.txt").read_text().splitlines()[:2] == ["new_york is_big", "i_love new_york"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # the spooled copy is gone


def test_cli_keeps_empty_lines_and_files_without_final_newline(tmp_path, capsys):
    (tmp_path / "c.txt").write_text("a b\n\na b\na b", encoding="utf-8")
    code, _, err = run_cli(capsys, ["phrases", tmp_path / "c.txt", "-o", tmp_path / "o.txt", "--min-count", "1",
                                    "--threshold", "0.1", "--scoring", "gensim", "--passes", "1"])
    assert code == 0, err
    assert (tmp_path / "o.txt").read_text() == "a_b\n\na_b\na_b\n"


@pytest.mark.parametrize("args, fragment", [
    (["--scoring", "npmi", "--threshold", "1.5"], "[-1, 1]"),
    (["--threshold", "0"], "positive"),
    (["--min-count", "0"], "min_count"),
    (["--passes", "0"], "passes"),
    (["--delimiter", ""], "delimiter"),
    (["--threshold", "1", "--threshold", "2", "--threshold", "3"], "one per pass"),
    (["--max-vocab", "-1"], "max_vocab"),
    (["--scoring", "pmi"], "pmi"),
])
def test_cli_bad_options_are_one_error_line(tmp_path, capsys, args, fragment):
    (tmp_path / "c.txt").write_text("a b\n" * 10, encoding="utf-8")
    out = tmp_path / "o.txt"
    code, stdout, err = run_cli(capsys, ["phrases", tmp_path / "c.txt", "-o", out, *args])
    assert_one_error_line(code, stdout, err, fragment)
    assert not out.exists() and not (tmp_path / "o.txt.phrases.json").exists()


@pytest.mark.parametrize("kind", ["empty", "binary", "missing", "model", "apply-options", "not-utf8"])
def test_cli_bad_input_is_one_error_line_and_no_output(tmp_path, capsys, kind):
    corpus = tmp_path / "c.txt"
    corpus.write_bytes({"empty": b"  \n\n", "binary": b"\x7fELF\x00\x01", "not-utf8": b"caf\xe9 ok\n"}.get(kind, b"a b\n"))
    out = tmp_path / "o.txt"
    out.write_text("old", encoding="utf-8")  # an existing output stays as it was
    args = ["phrases", corpus, "-o", out]
    if kind == "missing":
        args[1] = tmp_path / "nope.txt"
    if kind in ("model", "apply-options"):
        (tmp_path / "m.json").write_text('{"format": "w2v-nce phrases", "version": 2}', encoding="utf-8")
        args += ["--apply", tmp_path / "m.json"] + (["--min-count", "3"] if kind == "apply-options" else [])
    code, stdout, err = run_cli(capsys, args)
    fragment = {"empty": "no words", "binary": "binary", "missing": "does not exist", "model": "version",
                "apply-options": "--min-count", "not-utf8": "UTF-8"}[kind]
    assert_one_error_line(code, stdout, err, fragment)
    assert out.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c.txt", "o.txt"] + (["m.json"] if kind in ("model", "apply-options") else []))


def assert_one_error_line(code, out, err, fragment):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in out + err
