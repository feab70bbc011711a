"""Prometheus metrics of the service (served on the HTTP port at ``/metrics``).

Every labelled counter is created with each of its known label values at 0, so a
dashboard (``docs/grafana-dashboard.json``) finds every series from the first
scrape, before the first ECG.  The ledger gauges (``ecgdicom_queued``,
``ecgdicom_jobs``, ``ecgdicom_oldest_unfinished_seconds``) are set by
:func:`ecg_dicom.jobs.gauges.update_queue_gauges`, which ``serve`` calls every few
seconds.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECEIVED = Counter("ecgdicom_received_total", "C-STORE requests received", ["sop_class"])
ACKNOWLEDGED = Counter(
    "ecgdicom_acknowledged_total", "C-STORE responses sent, by status", ["status"]
)
ASSOCIATIONS_REJECTED = Counter(
    "ecgdicom_associations_rejected_total", "Associations rejected by the allow-list"
)
#: reason: address, calling_ae, called_ae, host_limit, association_limit, request_timeout,
#: not_a_request, request_too_large, stalled_pdu, pdu_too_large, shutting_down...
#: (ecg_dicom.dicom.association.Refusals: each also logged, once).
REFUSED = Counter(
    "ecgdicom_refused_total", "Connections and associations the listener refused, by reason",
    ["reason"],
)
QUEUED = Gauge("ecgdicom_queued", "Jobs received and not yet finished (from the ledger)")
#: state: every JobState (received, processing, delivering, waiting, done, failed, skipped).
JOBS = Gauge("ecgdicom_jobs", "Jobs in the ledger, by state", ["state"])
OLDEST_UNFINISHED = Gauge(
    "ecgdicom_oldest_unfinished_seconds",
    "Age of the oldest job received and not yet finished (0 when none): a stuck queue grows it",
)
#: outcome: done (results delivered), not_sent (results made, no destination
#: configured for the caller: kept in storage.output_dir), failed.
OUTCOMES = ("done", "not_sent", "failed")
PROCESSED = Counter("ecgdicom_processed_total", "Jobs finished, by outcome", ["outcome"])
#: label: normal, abnormal, not_interpretable (the result of each job whose SR and
#: SC were made; a job processed again after a crash counts again).
RESULT_LABELS = {"Normal": "normal", "Abnormal": "abnormal",
                 "Not interpretable": "not_interpretable"}
RESULTS = Counter("ecgdicom_results_total", "Results made, by label", ["label"])
FAILED = Counter("ecgdicom_failed_total", "Jobs failed, by stage", ["stage"])
#: kind: not_ecg_input (a SOP class that is not an ECG input), own_result (an
#: ecg-dicom SC or SR sent back), ai_result (another AI's burned-in result),
#: not_an_ecg (read by the worker: e.g. a Hemodynamic object without ECG leads).
SKIPPED = Counter(
    "ecgdicom_skipped_total", "Objects acknowledged and not processed, by kind", ["kind"]
)
SPOOL_FREE_BYTES = Gauge(
    "ecgdicom_spool_free_bytes",
    "Free bytes on the spool's file system (C-STORE is refused below storage.min_free_mb)",
)
DELIVERY_RETRIES = Counter("ecgdicom_delivery_retries_total", "Delivery attempts scheduled again")
JOBS_WAITING = Gauge(
    "ecgdicom_jobs_waiting",
    "Jobs whose results wait for their destination (it could not be reached; retried)",
)
STORE_SECONDS = Histogram(
    "ecgdicom_store_seconds",
    "Time from C-STORE request to response (durable write)",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
STAGE_SECONDS = Histogram(
    "ecgdicom_stage_seconds",
    "Time spent in each pipeline stage",
    ["stage"],
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30),
)
JOB_SECONDS = Histogram(
    "ecgdicom_job_seconds",
    "Time from reception to done",
    buckets=(0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
#: event: start, stop, configuration, association, association_refused, received,
#: delivered, delivery_failed, deleted (ecg_dicom.audit).
AUDIT_MESSAGES = Counter("ecgdicom_audit_messages_total", "Audit messages written", ["event"])
AUDIT_FAILURES = Counter(
    "ecgdicom_audit_failures_total", "Audit messages not written, by target", ["target"]
)
#: kind: input (spooled instances), results (the SR/SC kept in the spool), outputs
#: (storage.output_dir) (ecg_dicom.jobs.retention).
RETENTION_BYTES = Counter(
    "ecgdicom_retention_removed_bytes_total", "Bytes removed by retention", ["kind"]
)
RETENTION_FILES = Counter(
    "ecgdicom_retention_removed_files_total", "Files removed by retention", ["kind"]
)
SPOOL_BYTES = Gauge("ecgdicom_spool_bytes", "Bytes held in the spool folder (last sweep)")


def result_made(label: str) -> None:
    """Count one result (``label``: "Normal", "Abnormal" or "Not interpretable")."""
    RESULTS.labels(label=RESULT_LABELS.get(label, label.lower().replace(" ", "_"))).inc()


def job_finished(outcome: str, seconds: float | None = None) -> None:
    """Count one finished job (``outcome`` in :data:`OUTCOMES`); ``seconds``: from
    reception to the end, for the jobs whose results were made."""
    PROCESSED.labels(outcome=outcome).inc()
    if seconds is not None:
        JOB_SECONDS.observe(max(0.0, seconds))


for _outcome in OUTCOMES:
    PROCESSED.labels(outcome=_outcome)
for _label in RESULT_LABELS.values():
    RESULTS.labels(label=_label)
