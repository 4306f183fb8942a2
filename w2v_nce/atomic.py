"""Write files so that a reader sees either nothing or the whole file, never half of one; and
sweep up the temporary files of processes killed while writing."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

from w2v_nce.errors import UserError

# What torch.save raises when writing its file fails (a full disk...): a RuntimeError without errno,
# e.g. "[enforce fail at inline_container.cc:672] . unexpected pos 46592 vs 46480" (the disk filled
# up; torch notices only at the end) or "PytorchStreamWriter failed writing file data/0: file write
# failed".
_TORCH_WRITE_FAILED = re.compile(r"inline_container\.cc|PytorchStreamWriter|file write failed|unexpected pos")
_TORCH_ENFORCE = re.compile(r"^\[enforce fail at [^\]]*\][\s.]*")
_FULL_BELOW = 1 << 20  # bytes free: a failed write into a file system with less than this found it full

# The temporary files a killed process leaves in a folder, each named with that process's id:
# atomic_path's ".NAME.tmp-PID", the encoded corpus ".ids-PID-*.bin", spooled standard input
# ".stdin-PID-*.txt" (tempfile.mkstemp adds random letters where the patterns have "*").
_TEMPORARY = re.compile(r"\.(?:.+\.tmp-(\d+)|ids-(\d+)-.*\.bin|stdin-(\d+)-.*\.txt)", re.DOTALL)


@contextlib.contextmanager
def atomic_path(path: Path | str, what: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success sync it and rename it onto `path`, on error
    delete it.

    A failed write (a full disk, no permission, a directory in the way, torch.save's own reports of
    a failed write) is one UserError: "cannot write [what ]'path': cause", e.g. "cannot write
    checkpoint 'run/checkpoint.pt': no space left on device". Other errors pass through.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    name = f"{what} '{path}'" if what else f"'{path}'"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        _sync(tmp)  # a write the file system failed late (NFS, delayed allocation) fails here
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write {name}: {_os_cause(exc, tmp.parent)}") from None
    except RuntimeError as exc:
        written = tmp.exists()  # before `finally` deletes it
        if _TORCH_WRITE_FAILED.search(str(exc)) or (written and _full(tmp.parent)):
            raise UserError(f"cannot write {name}: {_torch_cause(exc, tmp.parent)}") from None
        raise  # not a failed write: a defect, with its traceback
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _sync(tmp: Path) -> None:
    if tmp.is_file():
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _full(folder: Path) -> bool:
    """Whether the file system holding `folder` has (next to) no room left for us."""
    try:
        return shutil.disk_usage(folder).free < _FULL_BELOW
    except OSError:
        return False


_NO_SPACE = os.strerror(errno.ENOSPC).lower()  # "no space left on device"


def _os_cause(exc: OSError, folder: Path) -> str:
    """Why writing into `folder` failed, in lower case: "no space left on device", "is a directory"...

    >>> _os_cause(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), Path("."))
    'no space left on device'
    """
    if exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return _NO_SPACE if _full(folder) else str(exc) or type(exc).__name__


def _torch_cause(exc: RuntimeError, folder: Path) -> str:
    """Why torch.save failed, from its RuntimeError (which has no errno) and the free space.

    >>> failed = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 9 vs 7")
    >>> _torch_cause(failed, Path("/nonexistent"))
    'the write failed (unexpected pos 9 vs 7)'
    """
    if _full(folder):
        return _NO_SPACE
    return f"the write failed ({_TORCH_ENFORCE.sub('', str(exc)).strip()})"


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_stale_temporaries(folder: Path | str) -> list[Path]:
    """Delete the temporary files in `folder` whose process is gone (killed while writing): an
    unfinished atomic_path file ".NAME.tmp-PID", an encoded corpus ".ids-PID-*.bin", spooled
    standard input ".stdin-PID-*.txt". Those of running processes stay. Returns what it deleted.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in [".vectors.txt.tmp-999999999", f".vectors.txt.tmp-{os.getpid()}", "vectors.txt"]:
    ...     _ = (folder / name).write_text("")
    >>> [p.name for p in remove_stale_temporaries(folder)]
    ['.vectors.txt.tmp-999999999']
    >>> sorted(p.name for p in folder.iterdir()) == sorted([f".vectors.txt.tmp-{os.getpid()}", "vectors.txt"])
    True
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no such folder (yet), or unreadable: nothing of ours to clean
        return removed
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(next(group for group in match.groups() if group is not None))
        if not pid_alive(pid):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (on this machine, in this PID namespace).

    >>> pid_alive(os.getpid()), pid_alive(999999999)
    (True, False)
    """
    if pid <= 0:  # os.kill(0, ...) signals our own process group
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # someone else's process
        return True
    return True
