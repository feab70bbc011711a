"""The spool's folders: received instances, partial transfers, kept results.

* ``instances/<job_id>.dcm``: each acknowledged instance, the bytes exactly as
  received (DICOM File Format), made durable before its ledger row is written;
* ``tmp/``: where pynetdicom writes a data set as it arrives (see
  :func:`spool_tmp_dir`), on the spool's file system so adoption is a rename;
  whatever is left there at start-up was never acknowledged;
* ``results/<job_id>/``: the SR and SC built for a job, kept until delivered.

File names are made from a random job id, never from UIDs sent by a peer, so
nothing is written outside the spool whatever the UIDs contain.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from pathlib import Path

from ecg_dicom import metrics
from ecg_dicom.durable import fsync_dir, fsync_file
from ecg_dicom.errors import StorageError

log = logging.getLogger("ecg_dicom.spool")

_MB = 1024 * 1024
#: The early warning: one WARNING line when free space falls below this many times
#: ``storage.min_free_mb`` (once per crossing), before C-STORE is refused.
WARN_FACTOR = 2


def spool_tmp_dir(spool_dir: Path) -> Path:
    """The folder of a spool where partial transfers are written (``storage.spool_dir``/tmp)."""
    return Path(spool_dir) / "tmp"


def _checked(job_id: str) -> str:
    if not job_id.isalnum():
        raise ValueError(f"invalid job id {job_id!r}")
    return job_id


class InstanceFiles:
    """The received instances and kept results of one spool folder."""

    def __init__(self, root: Path, *, fsync: bool = True, min_free_mb: int = 0) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.min_free_mb = min_free_mb
        self._space_lock = threading.Lock()
        self._space_low = False
        self.instances_dir = self.root / "instances"
        self.tmp_dir = spool_tmp_dir(self.root)
        self.results_dir = self.root / "results"
        for folder in (self.instances_dir, self.tmp_dir, self.results_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def new_job_id(self) -> str:
        return uuid.uuid4().hex

    def instance_path(self, job_id: str) -> Path:
        return self.instances_dir / f"{_checked(job_id)}.dcm"

    def results_path(self, job_id: str) -> Path:
        return self.results_dir / _checked(job_id)

    def free_bytes(self) -> int:
        """The spool disk's free bytes, also set as ``ecgdicom_spool_free_bytes``.

        Logs one WARNING when free space falls below ``WARN_FACTOR`` x
        ``storage.min_free_mb`` (and one INFO line when it is back above): once
        per crossing, not per object.
        """
        free = shutil.disk_usage(self.root).free
        metrics.SPOOL_FREE_BYTES.set(free)
        warn_below = WARN_FACTOR * self.min_free_mb * _MB
        low = free < warn_below
        with self._space_lock:
            was_low, self._space_low = self._space_low, low
        if low and not was_low:
            log.warning(
                "spool disk has %d MB free, below %d x storage.min_free_mb=%d: C-STORE is "
                "refused (0xA700) below %d MB", free // _MB, WARN_FACTOR, self.min_free_mb,
                self.min_free_mb,
                extra={"free_bytes": free, "min_free_mb": self.min_free_mb},
            )
        elif was_low and not low:
            log.info("spool disk has %d MB free again", free // _MB, extra={"free_bytes": free})
        return free

    def check_free_space(self) -> None:
        """Raise StorageError when the spool's disk is below the configured reserve."""
        free = self.free_bytes()
        if self.min_free_mb and free < self.min_free_mb * _MB:
            raise StorageError(
                f"spool disk has {free // _MB} MB free, "
                f"below storage.min_free_mb={self.min_free_mb}"
            )

    def adopt_file(self, job_id: str, received: Path) -> Path:
        """Make a received file durable under the spool: fsync, rename, fsync the folder.

        ``received`` must be on the spool's file system (``tmp/``); it is moved,
        not copied.
        """
        target = self.instance_path(job_id)
        try:
            if self.fsync:
                fsync_file(received)
            os.replace(received, target)
            if self.fsync:
                fsync_dir(self.instances_dir)
        except OSError as exc:
            raise StorageError(f"could not store received instance: {exc}") from exc
        return target

    def clean_tmp(self) -> int:
        """Remove partial files of never-acknowledged transfers (called at start-up)."""
        removed = 0
        for leftover in self.tmp_dir.iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed
