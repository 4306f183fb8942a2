"""The shape of the package, checked: config.py is a leaf whose choices key the registries, the
command line starts without torch, the tests do not import each other, every declared marker is
used, and the step path is chosen once from the parts and recorded."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from conftest import write_twin_corpus
from oracles import small_cfg

ROOT = Path(__file__).resolve().parent.parent


def _imports_torch(code: str) -> bool:
    probe = f"import sys\n{code}\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] == "True"


def test_config_is_a_leaf_and_its_choices_key_the_registries():
    from w2v_nce import config, corpus, objectives, phrases, updates, windows

    assert not _imports_torch("import w2v_nce.config")
    assert tuple(objectives.OBJECTIVES) == config.LOSSES
    assert tuple(corpus.TOKENIZERS) == config.TOKENIZERS
    assert tuple(phrases.CONNECTOR_SETS) == config.PHRASE_CONNECTORS
    assert tuple(updates.rules()) == config.UPDATES
    assert tuple(windows.EXAMPLES) == config.ARCHS == tuple(windows.KERNEL_SKIPGRAM)


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["neighbors", "VECTORS", "king", "--topn", "3"]])
def test_the_command_line_starts_without_torch(argv, tmp_path):
    """`w2v-nce --help`, `train --help` and `neighbors` never import torch (it takes ~1 s)."""
    vectors = tmp_path / "v.txt"
    vectors.write_text("3 2\nking 1 0\nqueen 0.9 0.1\nman 0 1\n")
    argv = [str(vectors) if a == "VECTORS" else a for a in argv]
    assert not _imports_torch(f"from w2v_nce.cli import main\ncode = main({argv!r})\nassert code == 0, code")


def test_tests_do_not_import_each_other():
    for path in (ROOT / "tests").glob("test_*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("test_") for n in names), f"{path.name} imports {names}"


def test_every_declared_marker_is_used():
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"].get("markers", [])
    sources = "".join(p.read_text() for p in (ROOT / "tests").glob("*.py"))
    for marker in markers:
        name = marker.split(":")[0].strip()
        assert f"pytest.mark.{name}" in sources, f"marker {name!r} is declared but never used"


@pytest.mark.parametrize("asked, step", [("auto", "window_kernel"), ("batched", "batched")])
def test_the_step_is_chosen_once_and_recorded(tmp_path, asked, step, monkeypatch):
    """`step` (config.toml) chooses the path; metrics.json says which ran and why. The old
    benchmarking switch W2V_NCE_NO_WINDOWS has no effect: the same tables with it set."""
    from conftest import require_kernel
    from w2v_nce.checkpoint import load_checkpoint
    from w2v_nce.train import train

    require_kernel()
    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, sentences=300)
    metrics = train(corpus, tmp_path / "a", small_cfg(step=asked, epochs=1), progress_bar=False)
    assert metrics["step"] == step and metrics["step_reason"]
    assert f'step = "{asked}"' in (tmp_path / "a" / "config.toml").read_text()
    monkeypatch.setenv("W2V_NCE_NO_WINDOWS", "1")
    train(corpus, tmp_path / "b", small_cfg(step=asked, epochs=1), progress_bar=False)
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.pt")["model"]["inp"] for d in "ab")
    assert torch.equal(a, b)


def test_a_step_that_cannot_serve_is_an_error_not_a_silent_swap(tmp_path):
    from w2v_nce.errors import UserError
    from w2v_nce.train import train

    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, sentences=100)
    for options, reason in ((dict(loss="softmax"), "scores every output row"),
                            (dict(update="implicit"), "curvature")):
        with pytest.raises(UserError, match=reason):
            train(corpus, tmp_path / "run", small_cfg(step="kernel", epochs=1, **options), progress_bar=False)
    metrics = train(corpus, tmp_path / "run", small_cfg(update="implicit", epochs=1), progress_bar=False)
    assert metrics["step"] == "batched" and "curvature" in metrics["step_reason"]
