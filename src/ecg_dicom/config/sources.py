"""Where settings come from, besides the defaults: the site YAML file, the
environment (``ECG_DICOM_<SECTION>__<FIELD>``) and the command line; and how a
bad one is explained.  :mod:`ecg_dicom.config` holds the settings themselves.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import PydanticBaseSettingsSource

from ecg_dicom.errors import ConfigError

ENV_PREFIX = "ECG_DICOM_"
CONFIG_ENV = "ECG_DICOM_CONFIG"

#: Options given on the command line, as nested sections (set by load_settings).
COMMAND_LINE: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "ecg_dicom_command_line", default=None
)


class CommandLineSource(PydanticBaseSettingsSource):
    """The settings source of command-line options (``serve --port`` ...)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return COMMAND_LINE.get() or {}


def read_yaml(path: Path) -> dict[str, Any]:
    """The sections of a site YAML file, or a ConfigError saying what is wrong with it."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file {path} does not exist: check --config / {CONFIG_ENV}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping of sections")
    return loaded


def explain(exc: ValidationError, origin: str) -> str:
    """Every bad setting, the value found and where to fix it, one line each."""
    lines = [f"invalid configuration ({origin}):"]
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"])
        env = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (found {value!r})"
        hint = (
            "remove it or check its spelling"
            if err["type"] == "extra_forbidden"
            else "fix it in the site YAML or the environment variable " + env
        )
        lines.append(f"  - {name}{shown}: {err['msg']}; {hint}")
    return "\n".join(lines)
