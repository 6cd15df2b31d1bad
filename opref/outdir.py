"""Output directories that never lose a run (issue 22, guarantee 3): the one way every opref
command (``validate``, ``report``, ``fuzz``, ``generate``, scripts/conformance) writes its
``--out``.

- :func:`check` looks before anything is written: ``out`` must be absent, an empty directory,
  or a directory the same opref command wrote (its :data:`MARKER` file names the command; a
  suite passes a test of its own instead); anything else (a suite, someone's results, another
  command's output, a checkout) is refused, never cleaned. The current directory and its
  parents are refused too.
- :func:`staged` takes the lock (``fcntl.flock`` on ``.<name>.opref-lock`` beside ``out``; a
  second run on the same ``out`` is refused while the first holds it), checks again, and yields a
  staging directory beside ``out`` (``.<name>.opref-staging-<pid>``). When the block ends normally
  the staging directory replaces ``out`` whole (two renames; a run killed between them is put
  right by the next one); when it raises, the staging directory is removed and ``out`` stays as
  it was. A command that wants an interrupted run's partial results (validate) catches the
  interrupt inside the block, marks them incomplete and lets the block end normally.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from opref.version import __version__

MARKER = ".opref-output"


class OutputError(ValueError):
    """``--out`` cannot be written (refused, or held by another run): a usage error."""


def written_by(path: Path) -> str | None:
    """The opref command whose output ``path`` is (from its marker), or None."""
    marker = path / MARKER
    try:
        if marker.is_symlink() or not marker.is_file() or marker.stat().st_size > 4096:
            return None
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("written_by") != "opref":
        return None
    return data.get("command") if isinstance(data.get("command"), str) else None


def _own(command: str) -> Callable[[Path], bool]:
    # The same command's output only: `opref report r --out r` must not replace validate's results.
    return lambda path: written_by(path) == command


def _shown(entries: list[str]) -> str:
    return ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")


def check(out: str | os.PathLike, command: str, own: Callable[[Path], bool] | None = None) -> Path:
    """``out`` as an absolute path if ``command`` may replace it (absent, empty, or holding the
    marker of that command's output; ``own`` replaces that last test); OutputError says why not.

    Reads only: nothing is created, moved or deleted."""
    own = own or _own(command)
    out = Path(os.path.abspath(out))
    here = Path(os.path.abspath(os.getcwd()))
    if out == here or out in here.parents:
        raise OutputError(f"--out {out}: is the current directory or holds it; choose another directory")
    if out.is_symlink():
        raise OutputError(f"--out {out}: is a symbolic link; name the directory itself")
    if not out.exists():
        return out
    if not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a directory")
    try:
        entries = sorted(e.name for e in out.iterdir())
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot be read ({exc.strerror or exc})") from None
    if entries and not own(out):
        other = written_by(out)
        if other is not None:
            raise OutputError(
                f"--out {out}: holds the output of opref {other}, not of opref {command}; choose "
                "another directory"
            )
        raise OutputError(
            f"--out {out}: holds files opref did not write ({_shown(entries)}); opref replaces only "
            "directories it wrote itself: choose an empty or new directory"
        )
    return out


def _lock(out: Path) -> int:
    """The lock file's descriptor, locked; OutputError when another run holds it."""
    path = out.parent / f".{out.name}.opref-lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise OutputError(
                    f"--out {out}: another opref run is writing it (it holds {path}); wait for it to "
                    "finish or choose another directory"
                ) from None
            raise
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the file as we opened it: lock the one there now


def _unlock(out: Path, fd: int) -> None:
    # Removed while still held, so that a run that opened it meanwhile notices and locks anew.
    with contextlib.suppress(OSError):
        os.unlink(out.parent / f".{out.name}.opref-lock")
    os.close(fd)


def _recover(out: Path) -> None:
    """Under the lock: put right what a killed run left (its staging directory, or ``out``
    moved aside between the two renames of the swap)."""
    for old in sorted(out.parent.glob(f".{out.name}.opref-old-*")):
        if not out.exists():
            old.rename(out)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for stale in sorted(out.parent.glob(f".{out.name}.opref-staging-*")):
        shutil.rmtree(stale, ignore_errors=True)


def _swap(staging: Path, out: Path) -> None:
    old = out.parent / f".{out.name}.opref-old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the block like Ctrl-C (KeyboardInterrupt), so that it ends through the
    same path: partial results kept where the command catches it, staging removed where not."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


@contextlib.contextmanager
def staged(
    out: str | os.PathLike,
    command: str,
    own: Callable[[Path], bool] | None = None,
    marker: bool = True,
) -> Iterator[Path]:
    """Lock ``out``, yield a fresh staging directory beside it, and swap it in when the block
    ends normally (see the module's docstring). ``marker=False`` for a suite, which must hold
    ONNX's layout and nothing else; its ``own`` test recognises it instead."""
    out = check(out, command, own)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = _lock(out)
    try:
        _recover(out)
        check(out, command, own)  # again, under the lock: what the first look saw may have changed
        staging = out.parent / f".{out.name}.opref-staging-{os.getpid()}"
        staging.mkdir()
        try:
            if marker:
                note = {"written_by": "opref", "command": command, "opref_version": __version__}
                (staging / MARKER).write_text(json.dumps(note, sort_keys=True) + "\n", encoding="utf-8")
            with _sigterm_as_interrupt():
                yield staging
            _swap(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    finally:
        _unlock(out, fd)
