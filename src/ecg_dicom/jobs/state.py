"""The states of a job in the ledger (the strings are the ledger's, unchanged since v0.1).

    received -> processing -> delivering -> done
                     |             |
                     +-> failed <--+      (with reason and attempts)
                     |
                     +-> skipped          (not an ECG after all, e.g. a Hemodynamic
                                           object without ECG leads; with reason)

An object acknowledged but not processed by policy (not an ECG input, our own
result, another AI's burned-in result) is recorded directly as ``skipped``.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """A job's state; each member is the very string stored in ``jobs.state``."""

    RECEIVED = "received"
    PROCESSING = "processing"
    DELIVERING = "delivering"
    DONE = "done"
    FAILED = "failed"
    #: Terminal: acknowledged, never processed (the reason says why).
    SKIPPED = "skipped"

