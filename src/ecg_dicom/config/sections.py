"""The sections of the configuration that describe the service itself: the DICOM
listener, the web page, storage, the queue, the model, delivery, outputs, logging and
the audit trail.  Bounds on the work one object may cost are in
:mod:`ecg_dicom.config.limits`, DICOM TLS in :mod:`ecg_dicom.config.tls`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, field_validator

from ecg_dicom.config.base import Section, check_ae_title
from ecg_dicom.config.tls import ClientTls, ListenerTls

#: The values of ``model.runtime``: written once here, read by the model runtime
#: (``resolve_runtime``), the derivation cache and the CLI choices.
ModelRuntime = Literal["auto", "pytorch", "onnx", "openvino", "openvino-int8"]
MODEL_RUNTIMES: tuple[str, ...] = get_args(ModelRuntime)


class AllowedCaller(Section):
    """One entry of the calling-AE allow-list.  ``ae_title`` "*" matches any AE
    title; ``hosts`` (IP addresses) empty means any address."""

    ae_title: str = "*"
    hosts: list[str] = Field(default_factory=list)

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, v: str) -> str:
        return v if v == "*" else check_ae_title(v)


class DicomSettings(Section):
    ae_title: str = "ECGDICOM"
    bind_address: str = "0.0.0.0"
    port: int = Field(11112, ge=1, le=65535)
    max_associations: int = Field(10, ge=1, le=1000)
    #: Maximum PDU length we receive (bytes); 0 means unlimited.
    max_pdu_size: int = Field(262144, ge=0)
    acse_timeout: float = Field(30.0, gt=0)
    dimse_timeout: float = Field(60.0, gt=0)
    network_timeout: float = Field(60.0, gt=0)
    #: Seconds a caller has, from the TCP connection, to send its A-ASSOCIATE-RQ;
    #: a connection that stays silent longer is closed.
    association_request_timeout: float = Field(5.0, gt=0)
    #: Open connections one address may hold at once; more are closed at accept.
    max_connections_per_host: int = Field(4, ge=1, le=1000)
    #: Seconds one PDU may take to arrive once it has begun (a caller trickling
    #: bytes is cut off, whatever network_timeout says).
    pdu_timeout: float = Field(30.0, gt=0)
    #: Also listen without TLS on ``port`` (false: only the TLS port, dicom.tls).
    listen_plain: bool = True
    #: DICOM TLS on a port of its own, beside (or instead of) the plain one.
    tls: ListenerTls = ListenerTls()
    #: Reject associations whose Called AE title is not ours.
    require_called_ae_title: bool = False
    #: Who may send.  The embedded default: any AE title, from this machine only.
    allowed_callers: list[AllowedCaller] = Field(
        default_factory=lambda: [AllowedCaller(ae_title="*", hosts=["127.0.0.1", "::1"])]
    )
    #: An object of a storage SOP class that is not an ECG input (SR, PR, KO, CT...;
    #: every storage class is accepted at negotiation so that a whole study can be
    #: sent): ``skip`` answers Success and records it in the ledger as skipped with
    #: the reason, keeping no bytes; ``refuse`` answers the failure 0x0122 "SOP
    #: class not supported" (PS3.7 C.5.20).  Our own results (and, with
    #: ``skip_ai_results``, other AIs' burned-in results) follow the same choice;
    #: under ``refuse`` they get 0xC001.  Such objects are never processed.
    non_ecg_objects: Literal["skip", "refuse"] = "skip"
    #: Never process an image another AI burned its result into (Burned In
    #: Annotation YES and a "Processing Algorithm" in Contributing Equipment).
    #: false: process it like any ECG image.  Our own results are never processed,
    #: whatever this says.
    skip_ai_results: bool = True

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, v: str) -> str:
        return check_ae_title(v)


class HttpSettings(Section):
    """The web viewer and HTTP API (:mod:`ecg_dicom.web`).

    The viewer shows patient data: bound to anything but loopback it needs
    ``token`` (the service refuses to start without one).  Behind a reverse proxy,
    list the names it is reached by in ``allowed_hosts``.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    #: The access token: sent as ``Authorization: Bearer <token>`` by API clients, or
    #: typed once on the viewer's sign-in page (then a session cookie).  Empty: no
    #: sign-in, allowed only while ``host`` is a loopback address.  Env:
    #: ``ECG_DICOM_HTTP__TOKEN``.
    token: str = Field("", repr=False)
    #: Host names (``Host`` header, port excluded) the service answers to besides
    #: ``localhost``, the loopback addresses and ``host``; others get HTTP 421
    #: (DNS rebinding).  ``["*"]`` accepts any (not recommended).
    allowed_hosts: list[str] = Field(default_factory=list)
    #: Largest accepted upload, in MB (HTTP 413 above).
    max_upload_mb: int = Field(64, ge=1, le=4096)
    #: Hours a viewer session (after sign-in) lasts.
    session_hours: float = Field(12.0, gt=0)


class RetentionSettings(Section):
    """Only jobs that are done (results delivered, or skipped) lose their files;
    failed and waiting jobs keep theirs until they are retried or removed."""

    #: Delete the spooled input and the SR/SC kept in the spool of a job done or
    #: skipped this many days ago (0: keep forever).  The job's row stays.
    inputs_days: float = Field(30.0, ge=0)
    #: Delete kept results (storage.output_dir) this many days old (0: keep forever).
    outputs_days: float = Field(30.0, ge=0)
    #: Also delete the oldest done jobs' files while the spool holds more than this
    #: many GB (0: no size limit).
    max_spool_gb: float = Field(0.0, ge=0)
    #: Minutes between two retention sweeps of ``serve`` (``ecg-dicom spool clean``
    #: runs one at once).
    interval_minutes: float = Field(10.0, gt=0)


class StorageSettings(Section):
    #: Received instances and the job ledger live here.
    spool_dir: Path = Path("var/spool")
    #: SR/SC kept for audit or when no destination is known.
    output_dir: Path = Path("var/outputs")
    #: fsync every received file before acknowledging it (leave on in production).
    fsync: bool = True
    #: Refuse new instances (0xA700) when less than this many MB are free.
    min_free_mb: int = Field(200, ge=0)
    #: When the inputs and results of finished jobs are deleted.
    retention: RetentionSettings = RetentionSettings()


class QueueSettings(Section):
    backend: Literal["sqlite", "redis"] = "sqlite"
    #: SQLite file of the embedded queue (default: inside the spool directory).
    sqlite_path: Path | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Worker threads started by ``serve`` (0: none, run ``ecg-dicom worker`` apart).
    workers: int = Field(1, ge=0, le=64)
    #: Attempts of the processing pipeline before a job is failed.
    max_attempts: int = Field(3, ge=1, le=100)
    #: Longest wait (seconds) between two attempts to reach a lost Redis (the wait
    #: doubles from 0.5 s).  One log line when Redis goes, one when it is back.
    redis_reconnect_max: float = Field(30.0, gt=0)
    #: Seconds between two reads of the ledger for jobs that are due but have no
    #: queue message (lost while Redis was unreachable, restarted empty or flushed):
    #: they are queued again, without a restart.
    requeue_interval: float = Field(30.0, gt=0)
    #: Workers on other hosts, with no shared filesystem (needs backend redis): each
    #: message names a job, the instance's bytes travel beside it in Redis, the
    #: worker sends the built SR and SC back through Redis and ``serve`` sends them
    #: on and records them (the ledger stays on the listener).  See docs/deploy.md.
    remote: bool = False
    #: remote: seconds a worker holds a job it is reading (renewed while it works);
    #: a job whose worker died is taken again once its lease expires.
    lease_seconds: float = Field(60.0, ge=1.0)
    #: remote: most jobs whose bytes are in Redis at once (Redis memory: this many
    #: ECGs); the rest wait in the ledger and are handed out as workers take jobs.
    window: int = Field(32, ge=1, le=100000)
    #: remote: seconds between two hand-outs of jobs waiting in the ledger.
    dispatch_interval: float = Field(0.5, gt=0)


class ModelSettings(Section):
    weights: Path = Path("weights/ecg-yolov8m.pt")
    #: Expected SHA-256 of the weights; empty: use the ``.sha256`` file beside them.
    sha256: str = ""
    #: auto (default): the fastest runtime shown to give PyTorch f32's label on every
    #: validation page, for this machine (see model.resolve_runtime): PyTorch on a CUDA
    #: GPU; else openvino-int8 on CPUs OpenVINO runs int8 on (7x ultralytics' predict on
    #: a 2-core AVX-512 VNNI EPYC); else onnx.  pytorch: the .pt itself, f32; onnx: ONNX
    #: Runtime on the f32 export (2x); openvino: OpenVINO on the f32 export (bf16 where
    #: the CPU has it natively: 3.9x); openvino-int8: NNCF int8, derived on first use.
    runtime: ModelRuntime = "auto"
    #: OpenVINO arithmetic of the layers that are not int8: auto lets OpenVINO choose
    #: (bf16 where the CPU has it natively, else f32); f32 forces full precision
    #: everywhere (runtime auto then picks onnx).
    precision: Literal["auto", "f32"] = "auto"
    device: str = "auto"
    #: Network input width in pixels: the size the shipped weights were trained at
    #: (see weights/MODEL_CARD.md); the height is 0.73 of it (608 at 832: a landscape page).
    imgsz: int = Field(832, ge=32, le=4096)
    #: Boxes below this confidence are discarded.
    conf: float = Field(0.05, ge=0.0, le=1.0)
    #: Abnormal when the abnormal score is at least this (see model.decide).
    abnormal_threshold: float = Field(0.5, ge=0.0, le=1.0)
    threads: int = Field(0, ge=0, le=256)
    #: Where derived runtime exports (ONNX, OpenVINO) are cached, keyed by checksum.
    export_cache_dir: Path = Path("var/model-cache")
    name: str = "ecg-dicom YOLOv8m"


class Destination(Section):
    """A DICOM peer that receives results (C-STORE SCP)."""

    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)
    #: Deliver over DICOM TLS (delivery.tls says which certificates).
    tls: bool = False

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, v: str) -> str:
        return check_ae_title(v)

    @property
    def where(self) -> str:
        """``AE@host:port``, as logs and job reasons name a destination."""
        return f"{self.ae_title}@{self.host}:{self.port}"


class DeliverySettings(Section):
    #: Results go back to the destination configured for the calling AE title.
    destinations: dict[str, Destination] = Field(default_factory=dict)
    #: ...and/or always to these.
    fixed_destinations: list[Destination] = Field(default_factory=list)
    #: Optional DICOMweb STOW-RS endpoint (e.g. http://pacs/dicom-web).
    stow_url: str = ""
    #: Keep a copy of every SR/SC in storage.output_dir for audit.
    keep_outputs: bool = False
    #: Hours a destination that cannot be reached (refused or dropped connection,
    #: timeout, TLS handshake, transient rejection or status 0xA7xx) keeps being
    #: retried before the job fails with the reason; meanwhile the job is
    #: "waiting" (for its destination), counted from its first failed attempt.
    #: A permanent refusal (0xA9xx, 0xCxxx, permanent rejection) fails at once.
    retry_window_hours: float = Field(72.0, gt=0)
    #: Seconds before the second attempt; the wait doubles after each failure...
    backoff_initial: float = Field(5.0, gt=0)
    #: ...up to this many seconds between two attempts.
    backoff_max: float = Field(600.0, gt=0)
    #: No longer used (retry_window_hours decides); accepted so that site files
    #: written for v0.1 still load, and not written out.
    max_attempts: int | None = Field(None, ge=1, exclude=True)
    timeout: float = Field(30.0, gt=0)
    #: Our AE title when we act as SCU (default: dicom.ae_title).
    calling_ae_title: str = ""
    #: Certificates for destinations marked ``tls: true``.
    tls: ClientTls = ClientTls()


class OutputSettings(Section):
    #: UID root for the SR/SC (PS3.5 9).  The default is pydicom's root; a site
    #: with its own registered root should set it here.
    uid_root: str = "1.2.826.0.1.3680043.8.498."
    manufacturer: str = "ecg-dicom project"
    institution_name: str = ""
    series_number_sc: int = Field(9901, ge=1)
    series_number_sr: int = Field(9902, ge=1)

    @field_validator("uid_root")
    @classmethod
    def _root(cls, v: str) -> str:
        digits = v.rstrip(".")
        if not digits or len(v) > 40 or any(
            not p.isdigit() or (len(p) > 1 and p[0] == "0") for p in digits.split(".")
        ):
            raise ValueError(
                f"{v!r} is not a UID root: use dotted numbers ending in '.', at most 40 characters"
            )
        return digits + "."


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: ``text``: one readable line per event (time, level, job id, calling AE, message);
    #: ``json``: one JSON object per line (for log collectors); ``auto``: text when
    #: stderr is a terminal, JSON otherwise.
    format: Literal["auto", "text", "json"] = "auto"
    #: Deprecated (v0.1): ``false`` means ``format: text``; ``format`` wins when set.
    json_format: bool | None = Field(None, exclude=True)


class AuditSettings(Section):
    """The audit trail: DICOM PS3.15 A.5 (IHE ATNA) audit messages, one per event.

    It names patients by Patient ID (never by name): the file is created 0600 in a
    0700 folder; only the service account and the security officer may read it.
    """

    enabled: bool = True
    #: Append the messages to this file (one XML message per line; empty: no file).
    path: str = "var/audit/audit.log"
    #: Also send them to this syslog receiver, ``host:port`` over UDP (RFC 5424/5426;
    #: empty: none).
    syslog: str = ""
