"""Process lifecycle: the parts of a node, composed once, started and stopped.

:func:`compose` builds the spool, queue, pipeline and worker (and, for ``serve``,
the DICOM listener): ``ecg-dicom serve`` and ``ecg-dicom worker`` are wired by the
same code, so they cannot drift apart.

:class:`Service` is ``ecg-dicom serve``: the listener, the worker threads (a huey
consumer on the configured queue) and the HTTP side in one process.  Like
uvicorn: the first SIGTERM/SIGINT sets ``should_exit`` - stop accepting
associations, let running jobs finish (bounded by :data:`SHUTDOWN_TIMEOUT`; an
unfinished job stays in the ledger and is queued again at the next start) and
exit 0; a second signal sets ``force_exit`` and the process exits 1 at once.
Signal handlers are installed for the run and restored after it.

``serve`` also writes the audit trail (:mod:`ecg_dicom.audit`: start, stop, the
configuration; the listener and the workers add theirs) and sweeps the spool by
``storage.retention`` (:mod:`ecg_dicom.jobs.retention`) at start and every
``interval_minutes``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

from huey.consumer import Consumer

from ecg_dicom import audit, metrics
from ecg_dicom.config import Settings
from ecg_dicom.config.sources import CONFIG_ENV
from ecg_dicom.dicom import StorageSCP
from ecg_dicom.jobs import JobQueue, LedgerRequeue, Retention, Spool, SweepReport
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.startup import configure_receiving
from ecg_dicom.web import HttpServer, create_app
from ecg_dicom.worker import Worker

log = logging.getLogger("ecg_dicom.service")

#: Seconds running jobs get to finish after the first signal.
SHUTDOWN_TIMEOUT = 30.0
#: Seconds between updates of the queue-depth gauge.
GAUGE_INTERVAL = 2.0
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class Parts:
    """What one node process is made of."""

    settings: Settings
    spool: Spool
    queue: JobQueue
    pipeline: Pipeline
    worker: Worker
    scp: StorageSCP | None


def compose(settings: Settings, *, listener: bool, pipeline: Pipeline | None = None) -> Parts:
    """Build the parts of ``serve`` (``listener=True``) or ``worker`` (``False``)."""
    spool = Spool(
        settings.storage.spool_dir,
        fsync=settings.storage.fsync,
        min_free_mb=settings.storage.min_free_mb,
    )
    queue = JobQueue(settings)
    pipeline = pipeline or Pipeline(settings)
    worker = Worker(settings, spool, queue, pipeline)
    queue.set_handler(worker.run_job)
    scp = None
    if listener:
        scp = StorageSCP(settings, spool, queue)
        configure_receiving(spool.tmp_dir, open_file=scp.received_files.open)
    return Parts(settings, spool, queue, pipeline, worker, scp)


def retention_for(settings: Settings, spool: Spool) -> Retention:
    return Retention(spool, settings.storage.retention, settings.storage.output_dir)


def clean_spool(settings: Settings) -> SweepReport:
    """``ecg-dicom spool clean``: one retention sweep, audited like serve's."""
    spool = Spool(settings.storage.spool_dir, fsync=settings.storage.fsync)
    audit.configure(settings)
    try:
        return retention_for(settings, spool).sweep()
    finally:
        audit.shutdown()


def run_worker(settings: Settings, threads: int) -> int:
    """``ecg-dicom worker``: workers only (no listener) on the configured queue; audited."""
    parts = compose(settings, listener=False)
    audit_start(settings)
    try:
        parts.queue.consumer(threads or max(1, settings.queue.workers)).run()
    finally:
        audit.application_activity(started=False)
        audit.shutdown()
    return 0


def audit_start(settings: Settings) -> None:
    """Start the audit trail: Application Start, and the configuration (origin, SHA-256)."""
    audit.configure(settings)
    audit.application_activity(started=True)
    text = json.dumps(settings.masked(), sort_keys=True).encode()
    origin = os.environ.get(CONFIG_ENV) or "defaults + environment"
    audit.configuration_loaded(origin, hashlib.sha256(text).hexdigest())


def load_model(parts: Parts) -> None:
    """Load and verify the model before accepting work: a missing or corrupt
    weights file is reported at start, not at the first ECG."""
    detector = parts.pipeline.detector
    log.info("model loaded", extra={"model": detector.name, "algorithm_version": detector.version})


def requeue_unfinished(parts: Parts) -> None:
    """Queue again what a previous run left unfinished (the ledger is the truth)."""
    recovered = parts.spool.recover()
    for job_id in recovered:
        parts.queue.enqueue(job_id)
    if recovered:
        log.info("queued %d unfinished jobs again after restart", len(recovered))


class Service:
    """``ecg-dicom serve``: owns the parts of one process and runs them until a signal."""

    def __init__(self, settings: Settings, parts: Parts | None = None) -> None:
        self.settings = settings
        self.parts = parts or compose(settings, listener=True)
        self.consumer: Consumer | None = None
        self.requeue: LedgerRequeue | None = None
        self.http: HttpServer | None = None
        self.should_exit = threading.Event()
        self.force_exit = False

    @property
    def scp(self) -> StorageSCP:
        assert self.parts.scp is not None, "composed without a listener"
        return self.parts.scp

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
        parts = self.parts
        self._log_start()
        audit_start(self.settings)
        removed = parts.spool.clean_tmp()
        if removed:
            log.info("removed %d partial transfers that were never acknowledged", removed)
        parts.spool.free_bytes()  # the gauge, and the early warning if already low
        if self.settings.queue.workers:
            load_model(parts)
        requeue_unfinished(parts)
        # Jobs whose queue message is lost (Redis outage, FLUSHALL) are queued again.
        self.requeue = LedgerRequeue(
            parts.spool, parts.queue, self.settings.queue.requeue_interval).start()
        if self.settings.queue.workers:
            consumer = parts.queue.consumer(self.settings.queue.workers)
            consumer.start()
            self.consumer = consumer
        self.scp.start()
        if self.settings.http.enabled:
            app = create_app(parts.settings, parts.spool, parts.queue, parts.pipeline)
            self.http = HttpServer(app, self.settings.http.host, self.settings.http.port)
            self.http.start()
        threading.Thread(target=self._gauge_loop, daemon=True, name="gauges").start()
        threading.Thread(target=self._retention_loop, daemon=True, name="retention").start()
        log.info("ecg-dicom ready")

    def _gauge_loop(self) -> None:
        while not self.should_exit.wait(GAUGE_INTERVAL):
            try:
                counts = self.parts.spool.counts()
                metrics.QUEUED.set(counts["received"] + counts["processing"] + counts["delivering"]
                                   + counts["waiting"])
                self.parts.spool.free_bytes()  # ecgdicom_spool_free_bytes, early warning
            except Exception:
                log.exception("could not read ledger counts or free space")

    def _retention_loop(self) -> None:
        """A sweep at start, then every storage.retention.interval_minutes."""
        retention = retention_for(self.settings, self.parts.spool)
        interval = self.settings.storage.retention.interval_minutes * 60
        while not self.should_exit.is_set():
            try:
                retention.sweep()
            except Exception:
                log.exception("retention sweep failed; the next one runs in %g min",
                              interval / 60)
            self.should_exit.wait(interval)

    def handle_exit(self, signum: int, frame: FrameType | None) -> None:
        if self.should_exit.is_set():
            log.warning("second signal: exiting now; unfinished jobs resume at next start")
            self.force_exit = True
        else:
            log.info("signal %s: shutting down", signal.Signals(signum).name)
        self.should_exit.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Our handlers for SIGTERM/SIGINT during the run; the previous ones after it."""
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def run(self) -> int:
        """Start, wait for a signal, shut down.  Returns the exit code."""
        self.start()
        # huey's consumer installs its own handlers in start(); ours take over.
        with self.capture_signals():
            while not self.should_exit.wait(0.5):
                pass
            return self.shutdown()

    def shutdown(self) -> int:
        """Stop accepting, let running jobs finish, stop.  1 when a second signal
        cut the wait short (the unfinished jobs resume at the next start)."""
        self.should_exit.set()
        # The port stays open while jobs finish: new callers get A-ASSOCIATE-RJ
        # transient (they retry later), not a refused connection.
        self.scp.stop_accepting()
        if self.requeue is not None:
            self.requeue.stop()
        if self.consumer is not None:
            consumer = self.consumer
            consumer.shutdown_timeout = SHUTDOWN_TIMEOUT
            stopping = threading.Thread(
                target=consumer.stop, kwargs={"graceful": True}, daemon=True, name="stopping"
            )
            stopping.start()
            while stopping.is_alive() and not self.force_exit:
                stopping.join(0.1)
        self.scp.shutdown()
        if self.http is not None:
            self.http.stop()
        self.parts.pipeline.close()  # the idle page-reading children
        log.info("ecg-dicom stopped")
        audit.application_activity(started=False)
        audit.shutdown()
        return 1 if self.force_exit else 0
