"""Where pynetdicom writes a data set as it arrives: the spool's ``tmp/``, safely.

With ``STORE_RECV_CHUNKED_DATASET`` pynetdicom writes each incoming C-STORE data
set to a file as its P-DATA arrive, in its DUL thread, before any handler runs
(``DIMSEMessage.decode_msg`` opens it with ``tempfile.NamedTemporaryFile``).  An
``OSError`` there (ENOSPC: the disk is full) escapes into pynetdicom's state
machine, which kills the DUL: the peer sees an aborted association, never a
C-STORE response.  And a transfer cut short leaves its partial file behind:
pynetdicom removes the file only after the C-STORE handler ran.

:class:`ReceivedFiles` replaces that ``NamedTemporaryFile`` (set once by
:func:`ecg_dicom.startup.configure_receiving`) with :class:`ReceivingFile`, which

* is not written at all when the spool is below ``storage.min_free_mb`` when the
  data set starts (the reserve is kept; the bytes are read and dropped);
* never raises into pynetdicom: a failed write (ENOSPC, EIO) removes the partial
  file and drops the rest of the data set;
* remembers why, so the C-STORE handler answers 0xA700 with the reason in Error
  Comment (:meth:`ReceivedFiles.refusal`) and the association goes on;
* is removed when its association ends before pynetdicom handed it over and
  closed it (``EVT_CONN_CLOSE``, ``EVT_ABORTED``; :meth:`ReceivedFiles.on_ended`).

A file still open when its association ends was never acknowledged: an
acknowledged instance was renamed into ``instances/`` before its Success was
sent, so removing the ``tmp/`` name can never touch it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ecg_dicom.jobs import Spool

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.scp")

#: Opens a new receive file for writing (tests give one that fails like a full disk).
Opener = Callable[[Path], IO[bytes]]


def _open_new(path: Path) -> IO[bytes]:
    return open(path, "xb")  # closed by ReceivingFile.close


class ReceivingFile:
    """One data set being received (the shape pynetdicom uses of a NamedTemporaryFile:
    ``name``, ``write``, ``file.flush`` and ``close``)."""

    def __init__(
        self, owner: ReceivedFiles, path: Path, fh: IO[bytes] | None, refusal: str | None
    ) -> None:
        self._owner = owner
        self._fh = fh
        self._lock = threading.Lock()
        #: The DUL thread of the association receiving it.
        self.thread = threading.current_thread()
        self.name = str(path)
        #: Why the data set was not kept (the C-STORE is answered 0xA700), or None.
        self.refusal = refusal

    @property
    def file(self) -> ReceivingFile:
        return self  # pynetdicom flushes ``ntf.file``

    def write(self, data: bytes) -> int:
        with self._lock:
            if self._fh is not None:
                try:
                    self._fh.write(data)
                except (OSError, ValueError) as exc:
                    self._drop(f"spool disk: {_reason(exc)} while receiving")
        return len(data)

    def flush(self) -> None:
        with self._lock:
            if self._fh is not None:
                try:
                    self._fh.flush()
                except (OSError, ValueError) as exc:
                    self._drop(f"spool disk: {_reason(exc)} while receiving")

    def close(self) -> None:
        """Called by pynetdicom after the C-STORE handler (which has adopted or deleted
        the file); the file is no longer ours to clean up."""
        with self._lock:
            self._close_fh()
        self._owner.forget(self)

    def discard(self, why: str) -> bool:
        """Remove the partial file (its transfer ended unfinished); True if one was there."""
        with self._lock:
            if self.refusal is None:
                self.refusal = why
            self._close_fh()
            return self._unlink()

    def _drop(self, why: str) -> None:
        # Logged once, by the C-STORE handler that answers 0xA700 with it.
        self.refusal = why
        self._close_fh()
        self._unlink()

    def _close_fh(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass  # a failed flush on close: the file is dropped or already handed over

    def _unlink(self) -> bool:
        try:
            Path(self.name).unlink()
            return True
        except OSError:
            return False  # never created, adopted (renamed) or already removed


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or "error"


class ReceivedFiles:
    """The receive files of one listener: made, looked up by the handler, cleaned up."""

    def __init__(self, spool: Spool, opener: Opener = _open_new) -> None:
        self.spool = spool
        self.opener = opener
        self._lock = threading.Lock()
        self._open: dict[str, ReceivingFile] = {}

    def open(self, *args: Any, **kwargs: Any) -> ReceivingFile:
        """pynetdicom's ``NamedTemporaryFile(delete=False, mode="wb", suffix=".dcm")``.

        Never raises: a spool below its reserve, or a file that cannot be created,
        gives a file that drops what is written and carries the reason.
        """
        self._sweep_dead()
        path = self.spool.tmp_dir / f"rcv-{uuid.uuid4().hex}.dcm"
        fh: IO[bytes] | None = None
        refusal: str | None = None
        try:
            self.spool.check_free_space()
            fh = self.opener(path)
        except Exception as exc:  # never raise into pynetdicom's DUL thread
            # Logged once, by the C-STORE handler that answers 0xA700 with it.
            refusal = f"spool disk: {_reason(exc)}" if isinstance(exc, OSError) else str(exc)
        received = ReceivingFile(self, path, fh, refusal)
        with self._lock:
            self._open[received.name] = received
        return received

    def forget(self, received: ReceivingFile) -> None:
        with self._lock:
            self._open.pop(received.name, None)

    def refusal(self, path: Path | str) -> str | None:
        """Why the data set at ``path`` was not kept (answer 0xA700), or None."""
        with self._lock:
            received = self._open.get(str(path))
        return received.refusal if received is not None else None

    def pending(self) -> list[str]:
        """The names of the receive files not yet handed over and closed."""
        with self._lock:
            return sorted(self._open)

    def discard(self, thread: threading.Thread | None, why: str) -> int:
        """Remove the unfinished files of the association whose DUL is ``thread``
        (and of DUL threads that died); the number of partial files removed."""
        with self._lock:
            ended = [
                f for f in self._open.values() if f.thread is thread or not f.thread.is_alive()
            ]
            for received in ended:
                del self._open[received.name]
        removed = sum(received.discard(why) for received in ended)
        if removed:
            log.info("removed %d partial transfer(s): %s", removed, why)
        return removed

    def _sweep_dead(self) -> None:
        self.discard(None, "its association ended")

    def on_ended(self, event: Any) -> None:
        """EVT_CONN_CLOSE / EVT_ABORTED handler (never raises into pynetdicom)."""
        try:
            why = "aborted" if event.event.name == "EVT_ABORTED" else "connection closed"
            self.discard(event.assoc.dul, f"association {why} during the transfer")
        except Exception:
            log.exception("could not remove partial transfers")
