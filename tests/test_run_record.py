"""Inputs and records of a run: standard input, the simple tokenizer, the per-epoch history,
--eval-each-epoch, the plot, and the train options derived from Config (one table)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import typer

from conftest import write_twin_corpus
from w2v_nce.cli import app, main
from w2v_nce.config import Config
from w2v_nce.errors import UserError

OPTS = ["--epochs", "2", "--dim", "16", "--min-count", "1", "--threads", "1", "-q"]


def train_cli(*args) -> None:
    assert main(["train", *map(str, args)]) == 0


def test_every_config_key_is_a_train_option_and_reaches_the_config(tmp_path, capsys):
    params = {p.name: p for p in typer.main.get_command(app).commands["train"].params}
    assert set(dataclasses.asdict(Config())) <= set(params)
    for f in dataclasses.fields(Config):
        assert params[f.name].help == f.metadata["help"]
    corpus = tmp_path / "c.txt"
    write_twin_corpus(corpus, sentences=200)
    train_cli(corpus, "-o", tmp_path / "run", *OPTS, "--update-cap", "32", "--no-shuffle", "--noise-power", "0.5",
              "--tokenizer", "whitespace")
    toml = (tmp_path / "run" / "config.toml").read_text()
    assert "update_cap = 32.0" in toml and "shuffle = false" in toml and "noise_power = 0.5" in toml


def test_standard_input_trains_as_the_same_file(tmp_path):
    corpus = tmp_path / "c.txt"
    write_twin_corpus(corpus, sentences=300)
    train_cli(corpus, "-o", tmp_path / "file", *OPTS)
    with open(corpus, "rb") as stdin:  # a real process: its standard input is the file
        done = subprocess.run([sys.executable, "-m", "w2v_nce", "train", "-", "-o", str(tmp_path / "stdin"), *OPTS],
                              stdin=stdin, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "file" / "vectors.txt").read_bytes() == (tmp_path / "stdin" / "vectors.txt").read_bytes()
    assert json.loads((tmp_path / "stdin" / "metrics.json").read_text())["corpus"] == "<stdin>"
    assert sorted(p.name for p in (tmp_path / "stdin").iterdir()) == [
        "checkpoint.pt", "config.toml", "metrics.json", "vectors.txt"]  # the spooled input is gone


def test_simple_tokenizer_counts_what_gensim_simple_preprocess_gives(tmp_path):
    from gensim.utils import simple_preprocess

    lines = ["Héllo, World! The café's NAÏVE owner — 3 times.", "Ünïcode ACCENTS: über-cool, naïve; x y",
             "a b c Hello hello HELLO", "Zoë's résumé (2nd draft) hello world"] * 30
    corpus = tmp_path / "raw.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    train_cli(corpus, "-o", tmp_path / "run", *OPTS, "--tokenizer", "simple", "--sample", "0")
    expected = Counter(t for line in lines for t in simple_preprocess(line, deacc=True))
    vocab = [line.split(" ")[0] for line in (tmp_path / "run" / "vectors.txt").read_text().splitlines()[1:]]
    assert sorted(vocab) == sorted(expected)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["corpus_tokens"] == sum(expected.values())


def test_history_has_an_entry_per_epoch_and_survives_resume(tmp_path):
    corpus = tmp_path / "c.txt"
    write_twin_corpus(corpus, sentences=300)
    run = tmp_path / "run"
    train_cli(corpus, "-o", run, *OPTS, "--chunk-tokens", "1000")
    first = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in first["history"]] == [1, 2]
    assert first["history"][-1]["words"] == first["words"] == 2 * first["corpus_words"]
    assert first["history"][0]["lr"] == pytest.approx(0.05 / 2)  # linear decay from CBOW's 0.05: half-way after epoch 1
    assert first["history"][-1]["lr"] == pytest.approx(0.05 * 1e-4)  # its floor at the end
    assert all(3.0 < h["loss"] < 6 * math.log(2) + 0.01 for h in first["history"])  # at most the loss at the start
    # the curve's chunk means average to the epochs' means, weighted by chunk size
    assert len(first["curve"]) >= 2 * (first["corpus_words"] // 1000)
    assert first["curve"][-1][0] == pytest.approx(first["words"])
    train_cli(corpus, "-o", run, *OPTS[:-1], "--epochs", "3", "--resume", "-q")
    resumed = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["history"][:2] == first["history"]


def test_eval_each_epoch_scores_equal_gensim_on_the_final_vectors(tmp_path):
    from gensim.models import KeyedVectors
    from gensim.test.utils import datapath

    # words from gensim's test sets, so that some questions and pairs are answered
    questions = [line.split() for line in open(datapath("questions-words.txt")) if not line.startswith(":")]
    pairs = [line.split("\t")[:2] for line in open(datapath("wordsim353.tsv")) if not line.startswith("#")]
    words = sorted({w.lower() for q in questions[:400] for w in q} | {w.lower() for p in pairs[:150] for w in p})
    rng = np.random.default_rng(0)
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words, 12)) for _ in range(800)) + "\n")
    run = tmp_path / "run"
    train_cli(corpus, "-o", run, *OPTS, "--eval-each-epoch")
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert len(history) == 2
    kv = KeyedVectors.load_word2vec_format(str(run / "vectors.txt"))
    accuracy, _ = kv.evaluate_word_analogies(datapath("questions-words.txt"), restrict_vocab=30000)
    _, spearman, _ = kv.evaluate_word_pairs(datapath("wordsim353.tsv"))
    assert history[-1]["analogy"] == pytest.approx(accuracy, abs=1e-12)
    assert history[-1]["analogy_coverage"] > 0
    assert history[-1]["ws353"] == pytest.approx(spearman[0], abs=1e-6)


def test_plot_draws_a_png(tmp_path, capsys):
    import matplotlib.image

    corpus = tmp_path / "c.txt"
    write_twin_corpus(corpus, sentences=300)
    run = tmp_path / "run"
    train_cli(corpus, "-o", run, *OPTS)
    capsys.readouterr()
    assert main(["plot", str(run)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {run / 'training.png'}"
    image = matplotlib.image.imread(run / "training.png")
    assert image.shape[0] > 200 and image.shape[1] > 500
    assert image[..., :3].std() > 0.05  # something was drawn
    assert main(["plot", str(run), "--out", str(tmp_path / "x.png")]) == 0
    assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_errors(tmp_path, capsys, monkeypatch):
    from w2v_nce.plot import plot_run

    assert main(["plot", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    (tmp_path / "metrics.json").write_text('{"loss": "neg"}')
    with pytest.raises(UserError, match="no per-epoch history"):
        plot_run(tmp_path)
    (tmp_path / "metrics.json").write_text('{"history": [{"epoch": 1, "loss": 2.0, "words": 10}]}')
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the plot extra were not installed
    with pytest.raises(UserError, match="pip install 'w2v-nce\\[plot\\]'"):
        plot_run(tmp_path)
    assert not (tmp_path / "training.png").exists()
