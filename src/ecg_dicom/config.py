"""The one typed configuration of ecg-dicom.

Sources, lowest priority first:

1. the embedded defaults below (``config/default.yaml`` is the same values,
   written out for people to read and copy; a test keeps them equal);
2. a site YAML file, given with ``--config FILE`` or ``ECG_DICOM_CONFIG``;
3. environment variables ``ECG_DICOM_<SECTION>__<FIELD>``, for example
   ``ECG_DICOM_DICOM__PORT=104`` or ``ECG_DICOM_MODEL__RUNTIME=onnx``;
4. the few command-line options that are settings (``serve --port``), merged
   before validation like the others.

Invalid settings stop start-up with :class:`ConfigError`, whose message names
each bad setting, the value found and what to do about it.  Nothing else in the
package reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ecg_dicom.config_sources import (
    COMMAND_LINE,
    CONFIG_ENV,
    ENV_PREFIX,
    CommandLineSource,
    explain,
    read_yaml,
)
from ecg_dicom.errors import ConfigError

#: The values of ``model.runtime``: written once here, read by the model runtime
#: (``resolve_runtime``), the derivation cache and the CLI choices.
ModelRuntime = Literal["auto", "pytorch", "onnx", "openvino", "openvino-int8"]
MODEL_RUNTIMES: tuple[str, ...] = get_args(ModelRuntime)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_ae_title(value: str) -> str:
    """AE titles are 1-16 characters of the DICOM default repertoire, no backslash
    (PS3.5 6.2, VR AE)."""
    stripped = value.strip()
    if not stripped or len(stripped) > 16 or "\\" in stripped or not stripped.isprintable():
        raise ValueError(
            f"{value!r} is not a valid AE title: use 1 to 16 printable characters, no backslash"
        )
    return stripped


class AllowedCaller(_Section):
    """One entry of the calling-AE allow-list.  ``ae_title`` "*" matches any AE
    title; ``hosts`` (IP addresses) empty means any address."""

    ae_title: str = "*"
    hosts: list[str] = Field(default_factory=list)

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, v: str) -> str:
        return v if v == "*" else _check_ae_title(v)


class DicomSettings(_Section):
    ae_title: str = "ECGDICOM"
    bind_address: str = "0.0.0.0"
    port: int = Field(11112, ge=1, le=65535)
    max_associations: int = Field(10, ge=1, le=1000)
    #: Maximum PDU length we receive (bytes); 0 means unlimited.
    max_pdu_size: int = Field(262144, ge=0)
    acse_timeout: float = Field(30.0, gt=0)
    dimse_timeout: float = Field(60.0, gt=0)
    network_timeout: float = Field(60.0, gt=0)
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
        return _check_ae_title(v)


class HttpSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class StorageSettings(_Section):
    #: Received instances and the job ledger live here.
    spool_dir: Path = Path("var/spool")
    #: SR/SC kept for audit or when no destination is known.
    output_dir: Path = Path("var/outputs")
    #: fsync every received file before acknowledging it (leave on in production).
    fsync: bool = True
    #: Refuse new instances (0xA700) when less than this many MB are free.
    min_free_mb: int = Field(200, ge=0)


class QueueSettings(_Section):
    backend: Literal["sqlite", "redis"] = "sqlite"
    #: SQLite file of the embedded queue (default: inside the spool directory).
    sqlite_path: Path | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Worker threads started by ``serve`` (0: none, run ``ecg-dicom worker`` apart).
    workers: int = Field(1, ge=0, le=64)
    #: Attempts of the processing pipeline before a job is failed.
    max_attempts: int = Field(3, ge=1, le=100)


class ModelSettings(_Section):
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


class Destination(_Section):
    """A DICOM peer that receives results (C-STORE SCP)."""

    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, v: str) -> str:
        return _check_ae_title(v)

    @property
    def where(self) -> str:
        """``AE@host:port``, as logs and job reasons name a destination."""
        return f"{self.ae_title}@{self.host}:{self.port}"


class DeliverySettings(_Section):
    #: Results go back to the destination configured for the calling AE title.
    destinations: dict[str, Destination] = Field(default_factory=dict)
    #: ...and/or always to these.
    fixed_destinations: list[Destination] = Field(default_factory=list)
    #: Optional DICOMweb STOW-RS endpoint (e.g. http://pacs/dicom-web).
    stow_url: str = ""
    #: Keep a copy of every SR/SC in storage.output_dir for audit.
    keep_outputs: bool = False
    max_attempts: int = Field(8, ge=1, le=1000)
    backoff_initial: float = Field(5.0, gt=0)
    backoff_max: float = Field(600.0, gt=0)
    timeout: float = Field(30.0, gt=0)
    #: Our AE title when we act as SCU (default: dicom.ae_title).
    calling_ae_title: str = ""


class OutputSettings(_Section):
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


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = True


class Settings(BaseSettings):
    """Everything ecg-dicom can be told.  See ``config/default.yaml``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
    )

    dicom: DicomSettings = DicomSettings()
    http: HttpSettings = HttpSettings()
    storage: StorageSettings = StorageSettings()
    queue: QueueSettings = QueueSettings()
    model: ModelSettings = ModelSettings()
    delivery: DeliverySettings = DeliverySettings()
    output: OutputSettings = OutputSettings()
    logging: LoggingSettings = LoggingSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.delivery.backoff_max < self.delivery.backoff_initial:
            raise ValueError("delivery.backoff_max must be at least delivery.backoff_initial")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Command-line options beat the environment, which beats the site file
        # (passed as init kwargs by load_settings); all are validated together.
        return (CommandLineSource(settings_cls), env_settings, init_settings)

    @property
    def queue_path(self) -> Path:
        return self.queue.sqlite_path or self.storage.spool_dir / "queue.sqlite3"

    def masked(self) -> dict[str, Any]:
        """The effective configuration for the start-up log, secrets masked."""
        data = self.model_dump(mode="json")
        url = data["queue"]["redis_url"]
        if "@" in url:
            data["queue"]["redis_url"] = url.split("://")[0] + "://***@" + url.split("@", 1)[1]
        return data


def load_settings(
    config_file: Path | str | None = None, command_line: dict[str, Any] | None = None
) -> Settings:
    """Build the settings from defaults, the site file, the environment and the
    command line's options (``{"dicom": {"port": 11113}}``), in rising priority,
    validated together.

    The site file defaults to the path in ``ECG_DICOM_CONFIG`` when set.
    """
    path = config_file or os.environ.get(CONFIG_ENV) or None
    site = read_yaml(Path(path)) if path else {}
    origin = f"defaults + {path} + environment" if path else "defaults + environment"
    if command_line:
        origin += " + command line"
    token = COMMAND_LINE.set(command_line)
    try:
        return Settings(**site)
    except ValidationError as exc:
        raise ConfigError(explain(exc, origin)) from None
    finally:
        COMMAND_LINE.reset(token)


def default_yaml() -> str:
    """The embedded defaults as YAML (the content of ``config/default.yaml``)."""
    return yaml.safe_dump(Settings().model_dump(mode="json"), sort_keys=False)
