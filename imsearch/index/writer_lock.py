"""One writer per data directory: an OS file lock held by the process that may write it.

Two processes writing one collection each keep their own in-memory index and snapshot it over
the other's, so acknowledged images silently drop out of the index. A writer therefore holds an
exclusive ``flock`` on ``<data_dir>/writer.lock`` for as long as it may write. The kernel
releases it when the process ends in any way (SIGKILL included): there is never a stale lock
to clean up. The file also names its holder (pid, command, host, and the URL of a server), so a
refused writer can say who holds it and ``imsearch index`` can send images through that
server's API instead.

Readers (replicas, ``stats``, ``query``) never take the lock. Inside one process the lock is
shared: the ``serve`` command takes it at start, and the store it opens later takes it again
(counted); it is released when the last holder lets go.

On network file systems ``flock`` is emulated with POSIX locks (Linux NFS v4): it still
excludes writers on other machines, and a crashed client's lock lapses with its lease.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from imsearch.errors import DataDirLocked

LOCK_FILE = "writer.lock"
#: A reader probing the lock holds it shared for an instant: a writer retries this long.
ACQUIRE_PATIENCE_S = 1.0

_process_command = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
_held: dict[Path, _Held] = {}
_registry_lock = threading.Lock()


@dataclass(frozen=True)
class Holder:
    """Who writes a data directory."""

    pid: int
    command: str
    host: str
    since: float
    #: Where the holder serves the public API, if it is a server.
    url: str | None = None

    @property
    def is_local(self) -> bool:
        return self.host == socket.gethostname()

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        where = "" if self.is_local else f" on host {self.host}"
        serving = f", serving {self.url}" if self.url else ""
        return f"process {self.pid} ({self.command}){where} since {started}{serving}"


@dataclass
class _Held:
    fd: int
    holder: Holder
    count: int = 1


def set_process_command(command: str) -> None:
    """Name this process in the lock file (``serve``, ``index`` …) instead of its argv[0]."""
    global _process_command
    _process_command = command


def lock_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / LOCK_FILE


class WriterLock:
    """This process's claim on a data directory; :meth:`release` once done with it."""

    def __init__(self, key: Path) -> None:
        self._key = key
        self._released = False

    @property
    def holder(self) -> Holder:
        return _held[self._key].holder

    def advertise(self, url: str) -> None:
        """Record where this process serves the API (read by ``imsearch index``)."""
        with _registry_lock:
            held = _held[self._key]
            held.holder = Holder(**{**asdict(held.holder), "url": url})
            _write_holder(held.fd, held.holder)

    def release(self) -> None:
        with _registry_lock:
            if self._released:
                return
            self._released = True
            held = _held[self._key]
            held.count -= 1
            if held.count == 0:
                del _held[self._key]
                # Closing the descriptor drops the flock. The file stays: removing it would let
                # a waiting process lock an unlinked inode while a third creates a new one.
                os.close(held.fd)


def acquire_writer(data_dir: str | Path) -> WriterLock:
    """Claim ``data_dir`` for writing, or raise :class:`DataDirLocked` naming its holder."""
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    key = directory.resolve()
    with _registry_lock:
        held = _held.get(key)
        if held is not None:
            held.count += 1
            return WriterLock(key)
        fd = os.open(lock_path(key), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _lock_exclusive(fd, directory)
        except BaseException:
            os.close(fd)
            raise
        holder = Holder(os.getpid(), _process_command, socket.gethostname(), time.time())
        _write_holder(fd, holder)
        _held[key] = _Held(fd, holder)
        return WriterLock(key)


def current_holder(data_dir: str | Path) -> Holder | None:
    """The process writing ``data_dir`` now, or None when nobody does."""
    path = lock_path(data_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _lock_exclusive(fd: int, directory: Path) -> None:
    deadline = time.monotonic() + ACQUIRE_PATIENCE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    holder = _read_holder(lock_path(directory))
    raise DataDirLocked(f"{directory} is written by {holder.describe()}; {_advice(holder)}")


def _advice(holder: Holder) -> str:
    if holder.url:
        return (
            f"one process writes a collection: add images through its API (POST "
            f"{holder.url}/v1/images, or `imsearch index`, which sends them there), or stop it"
        )
    return (
        "one process writes a collection: wait until it ends or stop it (a served collection "
        "takes new images through the public API, POST /v1/images)"
    )


def _write_holder(fd: int, holder: Holder) -> None:
    data = json.dumps(asdict(holder)).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _read_holder(path: Path) -> Holder:
    """The holder the lock file names; it may be mid-write for an instant, so retry."""
    for _ in range(20):
        try:
            return Holder(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            time.sleep(0.025)
    return Holder(0, "unknown", "unknown", time.time())
