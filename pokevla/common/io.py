"""Atomic writes: a file is either absent or complete, never half-written.

Every result file, checkpoint and dataset file goes through these helpers: write to a temporary
name in the same directory, fsync, then `os.replace` (atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: setting it is process-wide, so not on every write


def share(path: str | os.PathLike) -> None:
    """Gives `path` the mode a plain `open` or `mkdir` would under the umask: temporary files (0600)
    and folders (0700), and some writers' outputs, are private, but results are meant to be shared."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    share(tmp)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Appends one JSON line and fsyncs it, so an interrupted job loses at most the line in flight.

    A torn last line (power loss, full disk) is cut off first, so the new record never fuses with
    it; the job that owned the torn line redoes that work on its rerun.
    """
    append_jsonl_many(path, [record])


def append_jsonl_many(path: str | os.PathLike, records: list[dict]) -> None:
    """`append_jsonl` for several records with one fsync (a batch of a finished unit of work)."""
    lines = "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # a first record may come before any other file
    with open(path, "ab+") as f:
        _cut_torn_tail(f)
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())


def _cut_torn_tail(f) -> None:
    """`f` open for appending and reading: truncates after its last newline if it does not end in one."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return
    pos, block = size, 4096
    while pos > 0:
        start = max(0, pos - block)
        f.seek(start)
        chunk = f.read(pos - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            f.truncate(start + newline + 1)
            return
        pos = start
    f.truncate(0)


def read_jsonl(path: str | os.PathLike, keys: tuple[str, ...] = ()) -> list[dict]:
    """Reads a JSON-lines file written by `append_jsonl`, dropping a torn last line. A damaged line
    elsewhere, or a record without one of `keys`, is a one-line `PokeVLAError` naming the file and line."""
    from pokevla.common.errors import PokeVLAError

    path = Path(path)
    if not path.exists():
        return []
    records = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # torn write of an interrupted job
            raise PokeVLAError(f"{path} line {i + 1} is not valid JSON; the journal is damaged: delete that line "
                               f"and rerun to redo its work") from None
        if not isinstance(record, dict):
            raise PokeVLAError(f"{path} line {i + 1} is not a JSON object; delete that line and rerun to redo its work")
        missing = [k for k in keys if k not in record]
        if missing:
            raise PokeVLAError(f"{path} line {i + 1} lacks {', '.join(missing)}; delete that line and rerun to redo its work")
        records.append(record)
    return records


def read_json(path: str | os.PathLike, error: type[Exception] | None = None) -> dict:
    """The one reader of the JSON files pokevla keeps (metadata, settings, statistics, each an object):
    a file that cannot be read, is not valid JSON or holds no object is a one-line `error` (default
    `PokeVLAError`) naming it."""
    from pokevla.common.errors import PokeVLAError

    error = error or PokeVLAError
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise error(f"cannot read {path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" ({e.msg} at line {e.lineno})" if isinstance(e, json.JSONDecodeError) else ""
        raise error(f"{path} is not valid JSON{where}; the file is damaged") from None
    if not isinstance(data, dict):
        raise error(f"{path} holds {_JSON_NAMES[type(data)]}, not an object; the file is damaged")
    return data


_JSON_NAMES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}


_held: dict[Path, int] = {}  # directory -> the open lock file this process holds


def hold_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """Takes `path/.lock` (an advisory `flock`) for the rest of this process, so a second pokevla
    process working in the same directory is refused at once instead of writing every record twice.
    Re-entrant within a process (a resumed run in the same process holds it already); the lock dies
    with the process, so a killed run never leaves a stale one. Taking it removes the half-written
    temporaries (`.NAME.*.tmp`, files or checkpoint folders) a killed run left anywhere below `path`."""
    import fcntl

    from pokevla.common.errors import PokeVLAError

    path = check_writable_dir(path).resolve()
    if path in _held:
        return path
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise PokeVLAError(f"{path} is in use by another pokevla process (pid {holder}); wait for it to finish "
                           f"or choose another {what}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[path] = fd
    # with the lock held nobody else writes here: temporaries of `atomic_path` are a killed run's
    for stale in sorted(path.rglob(".*.tmp")):  # files, and folders of a checkpoint being saved
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    return path


def check_writable_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Creates `path` if needed and checks that files can be written in it."""
    from pokevla.common.errors import PokeVLAError

    path = Path(path)
    new = next((p for p in reversed((path, *path.parents)) if not p.exists()), None)  # topmost folder to create
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise PokeVLAError(
            f"cannot write to output directory {path}: {e.strerror}; choose another {flag}"
        ) from None
    if new is not None:
        _created.append(new)
    return path


def check_writable_file(path: str | os.PathLike, flag: str) -> Path:
    """Checks before the work starts that the result file `path` can be written after it."""
    from pokevla.common.errors import PokeVLAError

    path = Path(path)
    if path.is_dir():
        raise PokeVLAError(f"{flag} {path} is a directory; name a file")
    check_writable_dir(path.parent, flag)
    return path


_created: list[Path] = []  # folders `check_writable_dir` made, oldest first


@contextlib.contextmanager
def removed_if_failed() -> Iterator[None]:
    """A command that fails with a `PokeVLAError` leaves no folder behind that it created and that
    holds nothing but empty folders and its locks (a rerun would find a folder it cannot explain)."""
    from pokevla.common.errors import PokeVLAError

    start = len(_created)
    try:
        yield
    except PokeVLAError:
        for top in reversed(_created[start:]):
            if top.is_dir() and all(p.is_dir() or p.name == ".lock" for p in top.rglob("*")):
                for held in [h for h in _held if h.is_relative_to(top.resolve())]:
                    os.close(_held.pop(held))
                shutil.rmtree(top)
        raise
    finally:
        del _created[start:]
