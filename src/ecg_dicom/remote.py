"""Workers on other hosts, sharing nothing but Redis (``queue.remote: true``).

The two halves of a job read by another host (the Redis side, with its reasons:
:mod:`ecg_dicom.jobs.remote_queue`; the choice against an HTTP fetch or an object
store: docs/deploy.md "Workers on other hosts"):

* :class:`Handouts` is ``serve``'s: it makes the message for a ``received`` job
  (the instance's bytes, its series slot and result history from the ledger) and
  takes the answer back (:meth:`Handouts.take_answer`): it claims the job in the
  ledger (``received`` -> ``processing``, one UPDATE: a second answer for the same
  job, from a worker whose lease expired while it was still reading, finds it
  claimed and is dropped), keeps the SR and SC in the spool and sends them with
  :class:`~ecg_dicom.worker.Worker` - the same delivery, retries and waiting as a
  local job.  Results go out from the listener only, once per job.
* :class:`RemoteReader` is a worker host's: it takes the job's lease, fetches the
  bytes from Redis, runs load -> render -> detect -> build in its own scratch
  folder and sends the built objects (or why there are none) back.

The ledger stays on the listener and stays the truth: a job is ``received`` until
an answer is taken, so whatever Redis loses (restart, FLUSHALL) or a worker loses
(killed mid-job: its lease expires) is handed out again from it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmread

from ecg_dicom.config import Settings
from ecg_dicom.errors import InputError, ModelError, NotAnEcgError
from ecg_dicom.jobs import JobQueue, JobState, Spool
from ecg_dicom.jobs.queue import Handout
from ecg_dicom.jobs.remote_queue import RemoteChannel
from ecg_dicom.logs import log_context
from ecg_dicom.pipeline import Pipeline, Trace
from ecg_dicom.records import DocumentReference, Outputs, ResultHistory
from ecg_dicom.results import encode_part10, write_outputs
from ecg_dicom.worker import Worker

log = logging.getLogger("ecg_dicom.remote")


def history_facts(history: ResultHistory | None) -> dict[str, Any] | None:
    return dataclasses.asdict(history) if history is not None else None


def history_from(facts: dict[str, Any] | None) -> ResultHistory | None:
    if not facts:
        return None
    replaced = facts.get("replaced")
    return ResultHistory(
        built_sr=str(facts["built_sr"]), sent=DocumentReference(**facts["sent"]),
        replaced=DocumentReference(**replaced) if replaced else None,
    )


def channel_of(queue: JobQueue) -> RemoteChannel:
    if queue.remote is None:
        raise RuntimeError("queue.remote is off")
    return queue.remote


class Handouts:
    """``serve``'s half: the message for a job, and the answer taken back."""

    def __init__(self, spool: Spool, queue: JobQueue, worker: Worker) -> None:
        self.spool = spool
        self.queue = queue
        self.worker = worker

    def handout(self, job_id: str) -> Handout | None:
        """How to make a ``received`` job's message (None: the job is not to be read)."""
        job = self.spool.get(job_id)
        if job is None or job.state != JobState.RECEIVED:
            return None

        def make() -> tuple[bytes, dict[str, Any]]:
            study, sop = job.study_instance_uid, job.sop_instance_uid
            facts = {
                "slot": self.spool.series_slot(study, sop),
                "history": history_facts(self.spool.result_history(study, sop)),
                "calling_ae": job.calling_ae, "sop_instance_uid": sop,
                "attempts": job.attempts,
            }
            return self.spool.instance_path(job_id).read_bytes(), facts

        return make

    def take_answer(self, job_id: str, answer: dict[str, Any]) -> None:
        """A worker's answer: claim the job, record the outcome, send the results."""
        job = self.spool.claim(job_id, (JobState.RECEIVED,), JobState.PROCESSING)
        if job is None:
            log.info("an answer for a job already answered was dropped (from %s)",
                     answer.get("worker", "?"), extra={"job_id": job_id})
            channel_of(self.queue).forget(job_id, lease=False)  # another may be reading
            return
        with log_context(job_id=job.job_id, calling_ae=job.calling_ae,
                         sop_instance_uid=job.sop_instance_uid):
            attempt = job.attempts + 1
            kind = answer.get("kind")
            try:
                if kind == "built":
                    outputs = Outputs(sc=dcmread(BytesIO(answer["sc"])),
                                      sr=dcmread(BytesIO(answer["sr"])))
                    write_outputs(outputs, self.spool.results_path(job_id))  # kept first
                    history = self.spool.result_history(job.study_instance_uid,
                                                        job.sop_instance_uid)
                    self.worker.built(job, attempt, outputs, answer["result"], history)
                    log.info("read by %s in %.1f s", answer.get("worker", "?"),
                             float(answer.get("seconds", 0.0)))
                    refreshed = self.spool.get(job_id)
                    if refreshed is not None:
                        self.worker.deliver(refreshed, outputs)
                elif kind == "skipped":
                    self.worker.skip(job, str(answer["reason"]), attempts=attempt)
                elif kind == "failed":
                    self.worker.fail(job, str(answer["stage"]), str(answer["reason"]),
                                     attempts=attempt)
                else:
                    self.worker.attempt_failed(job, attempt, str(answer.get("stage", "read")),
                                               str(answer.get("reason", f"answer {kind!r}")),
                                               traceback=False)
            except Exception as exc:  # an answer that cannot be used: read it again
                log.exception("the answer from %s could not be used", answer.get("worker", "?"))
                current = self.spool.get(job_id)
                if current is not None and current.state == JobState.PROCESSING:
                    self.worker.attempt_failed(job, attempt, "answer",
                                               f"answer: {type(exc).__name__}: {exc}",
                                               traceback=False)
        channel_of(self.queue).forget(job_id, lease=True)


class RemoteReader:
    """A worker host's half: read a job whose bytes come from Redis, send the answer."""

    def __init__(self, settings: Settings, queue: JobQueue, pipeline: Pipeline,
                 scratch: Path) -> None:
        self.settings = settings
        self.queue = queue
        self.pipeline = pipeline
        self.scratch = scratch
        self.holder = f"{socket.gethostname()}:{os.getpid()}"

    def read_job(self, job_id: str, facts: dict[str, Any]) -> None:
        if not job_id.isalnum():
            log.warning("a message with an invalid job id was dropped")
            return
        channel = channel_of(self.queue)
        context = {"job_id": job_id, "calling_ae": str(facts.get("calling_ae", "")),
                   "sop_instance_uid": str(facts.get("sop_instance_uid", ""))}
        with log_context(**context):
            if not channel.take(job_id, self.holder):
                log.info("job is being read by another worker")
                return
            sent = False
            try:
                data = channel.instance(job_id)
                if data is None:
                    log.warning("the job's instance is no longer in Redis (restarted or "
                                "flushed); serve hands the job out again")
                    return
                with channel.holding(job_id, self.holder):
                    answer = self.read(job_id, data, facts)
                sent = self.queue.send_result(job_id, answer)
                if not sent:
                    log.warning("the answer could not be sent (Redis is away); serve hands "
                                "the job out again")
            finally:
                if not sent:  # else serve ends the lease once it has claimed the answer
                    channel.release(job_id, self.holder)

    def read(self, job_id: str, data: bytes, facts: dict[str, Any]) -> dict[str, Any]:
        """load -> render -> detect -> build in this host's scratch folder."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        path = self.scratch / f"{job_id}.dcm"
        path.write_bytes(data)
        trace = Trace()
        started = time.perf_counter()
        answer: dict[str, Any] = {"worker": self.holder}
        try:
            ds, reading = self.pipeline.read_instance(path, trace)
            outputs = self.pipeline.build(ds, reading, slot=int(facts.get("slot", 0)),
                                          history=history_from(facts.get("history")),
                                          trace=trace)
        except NotAnEcgError as exc:
            return {**answer, "kind": "skipped", "reason": f"{trace.stage}: {exc}"}
        except InputError as exc:
            return {**answer, "kind": "failed", "stage": trace.stage,
                    "reason": f"{trace.stage}: {exc}"}
        except ModelError as exc:
            return {**answer, "kind": "failed", "stage": trace.stage,
                    "reason": f"{trace.stage}: model unavailable: {exc}"}
        except Exception as exc:
            reason = f"{trace.stage}: {type(exc).__name__}: {exc}"
            log.error("reading failed: %s", reason, exc_info=True,
                      extra={"stage": trace.stage})
            return {**answer, "kind": "error", "stage": trace.stage, "reason": reason}
        finally:
            path.unlink(missing_ok=True)
        seconds = time.perf_counter() - started
        log.info("read (%s) in %.2f s", reading.result.label, seconds)
        return {**answer, "kind": "built", "result": reading.result.to_dict(),
                "sc": encode_part10(outputs.sc), "sr": encode_part10(outputs.sr),
                "seconds": round(seconds, 3)}
