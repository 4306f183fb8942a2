"""The command line: train -> export -> query round trips, JSON outputs, and every bad input
reported as exactly one `error:` line with a non-zero status, no traceback, no partial file."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_twin_corpus
from oracles import assert_one_error_line, invoke
from w2v_nce.cli import main

TRAIN_OPTS = ["-q", "--min-count", "1", "--dim", "8", "--epochs", "1", "--threads", "1", "--window", "2",
              "--device", "cpu"]


def run_main(capsys, args) -> "tuple[int, str, str]":
    """Run through the console entry point `main(argv)`: (return code, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small trained model (CliRunner `train`), shared by the read-only tests."""
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "twins.txt"
    twins = write_twin_corpus(corpus, sentences=600)
    heldout = root / "heldout.txt"
    write_twin_corpus(heldout, seed=0, sentences=50)
    out = root / "run"
    code, stdout, err = invoke(["train", corpus, "-o", out, "--loss", "nce", "--learn-log-z", *TRAIN_OPTS])
    assert code == 0, err
    assert "trained" in stdout and "vectors.txt" in stdout
    assert err.strip() == ""
    return {"root": root, "corpus": corpus, "heldout": heldout, "out": out, "twins": twins}


# --------------------------------------------------------------------------- round trips


def test_train_outputs(trained):
    out = trained["out"]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.toml", "metrics.json", "vectors.txt"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["loss"] == "nce" and metrics["epochs"] == 1 and "log_z" in metrics


def test_export_text_and_binary_load_in_gensim(trained, tmp_path):
    import torch
    from gensim.models import KeyedVectors

    ckpt = trained["out"] / "checkpoint.pt"
    inp = torch.load(ckpt, map_location="cpu", weights_only=False)["model"]["inp"].numpy()
    words = torch.load(ckpt, map_location="cpu", weights_only=False)["words"]
    text, binary = tmp_path / "v.txt", tmp_path / "sub" / "v.bin"
    code, stdout, err = invoke(["export", ckpt, "-o", text])
    assert code == 0 and "text" in stdout and err == ""
    code, stdout, err = invoke(["export", ckpt, "-o", binary, "--format", "binary"])
    assert code == 0 and "binary" in stdout and err == ""
    kv_text = KeyedVectors.load_word2vec_format(str(text), binary=False)
    kv_bin = KeyedVectors.load_word2vec_format(str(binary), binary=True)
    assert kv_text.index_to_key == kv_bin.index_to_key == list(words)
    assert np.array_equal(kv_bin.vectors, inp)
    np.testing.assert_allclose(kv_text.vectors, inp, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(kv_text.vectors, kv_bin.vectors, rtol=1e-6, atol=1e-7)
    # and the text file train wrote is the same as the exported one
    assert (trained["out"] / "vectors.txt").read_bytes() == text.read_bytes()
    assert [p.name for p in tmp_path.rglob("*") if ".tmp-" in p.name] == []


@pytest.mark.parametrize("fmt", ["text", "binary"])
def test_neighbors_json_matches_gensim(trained, tmp_path, fmt):
    from gensim.models import KeyedVectors

    path = tmp_path / f"v.{fmt}"
    assert invoke(["export", trained["out"] / "checkpoint.pt", "-o", path, "-f", fmt])[0] == 0
    code, stdout, err = invoke(["neighbors", path, "a3", "--topn", "5", "--json"])
    assert code == 0, err
    data = json.loads(stdout)
    assert data["positive"] == ["a3"] and data["negative"] == [] and len(data["neighbors"]) == 5
    assert all(set(n) == {"word", "similarity"} for n in data["neighbors"])
    kv = KeyedVectors.load_word2vec_format(str(path), binary=fmt == "binary")
    expected = kv.most_similar("a3", topn=5)
    assert [n["word"] for n in data["neighbors"]] == [w for w, _ in expected]
    np.testing.assert_allclose([n["similarity"] for n in data["neighbors"]], [s for _, s in expected], atol=1e-6)
    code, stdout, _ = invoke(["neighbors", path, "a3", "--topn", "3"])
    assert code == 0 and len(stdout.strip().splitlines()) == 3


def test_analogy_json(trained, tmp_path):
    questions = tmp_path / "q.txt"
    questions.write_text(": twins\na0 b0 a1 b1\na2 b2 a3 b3\nzz b0 a1 b1\n: other\na4 b4 a5 b5\n", encoding="utf-8")
    code, stdout, err = invoke(["analogy", trained["out"] / "vectors.txt", questions, "--json"])
    assert code == 0, err
    data = json.loads(stdout)
    assert {"questions_path", "sections", "accuracy", "correct", "answered", "questions", "coverage"} <= set(data)
    assert data["questions"] == 4 and data["answered"] == 3 and data["coverage"] == pytest.approx(0.75)
    assert [s["name"] for s in data["sections"]] == ["twins", "other"]
    assert {"name", "correct", "incorrect", "answered", "questions", "accuracy"} <= set(data["sections"][0])
    code, stdout, _ = invoke(["analogy", trained["out"] / "vectors.txt", questions])
    assert code == 0 and "total" in stdout


def test_similarity_json(trained, tmp_path):
    pairs = tmp_path / "p.tsv"
    pairs.write_text("# w1\tw2\tscore\na0\tb0\t9.5\na1\tb1\t9.0\na0\ta7\t1.0\nb3\ta9\t2.5\nzz\ta1\t3\n", encoding="utf-8")
    code, stdout, err = invoke(["similarity", trained["out"] / "vectors.txt", pairs, "--json"])
    assert code == 0, err
    data = json.loads(stdout)
    assert {"pairs_path", "spearman", "spearman_pvalue", "pearson", "pearson_pvalue", "pairs_used", "pairs_total",
            "coverage", "oov_ratio"} <= set(data)
    assert data["pairs_used"] == 4 and data["pairs_total"] == 5
    assert -1 <= data["spearman"] <= 1


def test_diagnose_json(trained):
    code, stdout, err = invoke(["diagnose", trained["out"] / "checkpoint.pt", trained["heldout"], "--json",
                                "--max-examples", "300"])
    assert code == 0, err
    data = json.loads(stdout)
    assert set(data) == {"arch", "loss", "examples", "cross_entropy", "perplexity", "unnormalized_cross_entropy",
                         "log_z_mean", "log_z_std", "model_log_z"}
    assert data["loss"] == "nce" and 0 < data["examples"] <= 300  # exact count: see test_diagnose
    assert data["perplexity"] == pytest.approx(np.exp(data["cross_entropy"]))
    assert np.isfinite(data["cross_entropy"]) and data["log_z_std"] >= 0
    metrics = json.loads((trained["out"] / "metrics.json").read_text())
    assert data["model_log_z"] == pytest.approx(metrics["log_z"])
    code, stdout, _ = invoke(["diagnose", trained["out"] / "checkpoint.pt", trained["heldout"]])
    assert code == 0 and "cross_entropy" in stdout


def test_diagnose_of_a_runaway_model_is_strict_json(trained, tmp_path):
    """A model whose scores ran away (as --loss is does on real text) has a perplexity past
    float range: JSON gets null there, not the non-standard Infinity, and no traceback."""
    import torch

    state = torch.load(trained["out"] / "checkpoint.pt", weights_only=False)
    state["model"]["out"] = state["model"]["out"] * 1e6
    torch.save(state, tmp_path / "runaway.pt")
    code, stdout, err = invoke(["diagnose", tmp_path / "runaway.pt", trained["heldout"], "--json",
                                "--max-examples", "300"])
    assert code == 0, err
    data = json.loads(stdout, parse_constant=lambda name: pytest.fail(f"non-standard JSON {name}"))
    assert data["cross_entropy"] > 700 and data["perplexity"] is None


def test_an_internal_error_is_one_line_too(capsys, monkeypatch, trained):
    """A defect (not bad input) still gives one error line and a non-zero status, no traceback;
    W2V_NCE_DEBUG=1 shows the traceback."""
    import w2v_nce.evaluate

    def broken(*args, **kwargs):
        raise RuntimeError("simulated defect")

    monkeypatch.setattr(w2v_nce.evaluate, "neighbors", broken)
    assert_one_error_line(*run_main(capsys, ["neighbors", trained["out"] / "vectors.txt", "a0"]),
                          "internal error", "simulated defect", "W2V_NCE_DEBUG")
    monkeypatch.setenv("W2V_NCE_DEBUG", "1")
    with pytest.raises(RuntimeError, match="simulated defect"):
        main(["neighbors", str(trained["out"] / "vectors.txt"), "a0"])


def test_train_says_when_the_cpu_kernel_is_missing(tmp_path, monkeypatch, cpu_path):
    """Without the fused kernel (no C compiler at install) train still works, says so in one
    note on stderr, and metrics.json records which path ran."""
    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, sentences=200)
    code, _, err = invoke(["train", corpus, "-o", tmp_path / "run", *TRAIN_OPTS])
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["step"] == ("window_kernel" if cpu_path == "kernel" else "batched")
    assert "cpu_kernel" not in metrics  # one key says which step ran
    if cpu_path == "kernel":
        assert err.strip() == ""
    else:
        assert err.strip().startswith("note: the fused CPU kernel was not built") and len(err.splitlines()) == 1


def test_resume_through_cli(trained, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained["out"], out)
    code, stdout, err = invoke(["train", trained["corpus"], "-o", out, "--resume", "--epochs", "2", "-q"])
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2
    # changing the model when resuming is refused
    code, out_text, err = invoke(["train", trained["corpus"], "-o", out, "--resume", "--dim", "16", "-q"])
    assert_one_error_line(code, out_text, err, "dim")
    for option, value in (("--arch", "skipgram"), ("--loss", "hs"), ("--min-count", "3")):
        code, out_text, err = invoke(["train", trained["corpus"], "-o", out, "--resume", option, value, "-q"])
        assert_one_error_line(code, out_text, err, option.strip("-").replace("-", "_"), "when resuming")


@pytest.mark.parametrize("arch, loss", [("skipgram", "neg"), ("skipgram", "hs"), ("cbow", "hs")])
def test_train_each_arch_and_tree_loss_then_export_and_diagnose(trained, tmp_path, arch, loss):
    from gensim.models import KeyedVectors

    out = tmp_path / "run"
    code, stdout, err = invoke(["train", trained["corpus"], "-o", out, "--arch", arch, "--loss", loss,
                                *TRAIN_OPTS])
    assert code == 0, err
    assert f"trained {arch} with {loss}" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arch"] == arch and metrics["loss"] == loss
    assert 'arch = "' + arch + '"' in (out / "config.toml").read_text()
    code, _, err = invoke(["export", out / "checkpoint.pt", "-o", tmp_path / "v.bin", "-f", "binary"])
    assert code == 0, err
    kv = KeyedVectors.load_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    assert len(kv) == metrics["vocab_size"] == 80 and kv.vector_size == 8
    code, stdout, err = invoke(["diagnose", out / "checkpoint.pt", trained["heldout"], "--json"])
    assert code == 0, err
    data = json.loads(stdout)
    assert data["arch"] == arch and data["loss"] == loss
    assert math.isfinite(data["cross_entropy"]) and data["cross_entropy"] > 0
    if loss == "hs":
        assert data["log_z_mean"] == 0.0 and data["log_z_std"] == 0.0  # normalised by construction


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    """Checkpoints load with weights_only: a pickle that calls a function on load is refused, and
    the function never runs."""
    import pickle

    import torch

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    ckpt = tmp_path / "evil.pt"
    torch.save({"config": {}, "words": [], "counts": torch.zeros(1), "model": Payload()}, ckpt,
               pickle_protocol=pickle.HIGHEST_PROTOCOL)
    assert_one_error_line(*run_main(capsys, ["export", ckpt, "-o", tmp_path / "v.txt"]), "evil.pt", "refused")
    assert not marker.exists() and not (tmp_path / "v.txt").exists()


def test_main_success_returns_zero(trained, capsys):
    code, stdout, err = run_main(capsys, ["neighbors", trained["out"] / "vectors.txt", "b5", "--json"])
    assert code == 0 and err == ""
    assert json.loads(stdout)["positive"] == ["b5"]


# --------------------------------------------------------------------------- errors


@pytest.fixture
def bad_corpora(tmp_path):
    files = {
        "missing": tmp_path / "missing.txt",
        "empty": tmp_path / "empty.txt",
        "binary": tmp_path / "binary.txt",
        "latin1": tmp_path / "latin1.txt",
        "rare": tmp_path / "rare.txt",
    }
    files["empty"].write_bytes(b"")
    files["binary"].write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00 some words\n")
    files["latin1"].write_bytes("na\u00efve caf\u00e9\n".encode("latin-1"))
    files["rare"].write_text("each word once\n", encoding="utf-8")
    return files


@pytest.mark.parametrize("how", ["runner", "main"])
@pytest.mark.parametrize(
    "kind,fragment",
    [("missing", "does not exist"), ("empty", "no words"), ("binary", "binary"), ("latin1", "UTF-8"),
     ("rare", "vocabulary is empty")],
)
def test_bad_corpus(tmp_path, capsys, bad_corpora, how, kind, fragment):
    corpus = bad_corpora[kind]
    out = tmp_path / "out"
    args = ["train", corpus, "-o", out, "-q", "--min-count", "2", "--threads", "1", "--device", "cpu"]
    result = invoke(args) if how == "runner" else run_main(capsys, args)
    assert_one_error_line(*result, fragment, *([corpus.name] if kind != "rare" else []))
    assert not (out / "vectors.txt").exists() and not (out / "metrics.json").exists()
    if out.exists():
        assert list(out.iterdir()) == []


def test_corrupt_gzip_corpus(tmp_path, capsys):
    good = gzip.compress(b"hello world\n" * 1000)
    corpus = tmp_path / "corrupt.gz"
    corpus.write_bytes(good[:10] + bytes(b ^ 0x55 for b in good[10:40]) + good[40:])
    try:
        result = run_main(capsys, ["train", corpus, "-o", tmp_path / "out", "-q"])
    except Exception as exc:  # the bug: the exception escapes main()
        pytest.fail(f"traceback: {exc!r}")
    assert_one_error_line(*result, "corrupt.gz")


def test_out_is_an_existing_file(tmp_path, capsys, twin_corpus):
    corpus, _ = twin_corpus
    out = tmp_path / "a_file"
    out.write_text("keep me")
    try:
        result = run_main(capsys, ["train", corpus, "-o", out, *TRAIN_OPTS])
    except Exception as exc:
        pytest.fail(f"traceback: {exc!r}")
    assert_one_error_line(*result)
    assert out.read_text() == "keep me"


@pytest.mark.parametrize(
    "options,fragment",
    [
        (["--dim", "x"], "--dim"),
        (["--loss", "foo"], "--loss"),
        (["--dim", "-3"], "dim"),
        (["--epochs", "0"], "epochs"),
        (["--lr", "abc"], "--lr"),
        (["--sample", "-1"], "sample"),
        (["--device", "gpu"], "device"),
        (["--no-such-option"], "no-such-option"),
    ],
)
def test_invalid_option_values(tmp_path, capsys, twin_corpus, options, fragment):
    corpus, _ = twin_corpus
    out = tmp_path / "out"
    result = run_main(capsys, ["train", corpus, "-o", out, "-q", *options])
    assert_one_error_line(*result, fragment)
    assert not out.exists() or list(out.iterdir()) == []


def test_parser_errors_of_other_commands(capsys, tmp_path):
    assert_one_error_line(*run_main(capsys, ["no-such-command"]), "no-such-command")
    assert_one_error_line(*run_main(capsys, ["export", tmp_path / "x.pt"]), "--out")  # missing required option
    assert_one_error_line(*run_main(capsys, ["neighbors", tmp_path / "v.txt", "w", "--topn", "many"]), "--topn")
    assert_one_error_line(*run_main(capsys, ["export", tmp_path / "x.pt", "-o", tmp_path / "y", "-f", "xml"]),
                          "--format")


@pytest.mark.parametrize("cosmul", [False, True])
def test_neighbors_of_positive_and_negative_words_equal_gensim(trained, capsys, cosmul):
    from gensim.models import KeyedVectors

    path = trained["out"] / "vectors.txt"
    args = ["neighbors", path, "--positive", "a3", "b5", "--negative", "a4", "--topn", "6", "--json"]
    code, stdout, err = run_main(capsys, args + (["--cosmul"] if cosmul else []))
    assert code == 0, err
    data = json.loads(stdout)
    assert (data["positive"], data["negative"], data["cosmul"]) == (["a3", "b5"], ["a4"], cosmul)
    kv = KeyedVectors.load_word2vec_format(str(path))
    query = kv.most_similar_cosmul if cosmul else kv.most_similar
    expected = query(positive=["a3", "b5"], negative=["a4"], topn=6)
    assert [n["word"] for n in data["neighbors"]] == [w for w, _ in expected]
    np.testing.assert_allclose([n["similarity"] for n in data["neighbors"]], [s for _, s in expected], atol=1e-6)
    # the short flags, and WORD with --negative, ask the same question
    code, short, _ = run_main(capsys, ["neighbors", path, "a3", "-p", "b5", "-n", "a4", "--topn", "6", "--json"]
                              + (["--cosmul"] if cosmul else []))
    assert code == 0 and json.loads(short)["neighbors"] == data["neighbors"]


def test_neighbors_needs_a_word(trained, capsys):
    assert_one_error_line(*run_main(capsys, ["neighbors", trained["out"] / "vectors.txt"]), "query word")


def test_export_output_rows(trained, tmp_path, capsys):
    from gensim.models import KeyedVectors

    path = tmp_path / "out.txt"
    code, _, err = run_main(capsys, ["export", trained["out"] / "checkpoint.pt", "-o", path, "--which", "output"])
    assert code == 0, err
    state = torch.load(trained["out"] / "checkpoint.pt", weights_only=True)
    kv = KeyedVectors.load_word2vec_format(str(path))
    assert kv.index_to_key == list(state["words"])
    np.testing.assert_allclose(kv.vectors, state["model"]["out"].numpy(), rtol=1e-6, atol=1e-7)
    assert not np.allclose(kv.vectors, state["model"]["inp"].numpy())


def test_export_output_rows_of_hs_is_an_error(tmp_path, capsys, twin_corpus):
    out, corpus = tmp_path / "hs", twin_corpus[0]
    assert run_main(capsys, ["train", corpus, "-o", out, "--loss", "hs", "--epochs", "1", "--min-count", "1",
                             "-q"])[0] == 0
    target = tmp_path / "rows.txt"
    assert_one_error_line(*run_main(capsys, ["export", out / "checkpoint.pt", "-o", target, "--which", "output"]),
                          "inner node")
    assert not target.exists()


@pytest.mark.parametrize("how", ["runner", "main"])
def test_unknown_word_for_neighbors(trained, capsys, how):
    args = ["neighbors", trained["out"] / "vectors.txt", "no-such-word"]
    result = invoke(args) if how == "runner" else run_main(capsys, args)
    assert_one_error_line(*result, "no-such-word")


@pytest.mark.parametrize(
    "content,fragment",
    [
        (b"", "empty"),
        (b"hello world\n", "header"),
        (b"2 3\nw 1 2 3\nv 1 2\n", "line 3"),
        (b"2 3\nw 1 2 3\nv 1 x 3\n", "not a number"),
        (b"3 3\nw 1 2 3\nv 1 2 3\n", "header says 3"),
        (b"2 3\nw 1 2 3\nw 1 2 3\n", "duplicate"),
        (b"1 2\nw nan 1\n", "non-finite"),
    ],
)
def test_malformed_vectors_file(tmp_path, capsys, content, fragment):
    path = tmp_path / "bad.vec"
    path.write_bytes(content)
    for result in (invoke(["neighbors", path, "w"]), run_main(capsys, ["neighbors", path, "w"])):
        assert_one_error_line(*result, fragment, "bad.vec")


@pytest.mark.parametrize("how", ["runner", "main"])
def test_missing_checkpoint_leaves_no_output(tmp_path, capsys, how):
    out = tmp_path / "exported.txt"
    args = ["export", tmp_path / "nope.pt", "-o", out]
    result = invoke(args) if how == "runner" else run_main(capsys, args)
    assert_one_error_line(*result, "nope.pt", "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_garbage_checkpoint_leaves_no_output(tmp_path, capsys):
    ckpt = tmp_path / "garbage.pt"
    ckpt.write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path / "exported.bin"
    assert_one_error_line(*run_main(capsys, ["export", ckpt, "-o", out, "-f", "binary"]), "garbage.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.pt"]
    assert_one_error_line(*invoke(["diagnose", ckpt, ckpt]), "garbage.pt")


def test_export_onto_a_directory_leaves_no_partial_file(trained, tmp_path, capsys):
    target = tmp_path / "a_dir"
    target.mkdir()
    assert_one_error_line(*run_main(capsys, ["export", trained["out"] / "checkpoint.pt", "-o", target]), "a_dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir"]
    assert list(target.iterdir()) == []


def test_diagnose_bad_heldout(trained, tmp_path, capsys):
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("zz yy xx\n", encoding="utf-8")
    assert_one_error_line(*invoke(["diagnose", trained["out"] / "checkpoint.pt", unknown]), "unknown.txt")
    assert_one_error_line(*run_main(capsys, ["diagnose", trained["out"] / "checkpoint.pt", tmp_path / "gone.txt"]),
                          "gone.txt")


@pytest.mark.parametrize(
    "toml,fragment",
    [
        ("dim = \n", "not valid TOML"),
        ("dimension = 5\n", "unknown config key 'dimension'"),
        ('dim = "big"\n', "'dim'"),
        ("[model]\ndim = 5\n", "tables"),
        ("epochs = 0\n", "epochs"),
    ],
)
@pytest.mark.parametrize("how", ["runner", "main"])
def test_bad_config_file(tmp_path, capsys, twin_corpus, toml, fragment, how):
    corpus, _ = twin_corpus
    config = tmp_path / "bad.toml"
    config.write_text(toml, encoding="utf-8")
    out = tmp_path / "out"
    args = ["train", corpus, "-c", config, "-o", out, "-q"]
    result = invoke(args) if how == "runner" else run_main(capsys, args)
    assert_one_error_line(*result, fragment)
    assert not out.exists()


def test_missing_config_file(tmp_path, capsys, twin_corpus):
    corpus, _ = twin_corpus
    assert_one_error_line(*run_main(capsys, ["train", corpus, "-c", tmp_path / "none.toml", "-o", tmp_path / "o"]),
                          "none.toml")


def test_config_file_and_cli_precedence(tmp_path, twin_corpus):
    from w2v_nce.config import load_config

    corpus, _ = twin_corpus
    config = tmp_path / "c.toml"
    config.write_text('loss = "rnce"\ndim = 6\nepochs = 1\nmin_count = 1\nthreads = 1\ndevice = "cpu"\n', encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = invoke(["train", corpus, "-c", config, "--dim", "4", "-o", out, "-q"])
    assert code == 0, err
    saved = load_config(out / "config.toml")
    assert (saved.loss, saved.dim, saved.epochs) == ("rnce", 4, 1)
    assert Path(out / "vectors.txt").read_text().splitlines()[0] == "80 4"


# --------------------------------------------------------------------------- packaging and safety


def test_python_dash_m_runs_the_cli():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "w2v_nce", "train", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--arch" in done.stdout


def test_user_error_is_a_value_error():
    from w2v_nce.errors import UserError

    assert issubclass(UserError, ValueError)


def test_resume_without_a_checkpoint_starts_a_new_run(tmp_path, twin_corpus):
    corpus, _ = twin_corpus
    code, stdout, err = invoke(["train", corpus, "-o", tmp_path / "run", "--resume", *TRAIN_OPTS])
    assert code == 0, err
    assert err.strip().startswith("note: no checkpoint") and len(err.strip().splitlines()) == 1
    assert (tmp_path / "run" / "vectors.txt").exists()


def test_a_run_removes_the_id_files_of_killed_runs(tmp_path, twin_corpus):
    import os

    corpus, _ = twin_corpus
    out = tmp_path / "run"
    out.mkdir()
    dead = out / ".ids-999999999-abc.bin"  # no such process
    live = out / f".ids-{os.getppid()}-abc.bin"  # a running process's: left alone
    dead.write_bytes(b"x" * 100)
    live.write_bytes(b"x")
    code, _, err = invoke(["train", corpus, "-o", out, *TRAIN_OPTS])
    assert code == 0, err
    assert not dead.exists() and live.exists()


def test_a_failed_write_is_one_error_line_naming_the_file(tmp_path, twin_corpus, capsys, monkeypatch):
    import torch

    corpus, _ = twin_corpus
    out = tmp_path / "run"
    (out / "vectors.txt").mkdir(parents=True)  # a directory where the vectors go
    code, stdout, err = run_main(capsys, ["train", corpus, "-o", out, *TRAIN_OPTS])
    assert_one_error_line(code, stdout, err, "vectors.txt", "cannot write", "directory")
    assert code == 2
    assert not [p for p in out.iterdir() if ".tmp-" in p.name or p.name.startswith(".ids-")]

    def full_disk(*args, **kwargs):  # what torch.save raises when the disk fills up
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing "
                           "file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    code, stdout, err = run_main(capsys, ["train", corpus, "-o", tmp_path / "run2", *TRAIN_OPTS])
    assert_one_error_line(code, stdout, err, "checkpoint.pt", "cannot write")
    assert not [p for p in (tmp_path / "run2").iterdir() if ".tmp-" in p.name or p.name.startswith(".ids-")]


def test_predict_through_cli(trained, capsys):
    code, stdout, err = run_main(capsys, ["predict", trained["out"], "a3", "b7", "--topn", "3", "--json"])
    assert code == 0, err
    data = json.loads(stdout)
    assert data["context"] == ["a3", "b7"] and len(data["predictions"]) == 3
    assert all(0 < p["probability"] < 1 for p in data["predictions"])
    assert_one_error_line(*run_main(capsys, ["predict", trained["out"], "nosuchword"]), "vocabulary")


def test_train_on_several_files_and_a_directory(tmp_path, twin_corpus):
    corpus, _ = twin_corpus
    lines = corpus.read_text().splitlines()
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "1.txt").write_text("\n".join(lines[:1000]) + "\n")
    (parts / "2.txt").write_text("\n".join(lines[1000:]) + "\n")
    runs = {}
    for name, args in (("one", [corpus]), ("two", [parts / "1.txt", parts / "2.txt"]), ("dir", [parts])):
        code, _, err = invoke(["train", *args, "-o", tmp_path / name, *TRAIN_OPTS])
        assert code == 0, err
        runs[name] = (tmp_path / name / "vectors.txt").read_text()
    assert runs["one"] == runs["two"] == runs["dir"]
