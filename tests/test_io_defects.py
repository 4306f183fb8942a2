"""Files written and read at the edges (issue 16, defects 7 and 8): a disk that fills up while a
checkpoint or vectors file is written, the temporary files of killed runs, and vectors files whose
header claims more than they hold. Each is one `error:` line, exit status 2, no partial file."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_twin_corpus
from w2v_nce import atomic
from w2v_nce.atomic import atomic_path, remove_stale_temporaries
from w2v_nce.cli import main
from w2v_nce.errors import UserError
from w2v_nce.vectors import Vectors, load_word2vec, save_word2vec

TRAIN_OPTS = ["-q", "--min-count", "1", "--epochs", "1", "--threads", "1", "--window", "2", "--device", "cpu"]
DEAD_PID = 999_999_999  # above Linux's largest pid_max (2^22): never a running process
# What torch 2.13's torch.save raised on a full 20 MB tmpfs (the disk filled up while it wrote):
TORCH_FULL_DISK = "[enforce fail at inline_container.cc:672] . unexpected pos 46592 vs 46480"


def run_main(capsys, args) -> "tuple[int, str]":
    """`w2v-nce ARGS` through the console entry point: (status, the stderr lines)."""
    code = main([str(a) for a in args])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or p.name.startswith((".ids-", ".stdin-")))


# --------------------------------------------------------------------------- a full disk


@pytest.fixture(params=["tmpfs", "simulated"])
def small_disk(request, tmp_path, monkeypatch):
    """A folder on a file system with `leave(n)` to fill it up to `n` free bytes: a real 1 MiB tmpfs
    where this test may mount one (root), else a folder whose free space `shutil.disk_usage` reports
    as what `leave` says and where torch.save fails as it does on a full disk (TORCH_FULL_DISK)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if request.param == "tmpfs":
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root")
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                                 capture_output=True)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
        request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(folder)], check=False))

        def leave(free: int) -> None:
            filler = folder / "filler"
            filler.write_bytes(b"\0" * max(shutil.disk_usage(folder).free - free, 0))

        return types.SimpleNamespace(path=folder, leave=leave, real=True)

    room = {"free": 1 << 30}
    real_disk_usage = shutil.disk_usage
    monkeypatch.setattr(atomic.shutil, "disk_usage",
                        lambda p: real_disk_usage(p)._replace(free=room["free"]))
    real_save = torch.save

    def save(obj, f, *args, **kwargs):  # a full disk: torch writes part of the file, then raises
        if room["free"] < 1 << 20 and Path(f).parent == folder / "run":
            Path(f).write_bytes(b"PK\3\4 part of a checkpoint")
            raise RuntimeError(TORCH_FULL_DISK)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    return types.SimpleNamespace(path=folder, leave=lambda free: room.update(free=free), real=False)


def test_a_full_disk_while_the_checkpoint_is_written_is_one_error_line(small_disk, tmp_path, capsys):
    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, sentences=300)  # ids: 12 KB; a checkpoint of dim 300: ~200 KB
    out = small_disk.path / "run"
    small_disk.leave(64 << 10)
    code, err = run_main(capsys, ["train", corpus, "-o", out, "--dim", "300", *TRAIN_OPTS])
    assert code == 2, err
    assert err == [f"error: cannot write checkpoint '{out / 'checkpoint.pt'}': no space left on device"]
    assert not (out / "checkpoint.pt").exists() and not (out / "vectors.txt").exists()
    assert temporaries(out) == []


def test_a_full_disk_while_vectors_are_written_is_one_error_line(small_disk, tmp_path):
    path = small_disk.path / "run" / "vectors.txt"
    path.parent.mkdir()
    vectors = Vectors([f"w{i}" for i in range(1000)], np.ones((1000, 50)))  # ~ 100 KB of text
    if not small_disk.real:  # test_a_write_failing_with_enospc_says_no_space simulates this one
        pytest.skip("the simulated disk fails torch.save only")
    small_disk.leave(0)
    with pytest.raises(UserError) as error:
        save_word2vec(vectors, path)
    assert str(error.value) == f"cannot write vectors file '{path}': no space left on device"
    assert temporaries(path.parent) == [] and not path.exists()


def test_a_failed_torch_write_on_a_disk_with_room_says_what_torch_said(tmp_path, monkeypatch):
    def save(obj, f):
        Path(f).write_bytes(b"part")
        raise RuntimeError(TORCH_FULL_DISK)

    monkeypatch.setattr(torch, "save", save)
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(UserError) as error, atomic_path(path, "checkpoint") as tmp:
        torch.save({}, tmp)
    assert str(error.value) == f"cannot write checkpoint '{path}': the write failed (unexpected pos 46592 vs 46480)"
    assert list(tmp_path.iterdir()) == []


def test_a_write_failing_with_enospc_says_no_space(tmp_path):
    path = tmp_path / "v.txt"
    with pytest.raises(UserError) as error, atomic_path(path, "vectors file") as tmp:
        tmp.write_text("part")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(error.value) == f"cannot write vectors file '{path}': no space left on device"
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- killed runs' temporaries


def test_a_run_removes_the_temporaries_of_killed_runs_and_keeps_live_ones(tmp_path, capsys):
    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, sentences=100)
    out = tmp_path / "run"
    out.mkdir()
    live = os.getppid()  # a running process, not this one
    stale = [f".vectors.txt.tmp-{DEAD_PID}", f".checkpoint.pt.tmp-{DEAD_PID}", f".ids-{DEAD_PID}-x1.bin",
             f".stdin-{DEAD_PID}-x2.txt"]
    kept = [f".vectors.txt.tmp-{live}", f".ids-{live}-x3.bin", ".vectors.txt.tmp-abc", "notes.tmp-1"]
    for name in stale + kept:
        (out / name).write_bytes(b"partial")
    code, err = run_main(capsys, ["train", corpus, "-o", out, "--dim", "8", *TRAIN_OPTS])
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir() if p.name in stale + kept) == sorted(kept)
    assert (out / "vectors.txt").exists()


def test_remove_stale_temporaries_takes_files_of_dead_processes_only(tmp_path):
    (tmp_path / f".vectors.txt.tmp-{DEAD_PID}").write_text("")
    (tmp_path / f".vectors.txt.tmp-{os.getpid()}").write_text("")
    (tmp_path / f".dir.tmp-{DEAD_PID}").mkdir()  # not a file we write: left alone
    (tmp_path / f"vectors.txt.tmp-{DEAD_PID}").write_text("")  # not hidden: not ours
    removed = remove_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [f".vectors.txt.tmp-{DEAD_PID}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".vectors.txt.tmp-{os.getpid()}", f".dir.tmp-{DEAD_PID}", f"vectors.txt.tmp-{DEAD_PID}"])
    assert remove_stale_temporaries(tmp_path / "missing") == []


# --------------------------------------------------------------------------- headers claiming too much


def binary_entry(word: str, values) -> bytes:
    return word.encode() + b" " + np.asarray(values, dtype="<f4").tobytes() + b"\n"


ABSURD = [  # (file content, binary, what the error line says)
    (b"100000000000 2\na 1 2\nb 3 4\n", False,
     "has 2 rows but its header says 100000000000 (its 12 bytes after the header hold at most 2 rows of 2 values)"),
    (b"1 1000000000\na 1 2\n", False, "line 2: expected 1000000000 values, found 2"),
    (b"100000000000 1000000000\na 1 2\n", False, "line 2: expected 1000000000 values, found 2"),
    (b"100000000000 2\n" + binary_entry("a", [1, 2]) + binary_entry("b", [3, 4]), True,
     "(binary) ends after 2 of the 100000000000 words its header says "
     "(its 22 bytes after the header hold at most 2 words of 2 values)"),
    (b"1 1000000000\n" + binary_entry("a", [1, 2]), True,
     "(binary) ends after 0 of the 1 words its header says (its 11 bytes after the header hold at most 0 words "
     "of 1000000000 values)"),
    (b"100000000000 1000000000\n" + binary_entry("a", [1, 2]), True, "(binary) ends after 0 of the 100000000000"),
    (b"1 100000000000000000000\na 1\n", False, "line 1: expected a header 'COUNT DIM'"),
]
ABSURD_IDS = ["text-count", "text-dim", "text-both", "binary-count", "binary-dim", "binary-both", "dim-over-int64"]


@pytest.mark.parametrize("content, binary, message", ABSURD, ids=ABSURD_IDS)
def test_a_header_claiming_more_than_the_file_holds_is_a_user_error(tmp_path, content, binary, message):
    path = tmp_path / "absurd.vec"
    path.write_bytes(content)
    for flag in (binary, None):
        with pytest.raises(UserError) as error:
            load_word2vec(path, binary=flag)
        assert str(error.value).startswith(f"vectors file '{path}'")
        assert message in str(error.value)


@pytest.mark.parametrize("content, binary, message", ABSURD, ids=ABSURD_IDS)
def test_neighbors_of_a_file_with_an_absurd_header_is_one_error_line(tmp_path, capsys, content, binary, message):
    path = tmp_path / "absurd.vec"
    path.write_bytes(content)
    code, err = run_main(capsys, ["neighbors", path, "a"])
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"error: vectors file '{path}'") and message in err[0], err


def test_vectors_read_from_a_pipe_are_checked_too(tmp_path):
    fifo = tmp_path / "pipe.vec"
    os.mkfifo(fifo)
    content = b"100000000000 2\na 1 2\n"
    writer = subprocess.Popen(["sh", "-c", f"cat > '{fifo}'"], stdin=subprocess.PIPE)
    writer.stdin.write(content)
    writer.stdin.close()
    with pytest.raises(UserError, match="has 1 rows but its header says 100000000000"):
        load_word2vec(fifo)
    writer.wait(timeout=10)
