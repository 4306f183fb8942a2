"""The dry run of scripts/gpu_matrix.sh on the CPU (`EXTRA="--max-tokens 100000" ... cpu`): every
step of the GPU session's one command runs and writes its summary line, so the first GPU run does
not spend its minutes on a broken script. The GPU's numbers themselves are docs/gpu.md's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ("cbow_neg_4m", "cbow_neg", "sg_neg", "nce")


def _eval_dir() -> Path:
    """../shared/eval beside the repository, else gensim's bundled copies of the same files."""
    shared = ROOT.parent / "shared" / "eval"
    if (shared / "questions-words.txt").is_file():
        return shared
    pytest.importorskip("gensim")
    from gensim.test.utils import datapath

    return Path(datapath("questions-words.txt")).parent


def test_the_dry_run_writes_every_row(tmp_path):
    """Without gensim, as on the GPU image (which has none): a stub that fails to import shadows it."""
    out = tmp_path / "out"
    hidden = tmp_path / "hide" / "gensim"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('gensim hidden: the GPU image has none')\n")
    path = os.pathsep.join(filter(None, [str(hidden.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "EXTRA": "--max-tokens 100000", "PYTHON": sys.executable, "MATRIX_SECONDS": "0",
           "PYTHONPATH": path}
    proc = subprocess.run(["bash", "scripts/gpu_matrix.sh", str(ROOT / "data" / "wiki1.5m.txt.gz"),
                           str(_eval_dir()), str(out), "cpu"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = (out / "summary.txt").read_text()
    assert re.search(r"tests/test_cuda.py on cpu: passed \(\d+ passed", summary), summary
    assert "sync check: unchecked (no CUDA)" in summary, summary
    assert "failed" not in summary.lower(), summary
    for name in PAIRS:
        for step in ("batched", "kernel"):
            assert re.search(rf"^{name}_{step} +[\d,]+ words/s  analogy", summary, re.M), (name, step, summary)
        assert re.search(rf"^{name} +new/batched: words/s [\d.]+x  analogy ([\d.]+|-)  WS353 -?[\d.]+$", summary,
                         re.M), (name, summary)
    assert re.search(r"^cbow_neg_p512_kernel +[\d,]+ words/s", summary, re.M), summary
    assert re.search(r"^softmax_v30k_batched +[\d,]+ words/s", summary, re.M), summary
    assert re.search(r"^torchrun_1rank +[\d,]+ words/s, alone [\d,]+: words/s [\d.]+x", summary, re.M), summary
    assert summary.rstrip().endswith("on cpu")
