"""The states of a job in the ledger (the strings are the ledger's, unchanged since v0.1;
``waiting`` was added by issue 12).

    received -> processing -> delivering -> done
                     |           |   ^
                     |           v   |
                     |         waiting         (the destination could not be reached:
                     |           |              tried again at next_attempt_at, for
                     |           v              delivery.retry_window_hours)
                     +-> failed <--+           (with reason and attempts)
                     |
                     +-> skipped               (not an ECG after all, e.g. a Hemodynamic
                                                object without ECG leads; with reason)

An object acknowledged but not processed by policy (not an ECG input, our own
result, another AI's burned-in result) is recorded directly as ``skipped``.

``delivering`` means a worker is sending the job right now: a job only enters it
through an atomic claim (from ``processing``, or from ``waiting``), so one job is
never sent by two workers at once.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """A job's state; each member is the very string stored in ``jobs.state``."""

    RECEIVED = "received"
    PROCESSING = "processing"
    DELIVERING = "delivering"
    #: Waiting for the destination: the SR and SC are built and kept, the last
    #: attempt to send them failed in a way that can pass (PACS unreachable,
    #: transient rejection, timeout, TLS handshake); the next attempt is at the
    #: job's ``next_attempt_at``.  Also the state of a job queued again by
    #: ``jobs retry`` whose results were built (due at once).
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"
    #: Terminal: acknowledged, never processed (the reason says why).
    SKIPPED = "skipped"
