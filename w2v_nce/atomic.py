"""Write files so that a reader sees either nothing or the whole file, never half of one."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Iterator

from w2v_nce.errors import UserError


@contextlib.contextmanager
def atomic_path(path: Path | str, what: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on error delete it.

    A failed write is one UserError: "cannot write [what ]'path': cause".

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
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, no permission, a directory in the way...
        raise UserError(f"cannot write {name}: {exc.strerror or exc}") from None
    except RuntimeError as exc:  # torch.save reports a failed write as a RuntimeError, without errno
        if "write" not in str(exc).lower():
            raise
        raise UserError(f"cannot write {name}: {_write_failure(path.parent)}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _write_failure(folder: Path) -> str:
    with contextlib.suppress(OSError):
        if shutil.disk_usage(folder).free < 1 << 20:
            return os.strerror(errno.ENOSPC).lower()
    return "the write failed"


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
