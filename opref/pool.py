"""Worker processes: start with a deadline, send a case, wait with a deadline, end them whole.

Each runtime gets ``jobs`` workers, each a fresh interpreter (``python -m opref.worker``) in a
session of its own, with only its two pipes inherited. Every wait has a deadline: start-up (the
adapter's factory and ``info()``), each case, each send. A worker that dies is ``crashed`` even
when a child it forked still holds its pipe open; stopping a worker kills its whole process
group, so nothing it started outlives the run. A worker that answers garbage, or an output far
larger than the case's, gets an ``error`` for that case and is replaced.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from opref import limits, reaper
from opref.boundary import text
from opref.protocol import (
    MAX_HEADER_BYTES,
    STOP,
    Channel,
    Closed,
    Deadline,
    Hello,
    ProtocolError,
    ReplyHeader,
    Request,
    load_header,
)
from opref.runtimes import RuntimeInfo, split_interpreter, strip_ansi
from opref.verdicts import Verdict

DEFAULT_TIMEOUT = 60.0
DEFAULT_START_TIMEOUT = 120.0

# What a crash record keeps of the worker's stderr: the first lines that read like the reason
# (a panic's message comes before its long backtrace), and the last lines.
_REASON = re.compile(r"panic|assert|error|abort|fatal|exception|segmentation|not yet implemented", re.I)
_HEAD_BYTES, _TAIL_BYTES, _LINE = 64 * 2**10, 8 * 2**10, 300


def exit_reason(code: int | None) -> str:
    if code is None:
        return "worker stopped answering"
    if code < 0:
        try:
            return f"worker killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"worker killed by signal {-code}"
    return f"worker exited with code {code}"


def worker_path(interpreter: str | None) -> str:
    """PYTHONPATH for a worker: this interpreter's whole sys.path, or for another environment's
    interpreter only opref's own root and the entries outside this environment (never our
    site-packages, so that it imports its own onnxruntime)."""
    root = str(Path(__file__).resolve().parent.parent)
    if interpreter is None:
        entries = [p or os.getcwd() for p in sys.path]
    else:
        prefixes = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
        entries = [root] + [
            p
            for p in sys.path
            if p and "-packages" not in p and not any(str(Path(p).resolve()).startswith(x) for x in prefixes)
        ]
    return os.pathsep.join(dict.fromkeys([root, *entries]))


class StderrBuffer:
    """A worker's stderr, read from its pipe by a thread of its own and kept bounded: the first
    ``_HEAD_BYTES`` and the last ``_TAIL_BYTES`` since the last ``mark`` (a case's start), never
    more, whatever the runtime writes."""

    def __init__(self, fd: int):
        self._fd, self._lock = fd, threading.Lock()
        self._head, self._tail, self.total = bytearray(), bytearray(), 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while chunk := os.read(self._fd, 2**16):
                self.add(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.close(self._fd)

    def add(self, chunk: bytes) -> None:
        with self._lock:
            self.total += len(chunk)
            room = _HEAD_BYTES - len(self._head)
            if room > 0:
                self._head += chunk[:room]
            self._tail += chunk[-_TAIL_BYTES:]
            del self._tail[:-_TAIL_BYTES]

    def mark(self) -> None:
        with self._lock:
            self._head.clear()
            self._tail.clear()

    def held(self) -> int:
        with self._lock:
            return len(self._head) + len(self._tail)

    def excerpt(self, settle: float = 0.0) -> str:
        """The reason-like lines near the start of what was written since the mark, then its
        last lines; ``settle``: seconds to wait for the reader to see the end of the pipe."""
        if settle:
            self._reader.join(settle)
        with self._lock:
            head, tail = bytes(self._head), bytes(self._tail)
        return stderr_excerpt(head, tail)


def stderr_excerpt(head: bytes, tail: bytes) -> str:
    """A crash record's stderr: the first reason-like lines of ``head``, then ``tail``'s last lines."""
    # A crashing runtime writes what it likes: plain text of it, as at every other boundary.
    head_text = text(head, "a worker's stderr", cap=len(head) + 1)
    tail_text = text(tail, "a worker's stderr", cap=len(tail) + 1)
    clean = [ln.strip()[:_LINE] for ln in tail_text.splitlines() if ln.strip()]
    reasons = [ln.strip()[:_LINE] for ln in head_text.splitlines() if _REASON.search(ln)][:3]
    last = [ln for ln in clean[-3:] if ln not in reasons]
    parts = reasons + (["..."] if reasons and last else []) + last
    return (": " + " | ".join(parts)) if parts else ""


@dataclass(frozen=True)
class Answer:
    """What came back for one case: a validated reply (and its output), or how the worker failed."""

    header: ReplyHeader | None
    output: np.ndarray | None
    failure: Verdict | None  # CRASHED, TIMEOUT, or ERROR (an answer that is no answer)
    detail: str
    seconds: float


class Worker:
    """One worker process serving one runtime, one case at a time."""

    def __init__(self, spec: str, process: subprocess.Popen, channel: Channel, log):
        self.spec, self.process, self.channel, self.log = spec, process, channel, log
        self._stopped = threading.Lock()

    @classmethod
    def start(cls, spec: str, timeout: float) -> tuple[Worker | None, RuntimeInfo]:
        """A started worker and the runtime's info; (None, unavailable info) if it did not start."""
        interpreter = split_interpreter(spec)[1]
        python = interpreter or sys.executable
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            with reaper.launching():
                process = subprocess.Popen(
                    [python, "-m", "opref.worker", spec, str(to_child_r), str(from_child_w)],
                    pass_fds=(to_child_r, from_child_w),
                    env={**os.environ, "PYTHONPATH": worker_path(interpreter)},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err_w,
                    close_fds=True,
                    start_new_session=True,
                )
                reaper.started(process.pid)
        except OSError as exc:
            process, why = None, f"cannot start {python}: {exc}"
        for fd in (to_child_r, from_child_w, err_w):
            os.close(fd)
        if process is None:
            for fd in (to_child_w, from_child_r, err_r):
                os.close(fd)
            return None, RuntimeInfo(spec, spec, "", False, why)
        log = StderrBuffer(err_r)
        os.set_blocking(to_child_w, False)
        worker = cls(spec, process, Channel(from_child_r, to_child_w), log)
        try:
            hello = Hello.from_wire(
                load_header(worker.channel.recv(time.monotonic() + timeout, MAX_HEADER_BYTES, worker.alive))
            )
        except Deadline:
            worker.stop()
            why = f"the worker did not report within {timeout:g} s (the adapter hung starting up)"
            return None, RuntimeInfo(spec, spec, "", False, why)
        except (Closed, ProtocolError, OSError) as exc:
            worker.stop()
            why = "the worker did not start: " + (
                str(exc) if isinstance(exc, ProtocolError) else exit_reason(process.returncode)
            )
            return None, RuntimeInfo(spec, spec, "", False, why + log.excerpt(settle=1.0))
        except BaseException:  # Ctrl-C during the handshake: the worker must not outlive us
            worker.stop(graceful=False)
            raise
        reason = strip_ansi(hello.reason)
        info = RuntimeInfo(spec, hello.name, hello.version, hello.available, reason, hello.details)
        if not hello.available:
            worker.stop()
            return None, info
        return worker, info

    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, request: Request, timeout: float, output_limit: int) -> Answer:
        """Send one case and wait for its answer; a failed answer leaves the worker unusable."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        self.log.mark()
        try:
            self.channel.send(request.frames(), deadline, self.alive)
            header = ReplyHeader.from_wire(
                load_header(self.channel.recv(deadline, MAX_HEADER_BYTES, self.alive)), request.case
            )
            output = None
            if header.output is not None:
                size = header.output.nbytes
                if size > output_limit:
                    return Answer(
                        header,
                        None,
                        Verdict.ERROR,
                        f"answered an output of shape {list(header.output.shape)} ({size} bytes), over "
                        f"the {output_limit}-byte limit for this case; not read",
                        time.monotonic() - t0,
                    )
                output = header.output.decode(self.channel.recv(deadline, size, self.alive))
        except Deadline:
            return Answer(
                None, None, Verdict.TIMEOUT, f"no answer within {timeout:g} s", time.monotonic() - t0
            )
        except Closed:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
            why = exit_reason(self.process.returncode) + self.log.excerpt(settle=1.0)
            return Answer(None, None, Verdict.CRASHED, why, time.monotonic() - t0)
        except (ProtocolError, OSError) as exc:
            why = f"the worker's answer is malformed: {exc}"
            return Answer(None, None, Verdict.ERROR, why, time.monotonic() - t0)
        except Exception as exc:  # anything else a reply makes decoding raise (RecursionError, ...)
            why = f"the worker's answer is malformed: decoding it raised {type(exc).__name__}: {exc}"
            return Answer(None, None, Verdict.ERROR, why[:1000], time.monotonic() - t0)
        return Answer(header, output, None, "", time.monotonic() - t0)

    def stop(self, graceful: bool = True) -> None:
        """Ask the worker to stop (``graceful``), then end its whole process group; close
        everything (once)."""
        if not self._stopped.acquire(blocking=False):
            return
        if graceful and self.process.poll() is None:
            with contextlib.suppress(Closed, Deadline, OSError, subprocess.TimeoutExpired):
                self.channel.send([STOP], time.monotonic() + 2, self.alive)
                self.process.wait(2)
        if self.process.poll() is None:
            # Frozen, its descendants stay under it (it is their subreaper) while they are ended.
            with contextlib.suppress(OSError):
                os.kill(self.process.pid, signal.SIGSTOP)
            reaper.end_descendants(self.process.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the worker's children too
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        reaper.stopped(self.process.pid)
        self.channel.close()


T = TypeVar("T")


def _lost(why: str) -> Answer:
    return Answer(None, None, Verdict.ERROR, why[:1000], 0.0)


@dataclass(frozen=True)
class Job(Generic[T]):
    """One case to run: the caller's item, and the request (or why there is none)."""

    item: T
    request: Request | None
    output_limit: int = 0
    problem: str = ""


class Pool:
    """``jobs`` workers for one runtime, fed from one sequence of jobs, answers in finishing order.

    ``run`` reads each job lazily (``prepare`` is called by the worker thread that will send it),
    so no more than about ``2 * jobs`` cases are held in memory at once.
    """

    def __init__(
        self,
        spec: str,
        *,
        jobs: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
        start_timeout: float = DEFAULT_START_TIMEOUT,
    ):
        self.spec, self.jobs = spec, limits.count("jobs", jobs, 1, limits.MAX_JOBS)
        self.timeout = limits.seconds("timeout", timeout)
        self.start_timeout = limits.seconds("start_timeout", start_timeout)
        self._workers: list[Worker] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.info: RuntimeInfo | None = None
        self._first: Worker | None = None

    def open(self) -> RuntimeInfo:
        """Start the first worker; its info says whether the runtime can run here."""
        self._first, self.info = Worker.start(self.spec, self.start_timeout)
        if self._first is not None:
            self._workers.append(self._first)
        return self.info

    def _start(self) -> tuple[Worker | None, str]:
        worker, info = Worker.start(self.spec, self.start_timeout)
        if worker is None:
            return None, info.reason
        with self._lock:
            if self._stop.is_set():
                worker.stop()
                return None, "stopped"
            self._workers.append(worker)
        return worker, ""

    def _retire(self, worker: Worker, graceful: bool = True) -> None:
        with self._lock:
            if worker in self._workers:
                self._workers.remove(worker)
        worker.stop(graceful)

    def run(
        self, items: Iterable[T], prepare: Callable[[T], Job[T]]
    ) -> Iterator[tuple[T, Job[T] | None, Answer | None]]:
        """Yield (item, job, answer) exactly once per item, whatever happens to the slot that ran it.

        ``answer`` is None when the job has a problem (nothing ran). ``job`` is None when opref
        itself lost the item (its slot thread died, or no slot was left to take it); ``answer``
        then says why. The parent keeps the account: every item a slot takes is held in
        ``handed`` until its answer is queued, and what a dead slot held, or what no slot took,
        is yielded with the reason. Stopping early (``close`` or the caller leaving) yields no more.
        """
        source = iter(items)
        results: queue.Queue = queue.Queue(maxsize=self.jobs)
        broken: list[str] = []  # why no worker can be started any more
        handed: dict[int, T] = {}  # slot -> the item it took and has not answered yet
        exhausted = threading.Event()
        done = object()

        def next_item(i: int):
            with self._lock:
                item = next(source, done)
                if item is done:
                    exhausted.set()
                else:
                    handed[i] = item
                return item

        def answered(i: int, item: T, job: Job[T] | None, answer: Answer | None) -> None:
            with self._lock:
                handed.pop(i, None)
            results.put((item, job, answer))

        def run_one(item: T, worker: Worker | None) -> tuple[Job[T], Answer | None, Worker | None]:
            try:
                job = prepare(item)
            except Exception as exc:  # opref's own failure to read a case: that case's problem
                job = Job(item, None, problem=f"opref could not read the case: {type(exc).__name__}: {exc}")
            if job.request is None:
                return job, None, worker
            if worker is None and not broken:
                worker, why = self._start()
                if worker is None and why != "stopped":
                    broken.append(f"no worker could be started for {self.spec}: {why}")
            if worker is None:
                reason = broken[0] if broken else "stopped"
                return job, Answer(None, None, Verdict.ERROR, reason, 0.0), None
            answer = worker.call(job.request, self.timeout, job.output_limit)
            if answer.failure is not None:  # never reused: it may be hung, dead or out of step
                self._retire(worker, graceful=False)
                worker = None
            return job, answer, worker

        def slot(i: int, worker: Worker | None) -> None:
            ended = "it ended"
            try:
                while not self._stop.is_set():
                    item = next_item(i)
                    if item is done:
                        break
                    try:
                        job, answer, worker = run_one(item, worker)
                    except Exception as exc:  # opref's failure around this case: its record says so
                        if worker is not None:
                            self._retire(worker, graceful=False)
                            worker = None
                        why = f"opref failed while running it: {type(exc).__name__}: {exc}"
                        job, answer = None, _lost(why)
                    answered(i, item, job, answer)
                    del job, answer  # hold no case while waiting for the next one
            except BaseException as exc:
                ended = f"its slot thread died: {type(exc).__name__}: {exc}"  # said in the record
            finally:
                if worker is not None:
                    self._retire(worker)
                results.put((done, i, ended))

        first = self._first
        self._first = None
        threads = [
            threading.Thread(target=slot, args=(i, first if i == 0 else None), daemon=True)
            for i in range(self.jobs)
        ]
        for t in threads:
            t.start()
        running = len(threads)
        try:
            while running:
                got = results.get()
                if got[0] is done:
                    running -= 1
                    _, i, why = got
                    with self._lock:
                        lost = handed.pop(i, done)
                    if lost is not done:
                        yield lost, None, _lost(f"opref lost its answer: {why}")
                    continue
                yield got
                got = None
            while not self._stop.is_set() and not exhausted.is_set():  # every slot is gone
                item = next(source, done)
                if item is done:
                    break
                yield item, None, _lost("opref had no slot left to run it (every slot thread died)")
        finally:
            self.close()
            # Drain so that no slot stays blocked on a full queue, then wait for them.
            while any(t.is_alive() for t in threads):
                with contextlib.suppress(queue.Empty):
                    results.get(timeout=0.05)

    def close(self) -> None:
        """Stop every worker (and its process group) now."""
        self._stop.set()
        with self._lock:
            workers, self._workers = list(self._workers), []
        for w in workers:
            w.stop()


class CaseRunner:
    """One worker for one runtime, driven one case at a time (the pytest entry uses this)."""

    def __init__(
        self, spec: str, timeout: float = DEFAULT_TIMEOUT, start_timeout: float = DEFAULT_START_TIMEOUT
    ):
        self.spec, self.timeout = spec, limits.seconds("timeout", timeout)
        self.start_timeout = limits.seconds("start_timeout", start_timeout)
        self._worker, self.info = Worker.start(spec, start_timeout)

    def run(self, request: Request, output_limit: int) -> Answer:
        if self._worker is None:
            self._worker, info = Worker.start(self.spec, self.start_timeout)
            if self._worker is None:
                return Answer(None, None, Verdict.ERROR, f"no worker could be started: {info.reason}", 0.0)
        answer = self._worker.call(request, self.timeout, output_limit)
        if answer.failure is not None:
            self._worker.stop(graceful=False)
            self._worker = None
        return answer

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None


__all__ = ["DEFAULT_START_TIMEOUT", "DEFAULT_TIMEOUT", "Answer", "CaseRunner", "Job", "Pool", "Worker"]
