"""Atomic replacement of generated files and folders: readers see the old or the new, whole.

The one home of how shiprisk writes anything a reader may pick up (simulated histories,
error reports, model files, the pinned tag, batch outputs, downloaded models): fill a hidden
``.<name>.partial-<pid>`` sibling, then rename it over the target. A killed writer leaves
only that hidden sibling, which the next writer of the same target removes.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO

PARTIAL_INFIX = ".partial-"


def partial_path(path: Path) -> Path:
    """The hidden temp sibling this process writes ``path`` through."""
    return path.with_name(f".{path.name}{PARTIAL_INFIX}{os.getpid()}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete temp siblings of ``path`` left by writers whose process is gone."""
    removed = []
    pattern = f".{glob.escape(path.name)}{PARTIAL_INFIX}*"
    for partial in path.parent.glob(pattern):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            _remove(partial)
            removed.append(partial)
    return removed


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Let ``write`` fill a temp path beside ``path`` (a file or a folder), then rename it
    over ``path``; on any error the temp is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    tmp = partial_path(path)
    try:
        write(tmp)
        if tmp.is_dir() and path.exists():
            _remove(path)  # a folder cannot be renamed over a non-empty one
        os.replace(tmp, path)
    finally:
        _remove(tmp)
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


class AtomicFile:
    """A binary file written in pieces (streamed batch output) and published on ``commit``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.path)
        self.tmp = partial_path(self.path)
        self.fh: IO[bytes] = self.tmp.open("wb")

    def commit(self) -> None:
        """Flush, fsync and rename over the target (durably)."""
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.path)
        fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Drop the temp file (never the target); safe to call twice."""
        self.fh.close()
        self.tmp.unlink(missing_ok=True)
