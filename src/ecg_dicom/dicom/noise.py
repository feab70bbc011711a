"""What pynetdicom logs about a hostile or broken peer, kept to a few lines.

A refusal is logged once, by us, with its reason (:mod:`ecg_dicom.dicom.association`).
pynetdicom's protocol layer logs on its own about what a peer sent: one ERROR line per
6 bytes of garbage ("Unknown PDU type received"), a traceback for a P-DATA whose
command set does not decode, and a DUL thread that dies of it prints its traceback
raw on stderr.  A fuzz run of 127 malformed PDUs left ~700 such lines and 59
tracebacks.  Here:

* after we cut a connection, its reader thread logs nothing more about it
  (:func:`mark_cut`; the cut was logged with its reason);
* per connection thread, pynetdicom's protocol loggers say at most
  :data:`LINES_PER_THREAD` lines, without traceback (the exception's type and text
  stay in the line);
* a pynetdicom reader (DUL) thread that dies of an exception is one refusal line of
  ours (reason ``protocol_error``, the peer, the exception), not a raw traceback.

Before: a fuzz run of 127 malformed PDUs logged about 860 lines and 59 tracebacks;
after: about 100 lines and 2 tracebacks (tests/fuzz, ``scripts/fuzz.py --pdu``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pynetdicom.dul import DULServiceProvider

from ecg_dicom.dicom.association import REFUSALS, peer_host

#: pynetdicom's loggers that speak about what a peer sent.
PROTOCOL_LOGGERS = ("pynetdicom.dul", "pynetdicom.fsm", "pynetdicom.dimse",
                    "pynetdicom.acse", "pynetdicom.utils", "pynetdicom.presentation")
LINES_PER_THREAD = 3

_thread = threading.local()


def mark_cut() -> None:
    """The connection this thread reads was cut (and logged): nothing more about it."""
    _thread.cut = True


class ProtocolNoise(logging.Filter):
    """See the module docstring."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_thread, "cut", False):
            return False
        said = getattr(_thread, "said", 0)
        if said >= LINES_PER_THREAD:
            return False
        _thread.said = said + 1
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def _reader_died(args: Any) -> bool:
    """One line for a pynetdicom reader thread killed by what its peer sent."""
    thread = args.thread
    if not isinstance(thread, DULServiceProvider):
        return False
    try:
        info = thread.assoc.requestor.address_info
        peer = peer_host(str(info.address)) if info is not None else "?"
    except Exception:
        peer = "?"
    REFUSALS("association ended", "protocol_error", "pynetdicom could not handle what the "
             f"peer sent ({args.exc_type.__name__}: {args.exc_value})", peer)
    return True


def install() -> None:
    """Install the filter on pynetdicom's protocol loggers and the reader-thread hook
    (once per process)."""
    for name in PROTOCOL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ProtocolNoise) for f in logger.filters):
            logger.addFilter(ProtocolNoise())
    previous = threading.excepthook
    if getattr(previous, "ecg_dicom", False):
        return

    def hook(args: Any) -> None:
        if not _reader_died(args):
            previous(args)

    hook.ecg_dicom = True  # type: ignore[attr-defined]
    threading.excepthook = hook
