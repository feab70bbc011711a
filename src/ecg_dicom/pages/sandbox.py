"""Pages read in a child process: a hard time limit and a memory budget per object.

Decoding and rendering are where a hostile object costs (a JPEG that expands to
gigabytes, a PDF page miles tall, a decoder stuck in a loop), and a Python
thread can be neither stopped nor capped.  So the page of an object is read
(loaded and decoded or rendered: :func:`ecg_dicom.pages.page_from_file`, or
:func:`read_received` + :func:`page_from_dataset` for a received instance) in a
child process that:

* lives on: one child per caller at a time (a worker thread, an upload),
  borrowed from a pool and given back, so an object costs a round trip (the
  path out, the page back), not a process start;
* has ``RLIMIT_AS`` = ``limits.worker_memory_mb``: an allocation over it fails
  (MemoryError, or a decoder that dies) and the object fails with the limit
  named, while the service's own memory is untouched;
* is killed when it takes longer than ``limits.stage_timeout``: the object
  fails with that reason, the caller goes on, and the next read starts a
  fresh child.

A child is a fresh interpreter (:func:`child_main`, its pipes passed as two file
descriptors): fork from a threaded process is unsafe,
and multiprocessing's spawn and forkserver re-run the caller's main script in
the child.  It costs an interpreter start and the readers' imports (about a
second) when it starts: once per caller, and again only after a kill.

What is wrong with the object comes back as the
:class:`~ecg_dicom.errors.InputError` the reader raised (same class, same
message); a :class:`~ecg_dicom.errors.NotInterpretableError` with its reason,
header and page; an unexpected exception (a bug) as :class:`PageReaderError`
with the child's traceback, which the worker retries and logs like any bug.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import traceback
import warnings
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from PIL import Image

from ecg_dicom.config import LimitsSettings
from ecg_dicom.errors import (
    InputError,
    LimitError,
    NotAnEcgError,
    NotInterpretableError,
    UnsupportedInputError,
)
from ecg_dicom.pages.dispatch import page_from_dataset, page_from_file, read_received
from ecg_dicom.records import Page

#: InputError classes a child may answer, by name (re-raised as themselves).
_INPUT_ERRORS: dict[str, type[InputError]] = {
    cls.__name__: cls for cls in (InputError, UnsupportedInputError, NotAnEcgError, LimitError)
}


#: What the child runs (``python -c``; ``-m`` would import this module twice).
_CHILD_MAIN = "import sys; from ecg_dicom.pages.sandbox import child_main; child_main(sys.argv[1:])"


#: Seconds a child may take to start (not counted in limits.stage_timeout).
_START_TIMEOUT = 120.0


class PageReaderError(RuntimeError):
    """The child raised something unexpected (a bug): its traceback in the message."""


def _budget_message(limits: LimitsSettings) -> str:
    budget = limits.worker_memory_mb
    return f"over limits.worker_memory_mb ({budget} MB): reading the page needs more memory"


def _read(kind: str, path: Path, limits: LimitsSettings) -> tuple[Any, ...]:
    """One request, in the child: the answer as plain picklable values."""
    try:
        if kind == "received":
            page = page_from_dataset(read_received(path), limits)
        else:
            page = page_from_file(path, limits)
        return ("page", page)
    except NotInterpretableError as exc:
        return ("not_interpretable", exc.reason, exc.header, exc.page)
    except InputError as exc:
        name = type(exc).__name__
        return ("input_error", name if name in _INPUT_ERRORS else "InputError", str(exc))
    except MemoryError:
        return ("input_error", "LimitError", _budget_message(limits))
    except Exception:
        return ("bug", traceback.format_exc())


def _peak_rss_kb() -> int:
    """This process's peak resident memory (VmHWM), in KiB.  Not ``ru_maxrss``: Linux
    carries that across exec, so a child would report the parent's size at fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _serve(requests: Connection, answers: Connection, limits: LimitsSettings) -> None:
    """The child's loop: say it is ready, then read what is asked until the parent
    closes the pipe."""
    budget = limits.worker_memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (budget, budget))
    # Pillow (pydicom's JPEG plug-in included) refuses a stream over the limit itself.
    Image.MAX_IMAGE_PIXELS = max(1, limits.max_pixels // 2)
    warnings.simplefilter("ignore")  # nobody reads the child's stderr; errors come back
    answers.send("ready")
    while True:
        try:
            kind, path = requests.recv()
        except (EOFError, OSError):
            return
        answer = _read(kind, Path(path), limits)
        peak = _peak_rss_kb()
        try:
            answers.send((*answer, peak))
        except MemoryError:
            answers.send(("input_error", "LimitError", _budget_message(limits), peak))


class _Child:
    """One child process and our ends of its two pipes."""

    def __init__(self, limits: LimitsSettings) -> None:
        to_child, from_us = os.pipe()
        to_us, from_child = os.pipe()
        try:
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-c", _CHILD_MAIN, str(to_child), str(from_child),
                 json.dumps(limits.model_dump())],
                pass_fds=(to_child, from_child), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, close_fds=True,
            )
        except BaseException:
            for fd in (to_child, from_us, to_us, from_child):
                os.close(fd)
            raise
        os.close(to_child)
        os.close(from_child)
        self.sender = Connection(from_us, readable=False)
        self.conn = Connection(to_us, writable=False)
        # Starting (an interpreter, the readers' imports) is not the object's time.
        try:
            ready = self.conn.poll(_START_TIMEOUT) and self.conn.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise PageReaderError(
                f"the page reader did not start within {_START_TIMEOUT:g} s "
                f"(exit {self.exitcode()})"
            )

    def ask(self, request: tuple[str, str], timeout: float) -> tuple[Any, ...]:
        """Send a request and wait for the answer, at most ``timeout`` seconds.
        Raises TimeoutError, or EOFError/OSError when the child died."""
        self.sender.send(request)
        if not self.conn.poll(timeout):
            raise TimeoutError
        answer: tuple[Any, ...] = self.conn.recv()
        return answer

    def alive(self) -> bool:
        return self.process.poll() is None

    def exitcode(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self.sender.close()
        self.conn.close()


class PageReader:
    """A pool of page-reading children under ``limits``; safe for concurrent callers."""

    def __init__(self, limits: LimitsSettings) -> None:
        self.limits = limits
        self._idle: list[_Child] = []
        self._lock = threading.Lock()
        #: Peak resident memory (kB) of the child that answered last (for tests, benchmarks).
        self.last_peak_rss_kb = 0
        # A reader dropped without close() (and at exit) still stops its children.
        weakref.finalize(self, _kill_all, self._idle)

    def page(self, path: Path, *, received: bool = False) -> Page:
        """The page of ``path``: a received instance (DICOM, ``received``) or any
        accepted file (DICOM, PNG/JPEG, PDF).  Raises what the reader raised, or
        :class:`LimitError` for a read over the time limit or the memory budget."""
        request = ("received" if received else "file", str(path))
        child = self._take()
        try:
            answer = child.ask(request, self.limits.stage_timeout)
        except TimeoutError:
            child.kill()
            raise LimitError(
                f"over limits.stage_timeout ({self.limits.stage_timeout:g} s): reading the "
                "page was stopped"
            ) from None
        except (EOFError, OSError):
            child.kill()
            code = child.exitcode()
            raise LimitError(
                f"the page reader died reading the object (exit {code}): a decoder crashed, "
                f"or {_budget_message(self.limits)}"
            ) from None
        except BaseException:
            child.kill()
            raise
        with self._lock:
            self._idle.append(child)
        self.last_peak_rss_kb = int(answer[-1])
        return _answer(answer[:-1])

    def _take(self) -> _Child:
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.alive():
                    return child
                child.kill()
        return _Child(self.limits)

    def close(self) -> None:
        """Stop the idle children (those in use stop when their reads end)."""
        with self._lock:
            children = list(self._idle)
            self._idle.clear()
        _kill_all(children)


def _kill_all(children: list[_Child]) -> None:
    while children:
        children.pop().kill()


def _answer(answer: tuple[Any, ...]) -> Page:
    kind = answer[0]
    if kind == "page":
        page: Page = answer[1]
        return page
    if kind == "not_interpretable":
        raise NotInterpretableError(answer[1], header=answer[2], page=answer[3])
    if kind == "input_error":
        raise _INPUT_ERRORS[answer[1]](answer[2])
    raise PageReaderError(f"the page reader failed unexpectedly:\n{answer[1]}")


def child_main(argv: list[str]) -> None:
    """The child's entry point: ``argv`` = [requests fd, answers fd, limits as JSON]."""
    _serve(
        Connection(int(argv[0]), writable=False), Connection(int(argv[1]), readable=False),
        LimitsSettings(**json.loads(argv[2])),
    )
