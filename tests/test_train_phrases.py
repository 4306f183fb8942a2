"""`train --phrases N` (phrases joined on the fly) against its oracle, the two steps it saves:
`w2v-nce phrases` writing the phrased corpus, then a plain `train` of that file. Also: the
planted phrases counted as planted, the phrase model kept by --resume, config.toml's round trip,
the API, and bad combinations as one error line."""

from __future__ import annotations

import json

import pytest

from conftest import write_planted_phrases
from w2v_nce import Word2Vec
from w2v_nce.checkpoint import checkpoint_config, load_checkpoint
from w2v_nce.cli import main
from w2v_nce.config import load_config
from w2v_nce.phrases import Phrases, phrase_corpus

OPTS = ["--min-count", "1", "--epochs", "1", "--dim", "8", "--threads", "1", "--window", "2", "-q"]
PHRASE_OPTS = ["--phrase-threshold", "10", "--phrase-threshold", "5"]  # per pass (write_planted_phrases)


def vocabulary(run):
    state = load_checkpoint(run / "checkpoint.pt")
    return list(state["words"]), state["counts"].tolist()


def test_on_the_fly_equals_the_phrases_command_then_train(tmp_path):
    corpus = tmp_path / "c.txt"
    planted = write_planted_phrases(corpus)
    assert main(["train", str(corpus), "-o", str(tmp_path / "fly"), "--phrases", "2", *PHRASE_OPTS, *OPTS]) == 0
    phrased = tmp_path / "phrased.txt"
    phrase_corpus(corpus, phrased, passes=2, threshold=[10, 5], report=lambda line: None)
    assert main(["train", str(phrased), "-o", str(tmp_path / "two"), *OPTS]) == 0

    words, counts = vocabulary(tmp_path / "fly")
    assert (words, counts) == vocabulary(tmp_path / "two")
    assert (tmp_path / "fly" / "vectors.txt").read_bytes() == (tmp_path / "two" / "vectors.txt").read_bytes()
    model = Phrases.load(tmp_path / "fly" / "phrases.json")
    assert model == Phrases.load(tmp_path / "phrased.txt.phrases.json")
    # brute force: every planted phrase, and nothing else, joined as often as it was planted
    joined = {w: c for w, c in zip(words, counts) if "_" in w}
    assert joined == dict(planted)

    metrics = json.loads((tmp_path / "fly" / "metrics.json").read_text())
    assert metrics["phrase_model"] == "phrases.json" and metrics["phrases_per_pass"] == [3, 1]
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["phrase_model"] is None
    saved = checkpoint_config(load_checkpoint(tmp_path / "fly" / "checkpoint.pt"))
    assert load_config(tmp_path / "fly" / "config.toml") == saved
    assert (saved.phrases, saved.phrase_threshold, saved.phrase_scoring) == (2, (10.0, 5.0), "word2vec")
    assert "phrase_threshold = [10.0, 5.0]" in (tmp_path / "fly" / "config.toml").read_text()
    assert not [p.name for p in (tmp_path / "fly").iterdir() if p.name.startswith(".")]  # no work files left


def test_resume_reuses_the_saved_phrase_model(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "c.txt"
    write_planted_phrases(corpus, sentences=400)
    run = tmp_path / "run"
    assert main(["train", str(corpus), "-o", str(run), "--phrases", "2", *PHRASE_OPTS, *OPTS]) == 0
    model_bytes, vocab = (run / "phrases.json").read_bytes(), vocabulary(run)

    def relearn(*args, **kwargs):
        raise AssertionError("a resumed run learned its phrases again")

    monkeypatch.setattr(Phrases, "learn", relearn)
    assert main(["train", str(corpus), "-o", str(run), "--resume", *OPTS[:2], "--epochs", "2", "-q"]) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    assert (run / "phrases.json").read_bytes() == model_bytes and vocabulary(run) == vocab
    capsys.readouterr()

    assert main(["train", str(corpus), "-o", str(run), "--resume", "--epochs", "3", "--phrases", "2",
                 "--phrase-threshold", "7"]) == 2
    assert "cannot change 'phrase_threshold'" in capsys.readouterr().err
    model = Phrases.load(run / "phrases.json")
    Phrases(model.layers[:1], model.scoring, model.min_count, model.delimiter).save(run / "phrases.json")
    assert main(["train", str(corpus), "-o", str(run), "--resume", "--epochs", "3", "-q"]) == 2
    assert "is not the run's: it has 1 passes" in capsys.readouterr().err
    (run / "phrases.json").unlink()
    assert main(["train", str(corpus), "-o", str(run), "--resume", "--epochs", "3", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "phrases.json' does not exist" in err


@pytest.mark.parametrize("args, fragment", [
    (["--phrase-scoring", "gensim"], "phrase_scoring is set but phrases is 0"),
    (["--phrase-threshold", "5"], "phrase_threshold is set but phrases is 0"),
    (["--phrases", "-1"], "phrases must be 0"),
    (["--phrases", "2", "--phrase-threshold", "1", "--phrase-threshold", "2", "--phrase-threshold", "3"],
     "one phrase_threshold, or one per pass (2)"),
    (["--phrases", "1", "--phrase-scoring", "npmi", "--phrase-threshold", "2"], "[-1, 1]"),
    (["--phrases", "1", "--phrase-min-count", "0"], "phrase_min_count"),
    (["--phrases", "1", "--phrase-delimiter", "a b"], "phrase_delimiter"),
])
def test_bad_combinations_are_one_error_line(tmp_path, capsys, args, fragment):
    corpus = tmp_path / "c.txt"
    corpus.write_text("new york\n" * 20, encoding="utf-8")
    assert main(["train", str(corpus), "-o", str(tmp_path / "run"), *args, "-q"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], captured.err
    assert not (tmp_path / "run").exists()


def test_the_api_trains_on_sentences_with_phrases_and_hands_back_the_model(tmp_path):
    corpus = tmp_path / "c.txt"
    write_planted_phrases(corpus, sentences=400)
    sentences = [line.split() for line in corpus.read_text().splitlines()]
    model = Word2Vec(phrases=2, phrase_threshold=[10, 5], min_count=1, epochs=1, dim=8, threads=1)
    model.train(sentences, tmp_path / "run")
    assert model.phrases.apply(["the", "new", "york", "times", "in", "los", "angeles"]) == [
        "the", "new_york_times", "in", "los_angeles"]
    assert {"new_york_times", "new_york", "los_angeles"} <= set(model.wv.key_to_index)
    assert Word2Vec.load(tmp_path / "run").phrases == model.phrases
    assert Word2Vec(min_count=1).phrases is None
