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

**First start.**  The listener and the HTTP side open at once: receiving needs no
model.  The model is prepared in a thread of its own (:class:`ModelPreparation`; on a
first start that derives the int8 model for this CPU, minutes) and the workers start
when it is ready: until then received ECGs wait in the queue, nothing fails.
``/healthz`` says ``"model": "preparing" | "ready" | "failed: ..."``.  The weights
file is verified before anything opens, so a missing or corrupt one still stops the
start.  Lines: one "ready" line when listening, one when the model is ready, and, on
a first start, one that says the model is being prepared and how long it takes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

from huey.consumer import Consumer

from ecg_dicom import audit
from ecg_dicom.config import Settings
from ecg_dicom.config.sources import CONFIG_ENV
from ecg_dicom.dicom import StorageSCP
from ecg_dicom.jobs import JobQueue, LedgerRequeue, Retention, Spool, SweepReport
from ecg_dicom.jobs.gauges import update_queue_gauges
from ecg_dicom.model import verify_weights
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.remote import Handouts, RemoteReader
from ecg_dicom.startup import configure_receiving
from ecg_dicom.web import HttpServer, create_app
from ecg_dicom.web.security import check_http_access
from ecg_dicom.worker import Worker

log = logging.getLogger("ecg_dicom.service")

#: Seconds running jobs get to finish after the first signal.
SHUTDOWN_TIMEOUT = 30.0
#: Seconds between updates of the queue-depth gauge.
GAUGE_INTERVAL = 2.0
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: queue.remote: threads of serve's own queue (worker hosts' answers, deliveries).
REMOTE_HOME_THREADS = 2


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
    if settings.queue.remote:  # workers on other hosts: see ecg_dicom.remote
        queue.set_remote(reader=RemoteReader(settings, queue, pipeline,
                                             spool.root / "reading").read_job)
        if listener:
            handouts = Handouts(spool, queue, worker)
            queue.set_remote(handout=handouts.handout, intake=handouts.take_answer)
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
        parts.queue.consumer(threads or max(1, settings.queue.workers),
                             work=settings.queue.remote).run()
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


class ModelPreparation:
    """Loads the model in a thread (deriving it on a first start), then calls
    ``when_ready`` (``serve`` starts its workers there).  A failure is logged and
    reported by ``/healthz``; received ECGs stay queued for a restart."""

    def __init__(self, pipeline: Pipeline, when_ready: Callable[[], None]) -> None:
        self.pipeline = pipeline
        self.when_ready = when_ready
        self.thread = threading.Thread(target=self._run, daemon=True, name="model")

    def start(self) -> ModelPreparation:
        self.thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        try:
            detector = self.pipeline.prepare_model()
        except Exception as exc:
            log.error("the model could not be prepared: %s; received ECGs are kept and "
                      "processed after a restart with a working model", exc, exc_info=True)
            return
        log.info("model ready (%s, %.0f s): processing received ECGs", detector.runtime_label,
                 time.monotonic() - started,
                 extra={"model": detector.name, "algorithm_version": detector.version})
        self.when_ready()


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
        #: queue.remote: serve's own queue (answers of the worker hosts, deliveries).
        self.home: Consumer | None = None
        self.requeue: LedgerRequeue | None = None
        self.http: HttpServer | None = None
        self.should_exit = threading.Event()
        self.force_exit = False
        self._workers_lock = threading.Lock()

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
        check_http_access(self.settings.http)
        self._log_start()
        audit_start(self.settings)
        removed = parts.spool.clean_tmp()
        if removed:
            log.info("removed %d partial transfers that were never acknowledged", removed)
        parts.spool.free_bytes()  # the gauge, and the early warning if already low
        if self.settings.queue.workers:
            verify_weights(self.settings.model)  # missing or corrupt: stop here
        requeue_unfinished(parts)
        # Jobs whose queue message is lost (Redis outage, FLUSHALL) are queued again.
        queue = self.settings.queue
        interval = (min(queue.requeue_interval, queue.dispatch_interval) if queue.remote
                    else queue.requeue_interval)  # remote: it also hands out the backlog
        self.requeue = LedgerRequeue(parts.spool, parts.queue, interval).start()
        self.scp.start()
        http = self.settings.http
        if http.enabled:
            app = create_app(parts.settings, parts.spool, parts.queue, parts.pipeline)
            self.http = HttpServer(app, http.host, http.port)
            self.http.start()
        threading.Thread(target=self._gauge_loop, daemon=True, name="gauges").start()
        threading.Thread(target=self._retention_loop, daemon=True, name="retention").start()
        workers = self.settings.queue.workers
        log.info(
            "ready: receiving DICOM as %s on port %d%s%s", self.settings.dicom.ae_title,
            self.settings.dicom.port, f", web viewer at http://{http.host}:{http.port}/"
            if http.enabled else "", "; preparing the model, received ECGs wait for it"
            if workers else "; no workers here (ecg-dicom worker processes the jobs)",
        )
        if self.settings.queue.remote:  # answers and deliveries need no model
            self.home = self._consumer(max(REMOTE_HOME_THREADS, workers), work=False)
        if workers:
            ModelPreparation(parts.pipeline, self._start_workers).start()

    def _start_workers(self) -> None:
        """The huey consumer, once the model is ready (not after a shutdown began)."""
        with self._workers_lock:
            if self.should_exit.is_set():
                return
            self.consumer = self._consumer(self.settings.queue.workers,
                                           work=self.settings.queue.remote)

    def _consumer(self, threads: int, *, work: bool) -> Consumer:
        consumer = self.parts.queue.consumer(threads, work=work)
        # Started off the main thread (signal.signal would raise), and the signals
        # are the service's own (capture_signals) anyway.
        consumer._set_signal_handlers = lambda: None  # type: ignore[method-assign]
        consumer.start()
        return consumer

    def _gauge_loop(self) -> None:
        while not self.should_exit.wait(GAUGE_INTERVAL):
            try:
                update_queue_gauges(self.parts.spool)  # queued, jobs{state}, oldest age
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
            if self.parts.scp is not None:  # new callers are refused from this moment on
                self.parts.scp.stop_accepting()
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
        with self.capture_signals():
            while not self.should_exit.wait(0.5):
                pass
            return self.shutdown()

    def shutdown(self) -> int:
        """Stop accepting, let running jobs finish, stop.  1 when a second signal
        cut the wait short (the unfinished jobs resume at the next start)."""
        with self._workers_lock:
            self.should_exit.set()
        # The port stays open while jobs finish: new callers get A-ASSOCIATE-RJ
        # transient (they retry later), not a refused connection.
        self.scp.stop_accepting()
        if self.requeue is not None:
            self.requeue.stop()
        for consumer in (self.consumer, self.home):
            if consumer is None:
                continue
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
