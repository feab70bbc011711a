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
from typing import Any

import yaml
from pydantic import ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ecg_dicom.config.limits import LimitsSettings
from ecg_dicom.config.paths import home, resolve_paths
from ecg_dicom.config.sections import (
    MODEL_RUNTIMES,
    AllowedCaller,
    AuditSettings,
    DeliverySettings,
    Destination,
    DicomSettings,
    HttpSettings,
    LoggingSettings,
    ModelRuntime,
    ModelSettings,
    OutputSettings,
    QueueSettings,
    RetentionSettings,
    StorageSettings,
)
from ecg_dicom.config.sources import (
    COMMAND_LINE,
    CONFIG_ENV,
    ENV_PREFIX,
    CommandLineSource,
    explain,
    read_yaml,
)
from ecg_dicom.config.tls import ClientTls, ListenerTls
from ecg_dicom.errors import ConfigError

__all__ = [
    "MODEL_RUNTIMES",
    "AllowedCaller",
    "AuditSettings",
    "ClientTls",
    "DeliverySettings",
    "Destination",
    "DicomSettings",
    "HttpSettings",
    "LimitsSettings",
    "ListenerTls",
    "LoggingSettings",
    "ModelRuntime",
    "ModelSettings",
    "OutputSettings",
    "QueueSettings",
    "RetentionSettings",
    "Settings",
    "StorageSettings",
    "default_yaml",
    "home",
    "load_command_settings",
    "load_settings",
    "resolve_paths",
]


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
    limits: LimitsSettings = LimitsSettings()
    audit: AuditSettings = AuditSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.delivery.backoff_max < self.delivery.backoff_initial:
            raise ValueError("delivery.backoff_max must be at least delivery.backoff_initial")
        tls = self.dicom.tls
        if not self.dicom.listen_plain and not tls.enabled:
            raise ValueError(
                "dicom.listen_plain is false and dicom.tls.enabled is false: nothing would "
                "listen; enable one of them"
            )
        if tls.enabled and (tls.certificate is None or tls.private_key is None):
            raise ValueError("dicom.tls.enabled needs dicom.tls.certificate and private_key")
        if tls.require_client_certificate and tls.client_ca is None:
            raise ValueError(
                "dicom.tls.require_client_certificate needs dicom.tls.client_ca (the CAs "
                "whose client certificates are accepted)"
            )
        if tls.enabled and self.dicom.listen_plain and tls.port == self.dicom.port:
            raise ValueError("dicom.tls.port must differ from dicom.port")
        if self.queue.remote and self.queue.backend != "redis":
            raise ValueError("queue.remote needs queue.backend: redis (workers on other hosts "
                             "take their jobs from Redis)")
        client = self.delivery.tls
        if (client.certificate is None) != (client.private_key is None):
            raise ValueError("delivery.tls.certificate and delivery.tls.private_key go together")
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


def load_command_settings(
    config_file: Path | str | None = None, command_line: dict[str, Any] | None = None
) -> Settings:
    """:func:`load_settings`, then every relative path setting made absolute
    (:func:`ecg_dicom.config.paths.resolve_paths`): what the commands run with."""
    settings = load_settings(config_file, command_line)
    path = config_file or os.environ.get(CONFIG_ENV) or None
    return resolve_paths(settings, path, read_yaml(Path(path)) if path else None)


def default_yaml() -> str:
    """The embedded defaults as YAML (the content of ``config/default.yaml``)."""
    return yaml.safe_dump(Settings().model_dump(mode="json"), sort_keys=False)
