"""The writing side of a run folder: what only the worker that owns the run does.

events.jsonl is append-only, one JSON object per line, each written with a single `write` call (a line torn by a
crash stays alone on its line and readers skip it); log.txt is appended to; the worker lock (`acquire` /
`release`) makes sure one process owns the folder at a time. Readers use `core.runs.RunFolder`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from core.atomic import _clean, atomic_write_text
from core.errors import InputError
from core.runs import EVENT_KINDS, RunFolder, pid_alive


class RunWriter(RunFolder):
    """A run folder opened by the process that trains it."""

    def emit(self, kind: str, stage: str = "", **data: Any) -> dict:
        assert kind in EVENT_KINDS, kind
        event = {"time": round(time.time(), 3), "stage": stage, "kind": kind, **data}
        line = (json.dumps(_clean(event)) + "\n").encode("utf-8")
        with open(self.events_path, "ab+") as fh:
            if fh.seek(0, os.SEEK_END) > 0:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = b"\n" + line  # a line torn by a crash mid-write stays alone on its line
            fh.write(line)
        return event

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {message}\n")

    @property
    def lock_path(self) -> Path:
        return self.path / "worker.lock"

    def acquire(self) -> None:
        """Take the folder for this process, atomically: an exclusive `flock` on worker.lock, held until
        `release` or the process's end (the kernel drops it with the process, so a crash never leaves a lock
        that needs clearing); then worker.pid says who holds it. A live holder makes this an InputError.

        `padtui run --detach` writes the worker's pid before the worker starts, and `accelerate launch` runs the
        worker as a child of the pid it wrote: both only rewrite worker.pid with the holder's own pid."""
        import fcntl

        if getattr(self, "_lock_fd", None) is not None:
            return
        def refuse(pid: int | None) -> InputError:
            return InputError(
                f"{self.path}: this run is owned by a live worker (pid {pid or '?'}); a second worker on the same "
                f"folder is refused. Watch it with `padtui attach {self.path}`, or stop it"
                f"{f' (`kill {pid}`)' if pid else ''} and then `padtui resume {self.path}`."
            )

        fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise refuse(self.worker_pid()) from None
        # under the lock nobody else can be here: the pid check and the pid write cannot interleave
        owner = self.worker_pid()
        if owner is not None and owner not in (os.getpid(), os.getppid()):
            if pid_alive(owner):  # a worker that does not take the lock (an older padtui) still owns the run
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                raise refuse(owner)
            self.log(f"cleared a stale lock: worker pid {owner} is gone")
        self._lock_fd = fd
        atomic_write_text(self.pid_path, f"{os.getpid()}\n")

    def release(self) -> None:
        import fcntl

        fd = getattr(self, "_lock_fd", None)
        if fd is None:
            return
        if self.worker_pid() == os.getpid():
            self.pid_path.unlink(missing_ok=True)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        self._lock_fd = None
