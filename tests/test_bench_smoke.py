"""Smoke test of scripts/bench_vs_gensim.py on gensim's small bundled corpus (a few seconds).

The script runs in a subprocess: it sets torch's thread count, which must not leak into
other tests.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gensim")
from gensim.test.utils import datapath  # noqa: E402

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_vs_gensim.py"
ROWS = ("words_per_sec", "analogy_accuracy", "analogy_coverage", "ws353_spearman", "simlex_spearman",
        "train_seconds", "wall_seconds", "peak_rss_mb", "vocab_size", "corpus_words")


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_vs_gensim", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_bench_smoke(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--corpus", datapath("lee_background.cor"), "--epochs", "1",
         "--max-tokens", "30000", "--threads", "1", "--device", "cpu",
         "--workdir", str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ours/gensim" in proc.stdout and "summary:" in proc.stdout

    result = json.loads(out.read_text())
    assert result["rows"] == list(ROWS)
    ours, gensim, ratio = result["ours"], result["gensim"], result["ratio"]
    for key in ROWS:
        assert _finite(ours[key]) and _finite(gensim[key]), (key, ours[key], gensim[key])
        if gensim[key] != 0:
            assert ratio[key] == pytest.approx(ours[key] / gensim[key], rel=1e-9), key
        else:
            assert ratio[key] is None, key
    # same prepared corpus, same vocabulary rule: both count the same in-vocabulary words
    assert ours["vocab_size"] == gensim["vocab_size"] > 0
    assert ours["corpus_words"] == gensim["corpus_words"] > 0
    assert ours["words_per_sec"] > 0 and gensim["words_per_sec"] > 0
    assert result["corpus"]["tokens"] == 30000
    # our evaluation of gensim's vectors equals gensim's own
    cross = result["cross_check"]
    assert cross["analogy_equal"] and cross["ws353_equal"] and cross["simlex_equal"], cross
    assert (tmp_path / "work" / "corpus.txt").is_file()


def test_skip_gensim_leaves_ratios_blank(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--corpus", datapath("lee_background.cor"), "--epochs", "1",
         "--max-tokens", "5000", "--threads", "1", "--device", "cpu", "--skip-gensim", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["gensim"] is None and result["cross_check"] is None
    assert all(value is None for value in result["ratio"].values())
    assert _finite(result["ours"]["words_per_sec"])


def test_prepare_corpus_cuts_long_lines(tmp_path):
    bench = _load_script()
    source = tmp_path / "one_line.txt"
    source.write_text(" ".join(f"w{i}" for i in range(2500)) + "\nlast line\n")
    target = tmp_path / "prepared.txt"
    counts = bench.prepare_corpus(source, target, line_words=1000)
    lines = target.read_text().splitlines()
    assert [len(line.split()) for line in lines] == [1000, 1000, 500, 2]
    assert counts == {**counts, "tokens": 2502, "lines": 4}
    assert " ".join(lines[:3]).split() == [f"w{i}" for i in range(2500)]
    bench.prepare_corpus(source, target, max_tokens=1001, line_words=1000)
    assert [len(line.split()) for line in target.read_text().splitlines()] == [1000, 1]


def test_phrase_analogy_bench_smoke(tmp_path):
    """scripts/bench_phrase_analogy.py on planted phrases: both pipelines join them, the questions
    (Mixed_Case, as questions-phrases.txt) are all covered, and gensim's own evaluation agrees."""
    from conftest import write_planted_phrases

    corpus = tmp_path / "c.txt"
    write_planted_phrases(corpus)
    questions = tmp_path / "questions-phrases.txt"
    questions.write_text(": planted\nw1 New_York w2 Los_Angeles\nw3 New_York_Times w4 New_York\n", encoding="utf-8")
    out = tmp_path / "bench.json"
    script = SCRIPT.parent / "bench_phrase_analogy.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--corpus", str(corpus), "--questions", str(questions), "--threshold", "10",
         "--threshold", "5", "--min-count", "1", "--epochs", "1", "--dim", "8", "--threads", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ours/gensim" in proc.stdout and "cross-check on gensim's vectors" in proc.stdout
    result = json.loads(out.read_text())
    ours, gensim = result["ours"], result["gensim"]
    assert ours["phrase_coverage"] == 1.0 and gensim["phrase_coverage"] > 0  # (gensim's second pass differs)
    assert ours["vocab_phrases"] == 3 and ours["phrases_per_pass"] == [3, 1]
    assert gensim["phrases_per_pass"][0] == 3  # the first pass is gensim's exactly
    assert result["cross_check"]["equal"]


def test_bench_subwords_smoke(tmp_path):
    """scripts/bench_subwords.py end to end on 30k tokens, skip-gram: ours, gensim's FastText and (when
    fasttext-wheel is installed) Facebook's fastText, with the ratios of every row."""
    script = SCRIPT.parent / "bench_subwords.py"
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(script), "--corpus", datapath("lee_background.cor"), "--epochs", "1", "--arch",
         "skipgram", "--max-tokens", "30000", "--threads", "1", "--buckets", "20000", "--workdir",
         str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())["archs"]["skipgram"]
    rows, ratio = result["rows"], result["ratio"]
    others = [name for name in ("gensim", "fasttext") if rows[name] is not None]
    assert "gensim" in others and f"ours/{others[-1]}" in proc.stdout
    for name in ["ours", *others]:
        assert _finite(rows[name]["words_per_sec"]) and _finite(rows[name]["analogy_accuracy"]), name
        assert rows[name]["vocab_size"] == rows["ours"]["vocab_size"] > 0  # one vocabulary rule for all
        assert rows[name]["corpus_words"] == rows["ours"]["corpus_words"]
    for name in others:
        assert ratio[name]["words_per_sec"] == pytest.approx(
            rows["ours"]["words_per_sec"] / rows[name]["words_per_sec"], rel=1e-9)
    assert result["settings"]["maxn"] == 6 and result["params"]["gensim"]["bucket"] == 20000

GROW = Path(__file__).resolve().parent.parent / "scripts" / "bench_grow.py"
BUNDLED = Path(__file__).resolve().parent.parent / "data" / "wiki1.5m.txt.gz"


def test_bench_grow_smoke(tmp_path):
    """scripts/bench_grow.py's four measurements on 20k tokens of the bundled corpus (a few seconds)."""
    out = tmp_path / "grow.json"
    proc = subprocess.run(
        [sys.executable, str(GROW), "--measure", "halves", "--measure", "init-vectors", "--measure", "early-stop",
         "--measure", "hs-inner", "--wiki65m", str(BUNDLED), "--wiki17m", str(BUNDLED), "--max-tokens", "20000",
         "--dim", "10", "--threads", "1", "--max-epochs", "2", "--patience", "1", "--rank-words", "200",
         "--heldout-tokens", "2000", "--heldout-examples", "300", "--workdir", str(tmp_path / "work"),
         "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    halves = result["halves"]["runs"]
    assert set(halves) == {"ours_first_half", "ours_continued", "ours_whole", "ours_second_half_only",
                           "gensim_continued", "gensim_whole"}
    assert halves["ours_continued"]["vocab_size"] == halves["gensim_continued"]["vocab_size"]  # one update rule
    assert halves["ours_first_half"]["vocab_size"] < halves["ours_continued"]["vocab_size"]
    ranks = result["halves"]["rank_check"]
    assert ranks["ours_whole"]["share"] == 1.0 and 0 < ranks["ours_continued"]["words"] <= 200
    init = result["init-vectors"]["runs"]
    assert init["cold_start"]["frozen_rows"] is None and init["init_wiki65m_rest_locked"]["frozen_rows"] > 0
    stop = result["early-stop"]["runs"]
    assert stop["early_stop"]["best_epoch"] in (1, 2) and len(stop["default_5_epochs"]["history"]) == 5
    hs = result["hs-inner"]["runs"]
    assert set(hs) == {"zero", "same_decision", "gensim_by_index"}
    assert all(_finite(run["heldout_start"]) and _finite(run["heldout_trained"]) for run in hs.values())


def test_bench_growth_smoke(tmp_path):
    """scripts/bench_growth.py on 20k tokens of the bundled corpus: both sweeps, both trainers, one
    vocabulary rule (gensim's counts are the oracle), the copies' tokens, and the per-row slope."""
    script = SCRIPT.parent / "bench_growth.py"
    out = tmp_path / "growth.json"
    proc = subprocess.run(
        [sys.executable, str(script), "--corpus17", str(BUNDLED), "--corpus65", str(BUNDLED), "--max-tokens", "20000",
         "--copies", "2", "--min-counts", "5", "1", "--dim", "10", "--threads", "1",
         "--workdir", str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    size, vocab = result["corpus_sweep"], result["vocab_sweep"]
    assert [r["corpus"] for r in size] == ["wiki17m", "wiki65m", "wiki65m x2"]
    assert size[2]["tokens"] == 2 * size[1]["tokens"] == 40000
    assert [r["min_count"] for r in vocab] == [5, 1] and vocab[0] == size[1]
    for r in size + vocab:
        assert r["ours"]["vocab_size"] == r["gensim"]["vocab_size"] > 0, r
        assert r["ours"]["corpus_words"] == r["gensim"]["corpus_words"], r
        assert _finite(r["ours"]["words_per_sec"]) and _finite(r["gensim"]["peak_rss_mb"])
    assert size[2]["ours"]["corpus_words"] > 2 * size[1]["ours"]["corpus_words"] * 0.99  # both copies are read
    assert vocab[1]["ours"]["vocab_size"] > vocab[0]["ours"]["vocab_size"]
    slope = (vocab[1]["ours"]["peak_rss_mb"] - vocab[0]["ours"]["peak_rss_mb"]) * 2**20 / (
        vocab[1]["ours"]["vocab_size"] - vocab[0]["ours"]["vocab_size"])
    assert result["bytes_per_vocab_row"]["ours"] == pytest.approx(slope)
    assert "over the vocabulary" in proc.stdout and "per vocabulary row" in proc.stdout
