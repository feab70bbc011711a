"""The worker: runs one job through load -> render -> detect -> build -> send.

It owns stage order, attempts and the outcome written to the ledger:

* bad input (:class:`~ecg_dicom.errors.InputError`) fails the job at once with
  the reason; the next job is processed normally;
* any other error (a bug) is retried up to ``queue.max_attempts`` times, its
  traceback logged once, then the job fails with the reason;
* the built SR and SC are kept in the spool (``results/<job_id>/``) first: a
  delivery retry re-sends exactly the same objects;
* transient delivery failures (refused or dropped connection, timeout, TLS
  handshake, transient rejection, 0xA7xx) make the job ``waiting`` (for its
  destination), retried with capped backoff for ``delivery.retry_window_hours``,
  then failed with the reason; the schedule is in the ledger (a restart keeps it).
  While a destination is down one job probes it, the others wait and are woken
  when it gets through (:class:`~ecg_dicom.jobs.DestinationGate`).  Permanent
  rejections (0xA9xx, 0xCxxx) fail at once; ``ecg-dicom jobs retry`` queues again;
* a job is sent only by the worker that claimed it (``waiting`` -> ``delivering``
  in one ledger UPDATE): duplicate queue messages never send a result twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pydicom import Dataset

from ecg_dicom import audit, metrics
from ecg_dicom.config import Settings
from ecg_dicom.dicom import check_delivery_tls, destinations_for, send_outputs, stow_outputs
from ecg_dicom.errors import DeliveryError, InputError, ModelError, NotAnEcgError
from ecg_dicom.jobs import DestinationGate, Job, JobQueue, JobState, Spool, backoff_delay
from ecg_dicom.logs import log_context
from ecg_dicom.pipeline import Pipeline, Trace
from ecg_dicom.records import DocumentReference, Outputs, ResultHistory
from ecg_dicom.results import read_kept, write_outputs
from ecg_dicom.sop import SR_MODALITY

log = logging.getLogger(__name__)

#: A reminder for a ``waiting`` job more than this many seconds before its
#: ``next_attempt_at`` (a duplicate message) is put off until then.
EARLY_SLACK = 1.0


class Worker:
    """Runs jobs taken from the queue; every state change goes to the ledger."""

    def __init__(self, settings: Settings, spool: Spool, queue: JobQueue,
                 pipeline: Pipeline | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.spool = spool
        self.queue = queue
        self.pipeline = pipeline or Pipeline(settings)
        self.clock = clock
        self.gate = DestinationGate(lambda: self.clock())  # follows a test's clock
        if settings.delivery.max_attempts is not None:
            log.warning("delivery.max_attempts is no longer used: an unreachable destination "
                        "is retried for delivery.retry_window_hours=%g h",
                        settings.delivery.retry_window_hours)
        check_delivery_tls(settings)  # a missing certificate stops start-up, not each delivery

    # -- entry point (the queue calls this) -----------------------------------
    def run_job(self, job_id: str) -> None:
        job = self.spool.get(job_id)
        if job is None:
            log.warning("queued job not in ledger", extra={"job_id": job_id})
            return
        with log_context(
            job_id=job.job_id, calling_ae=job.calling_ae, sop_instance_uid=job.sop_instance_uid
        ):
            if job.state == JobState.WAITING:
                self._deliver_when_due(job)
                return
            if job.state == JobState.DELIVERING:
                log.info("job is being delivered by another worker")
                return
            claimed = self.spool.claim(job_id, (JobState.RECEIVED,), JobState.PROCESSING)
            if claimed is None:
                log.info("job already taken or finished", extra={"state": job.state})
                return
            outputs = self.process(claimed)
            if outputs is not None:
                refreshed = self.spool.get(job_id)
                if refreshed is not None:
                    self.deliver(refreshed, outputs)

    # -- processing -------------------------------------------------------------
    def process(self, job: Job) -> Outputs | None:
        """Build and keep the SR and SC of a job; None when the job did not get that far."""
        attempt = job.attempts + 1
        trace = Trace()
        try:
            ds, reading = self.pipeline.read_instance(self.spool.instance_path(job.job_id), trace)
            study = str(ds.get("StudyInstanceUID", job.study_instance_uid))
            history = self.spool.result_history(study, job.sop_instance_uid)
            outputs = self.pipeline.build(
                ds,
                reading,
                slot=self.spool.series_slot(study, job.sop_instance_uid),
                history=history,
                keep_in=self.spool.results_path(job.job_id),
                trace=trace,
            )
        except NotAnEcgError as exc:
            self.skip(job, f"{trace.stage}: {exc}", attempts=attempt)
            return None
        except InputError as exc:
            self.fail(job, trace.stage, f"{trace.stage}: {exc}", attempts=attempt)
            return None
        except ModelError as exc:
            reason = f"{trace.stage}: model unavailable: {exc}"
            self.fail(job, trace.stage, reason, attempts=attempt)
            return None
        except Exception as exc:
            stage = trace.stage
            reason = f"{stage}: {type(exc).__name__}: {exc}"
            self.attempt_failed(job, attempt, stage, reason, traceback=True)
            return None
        self.built(job, attempt, outputs, reading.result.to_dict(), history)
        return outputs

    def attempt_failed(self, job: Job, attempt: int, stage: str, reason: str,
                       traceback: bool) -> None:
        """A bug: queue again with backoff, or fail after ``queue.max_attempts``
        (``traceback``: log the exception being handled, once per reason)."""
        first = (traceback and reason != job.reason) or None
        if attempt < self.settings.queue.max_attempts:
            log.error("attempt %d failed, will retry: %s", attempt, reason, exc_info=first,
                      extra={"stage": stage})
            self.spool.update(job.job_id, state=JobState.RECEIVED, attempts=attempt,
                              reason=reason)
            self.queue.enqueue(job.job_id, delay=backoff_delay(attempt, 1.0, 30.0))
        else:
            self.fail(job, stage, reason, attempts=attempt, exc_info=first)

    def built(self, job: Job, attempt: int, outputs: Outputs, result: dict[str, object],
              history: ResultHistory | None) -> None:
        """Record built and kept SR and SC (``result``: the reading's ``to_dict()``)."""
        log.info("classified", extra={"label": result["label"], "class_name": result[
            "class_name"], "confidence": result["confidence"]})
        sr = outputs.sr
        predecessors = sr.get("PredecessorDocumentsSequence", [])
        replaced = (
            str(predecessors[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
                .ReferencedSOPInstanceUID) if predecessors else None
        )
        if history is not None and history.built_sr != sr.SOPInstanceUID:
            log.info("the new result replaces SR %s (its content changed)", replaced)
        record = {**result, "outputs": {
            "sc": str(outputs.sc.SOPInstanceUID), "sr": str(sr.SOPInstanceUID),
            "series_numbers": [int(outputs.sc.SeriesNumber), int(sr.SeriesNumber)],
            "replaces": replaced,
        }}
        self.spool.update(job.job_id, state=JobState.DELIVERING, attempts=attempt, reason="",
                          result=record)
        metrics.result_made(str(result["label"]))

    def skip(self, job: Job, reason: str, attempts: int) -> None:
        """End a job that is not an ECG input (e.g. a Hemodynamic object without ECG
        leads): acknowledged, recorded with the reason, never processed."""
        log.info("job skipped: %s", reason)
        self.spool.update(
            job.job_id, state=JobState.SKIPPED, reason=f"skipped: {reason}", attempts=attempts
        )
        metrics.SKIPPED.labels(kind="not_an_ecg").inc()

    def fail(self, job: Job, stage: str, reason: str, attempts: int | None = None,
              exc_info: bool | None = None) -> None:
        log.error("job failed: %s", reason, exc_info=exc_info, extra={"stage": stage})
        fields: dict[str, object] = {"state": JobState.FAILED, "reason": reason}
        if attempts is not None:
            fields["attempts"] = attempts
        self.spool.update(job.job_id, **fields)
        metrics.FAILED.labels(stage=stage).inc()
        metrics.job_finished("failed")

    # -- delivery ---------------------------------------------------------------
    def _deliver_when_due(self, job: Job) -> None:
        """Send a ``waiting`` job if its time has come (claiming it first)."""
        early = job.next_attempt_at - self.clock()
        if early > EARLY_SLACK:
            self.queue.enqueue(job.job_id, delay=early)
            return
        claimed = self.spool.claim(job.job_id, (JobState.WAITING,), JobState.DELIVERING)
        if claimed is None:
            log.info("job already taken or finished")
            return
        self.deliver(claimed)

    def deliver(self, job: Job, outputs: Outputs | None = None) -> None:
        """Send the SC and SR to the caller's destination(s).

        ``outputs`` are the objects just built; a retry reads the copies kept in the spool.
        """
        delivery = self.settings.delivery
        if outputs is None:
            kept = read_kept(self.spool.results_path(job.job_id))  # SC, then SR
            if len(kept) != 2:
                self.fail(job, "send", f"send: expected SC and SR in the spool, found {len(kept)}")
                return
            outputs = Outputs(sc=kept[0], sr=kept[1])
        datasets: list[Dataset] = [outputs.sc, outputs.sr]
        destinations = destinations_for(job.calling_ae, self.settings)
        notes: list[str] = []
        if delivery.keep_outputs or (not destinations and not delivery.stow_url):
            written = write_outputs(outputs, self.settings.storage.output_dir)
            notes.append(f"kept in {written[0].parent}")
        if not destinations and not delivery.stow_url:
            reason = (
                f"not sent: no destination configured for calling AE {job.calling_ae!r} "
                f"(delivery.destinations / fixed_destinations); " + "; ".join(notes)
            )
            log.warning(reason)
            self._done(job, reason, "not_sent")
            return
        attempt = job.delivery_attempts + 1
        calling_ae = delivery.calling_ae_title or self.settings.dicom.ae_title
        delivered_sr: tuple[str, str, str] | None = None
        wheres = [d.where for d in destinations]
        window_over = job.waiting_since and self.clock() >= job.waiting_since + (
            delivery.retry_window_hours * 3600.0)  # then it tries (and fails) on its own
        hold = 0.0 if window_over else self.gate.hold(wheres, 3 * delivery.timeout)
        if hold > 0:  # another job is probing a destination known to be down
            self._wait(job, job.delivery_attempts, hold, f"{', '.join(wheres)} is unreachable; "
                       "another job is trying it")
            return
        where = None
        try:
            started = time.perf_counter()
            for destination in destinations:
                where = destination.where
                sent = send_outputs(
                    datasets, destination, calling_ae=calling_ae, timeout=delivery.timeout,
                    uid_root=self.settings.output.uid_root, tls=delivery.tls,
                )
                fallbacks = [s.describe() for s in sent if s.fallback]
                fallback = f" ({'; '.join(fallbacks)})" if fallbacks else ""
                notes.append(f"sent to {where}{fallback}")
                audit.results_delivered(destination.ae_title, destination.host, audit.Instances(
                    str(outputs.sr.StudyInstanceUID), [(o.sop_class_uid, o.sop_instance_uid)
                    for o in sent], patient_id=str(outputs.sr.get("PatientID", ""))))
                for obj in sent:
                    if obj.modality == SR_MODALITY and delivered_sr is None:
                        delivered_sr = (obj.series_instance_uid, obj.sop_class_uid,
                                        obj.sop_instance_uid)
            where = None
            if delivery.stow_url:
                stow_outputs(datasets, delivery.stow_url, timeout=delivery.timeout)
                notes.append(f"stored via STOW-RS at {delivery.stow_url}")
            metrics.STAGE_SECONDS.labels(stage="send").observe(time.perf_counter() - started)
        except DeliveryError as exc:
            self._delivery_failed(job, attempt, exc, where)
            return
        self._wake_waiting(self.gate.reachable(wheres))
        self.spool.update(job.job_id, delivery_attempts=attempt)
        if job.waiting_since:
            log.info("delivered after waiting %.0f s for the destination (%d attempts)",
                     self.clock() - job.waiting_since, attempt)
        self._record_delivered(job, outputs.sr, delivered_sr)
        self._done(job, "; ".join(notes))

    def _delivery_failed(
        self, job: Job, attempt: int, exc: DeliveryError, where: str | None
    ) -> None:
        """Wait for the destination (transient failure inside the window) or fail."""
        delivery = self.settings.delivery
        now = self.clock()
        since = job.waiting_since or now
        window_end = since + delivery.retry_window_hours * 3600.0
        if exc.transient and now < window_end:
            delay = min(backoff_delay(attempt, delivery.backoff_initial, delivery.backoff_max),
                        window_end - now)
            if where is not None:
                self.gate.failed(where, delay)
            self._wait(job, attempt, delay, f"send attempt {attempt} failed ({exc})")
            metrics.DELIVERY_RETRIES.inc()
            return
        if exc.transient:
            kind = (f"transient; the destination could not be reached for "
                    f"{(now - since) / 3600.0:.3g} h, {attempt} attempts "
                    f"(delivery.retry_window_hours={delivery.retry_window_hours:g})")
        else:
            kind = "permanent"
        self.spool.update(job.job_id, delivery_attempts=attempt)
        self.fail(job, "send", f"send: {exc} ({kind})")

    def _wait(self, job: Job, attempts: int, delay: float, why: str) -> None:
        """Put a job in ``waiting`` (for its destination), tried again in ``delay`` s."""
        now = self.clock()
        since = job.waiting_since or now
        until = since + self.settings.delivery.retry_window_hours * 3600.0
        reason = (f"waiting for destination: {why}; next try in {delay:.0f} s; retried until "
                  f"{datetime.fromtimestamp(until, UTC):%Y-%m-%d %H:%M:%S} UTC")
        # One WARNING when a job starts waiting; the later rounds at DEBUG.
        log.log(logging.WARNING if not job.waiting_since else logging.DEBUG, reason)
        self.spool.update(job.job_id, state=JobState.WAITING, delivery_attempts=attempts,
                          reason=reason, waiting_since=since, next_attempt_at=now + delay)
        self.queue.enqueue(job.job_id, delay=delay)

    def _wake_waiting(self, back: list[str]) -> None:
        """A destination found down is reachable again: its waiting jobs go now."""
        if not back:
            return
        woken = [j.job_id for j in self.spool.list_jobs(JobState.WAITING, limit=1_000_000)
                 if any(d.where in back for d in destinations_for(j.calling_ae, self.settings))]
        for job_id in woken:
            self.spool.update(job_id, next_attempt_at=self.clock())
            self.queue.enqueue(job_id)
        log.info("%s reachable again: %d waiting jobs queued now", ", ".join(back), len(woken))

    def _record_delivered(
        self, job: Job, sr: Dataset, sent: tuple[str, str, str] | None
    ) -> None:
        """Remember the SR the PACS now holds for this ECG: a later result with other
        content names it as its predecessor."""
        study = str(sr.StudyInstanceUID)
        series, sop_class, sop_instance = sent or (
            str(sr.SeriesInstanceUID), str(sr.SOPClassUID), str(sr.SOPInstanceUID)
        )
        earlier = self.spool.result_history(study, job.sop_instance_uid)
        history = ResultHistory(
            built_sr=str(sr.SOPInstanceUID),
            sent=DocumentReference(study, series, sop_class, sop_instance),
            replaced=earlier.predecessor_of(str(sr.SOPInstanceUID)) if earlier else None,
        )
        self.spool.record_result(study, job.sop_instance_uid, history, job.job_id)

    def _done(self, job: Job, reason: str, outcome: str = "done") -> None:
        self.spool.update(job.job_id, state=JobState.DONE, reason=reason)
        metrics.job_finished(outcome, self.clock() - job.received_at)
        log.info("job done: %s", reason)
