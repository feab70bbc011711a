"""``ecg-dicom serve``: everything one machine needs, in one process.

The DICOM listener, the worker threads (a huey consumer on the embedded SQLite
queue) and the HTTP side (health, metrics, jobs, the upload page).  Like
uvicorn: the first SIGTERM/SIGINT stops accepting associations, lets running
jobs finish (bounded by a timeout; an unfinished job stays in the ledger and is
queued again at the next start) and exits; a second signal exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType

import uvicorn
from huey.consumer import Consumer

from ecg_dicom import metrics
from ecg_dicom.config import Settings
from ecg_dicom.dicom.scp import StorageSCP
from ecg_dicom.jobs.queue import JobQueue
from ecg_dicom.jobs.spool import Spool
from ecg_dicom.worker import Pipeline, Worker

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 30.0


class Service:
    """Owns the spool, queue, workers, listener and HTTP server of one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.spool = Spool(
            settings.storage.spool_dir,
            fsync=settings.storage.fsync,
            min_free_mb=settings.storage.min_free_mb,
        )
        self.queue = JobQueue(settings)
        self.pipeline = Pipeline(settings)
        self.worker = Worker(settings, self.spool, self.queue, self.pipeline)
        self.queue.set_handler(self.worker.run_job)
        self.scp = StorageSCP(settings, self.spool, self.queue)
        self.consumer: Consumer | None = None
        self.http: uvicorn.Server | None = None
        self._stop = threading.Event()
        self._signals = 0

    def _log_start(self) -> None:
        log.info("effective configuration", extra={"config": self.settings.masked()})
        callers = self.settings.dicom.allowed_callers
        if any(c.ae_title == "*" for c in callers):
            log.warning(
                "any calling AE title is accepted from %s; configure dicom.allowed_callers "
                "to receive from other peers",
                ", ".join(sorted({h for c in callers for h in c.hosts})) or "any address",
            )

    def start(self) -> None:
        self._log_start()
        removed = self.spool.clean_tmp()
        if removed:
            log.info("removed %d partial transfers that were never acknowledged", removed)
        if self.settings.queue.workers:
            # Load and verify the model before accepting work: a missing or
            # corrupt weights file is reported at start, not at the first ECG.
            detector = self.pipeline.detector
            log.info(
                "model loaded",
                extra={"model": detector.name, "algorithm_version": detector.version},
            )
        recovered = self.spool.recover()
        for job_id in recovered:
            self.queue.enqueue(job_id)
        if recovered:
            log.info("queued %d unfinished jobs again after restart", len(recovered))
        if self.settings.queue.workers:
            consumer = self.queue.consumer(self.settings.queue.workers)
            consumer.start()
            self.consumer = consumer
        self.scp.start()
        if self.settings.http.enabled:
            from ecg_dicom.web.app import start_http

            self.http = start_http(self)
        threading.Thread(target=self._gauge_loop, daemon=True, name="gauges").start()
        log.info("ecg-dicom ready")

    def _gauge_loop(self) -> None:
        while not self._stop.wait(2.0):
            try:
                counts = self.spool.counts()
                metrics.QUEUED.set(counts["received"] + counts["processing"] + counts["delivering"])
            except Exception:
                log.exception("could not read ledger counts")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: exiting now; unfinished jobs resume at next start")
            os._exit(1)
        log.info("signal %s: shutting down", signal.Signals(signum).name)
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def run(self) -> int:
        """Start, wait for a signal, shut down.  Returns the exit code."""
        self.start()
        # huey's consumer installs its own handlers in start(); ours take over.
        self.install_signal_handlers()
        while not self._stop.wait(0.5):
            pass
        self.shutdown()
        return 0

    def shutdown(self) -> None:
        self._stop.set()
        self.scp.stop_accepting()
        self.scp.shutdown()
        if self.consumer is not None:
            self.consumer.shutdown_timeout = SHUTDOWN_TIMEOUT
            self.consumer.stop(graceful=True)
        if self.http is not None:
            self.http.should_exit = True
            deadline = time.monotonic() + 5
            while getattr(self.http, "started", False) and time.monotonic() < deadline:
                time.sleep(0.05)
        log.info("ecg-dicom stopped")
