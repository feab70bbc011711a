"""Where relative path settings point, so every command works from any folder.

A path setting (``storage.spool_dir``, ``model.weights``, ``audit.path``, the TLS
files...) that is relative is made absolute by :func:`resolve_paths`, by where it
was written:

* in the site YAML file: against **that file's folder** (a site file and the
  certificates beside it move together);
* in an environment variable ``ECG_DICOM_<SECTION>__<FIELD>``: against the working
  folder (as a shell user expects);
* not set at all (the embedded default, e.g. ``var/spool``,
  ``weights/ecg-yolov8m.pt``): against the **ecg-dicom home**, :func:`home`.

The home is ``ECG_DICOM_HOME`` when set; else the checkout the package runs from
(``make serve``, ``pip install -e``: the shipped weights are its ``weights/``);
else ``$XDG_DATA_HOME/ecg-dicom`` (``~/.local/share/ecg-dicom``).  So ``ecg-dicom
classify`` run from any folder finds the shipped weights, and the spool of
``serve`` does not depend on the folder it was started from.

The settings themselves keep the relative defaults (``config/default.yaml`` shows
them); only the commands resolve them (:func:`ecg_dicom.cli.main` does, once).
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import BaseModel

import ecg_dicom
from ecg_dicom.config.sources import ENV_PREFIX

HOME_ENV = "ECG_DICOM_HOME"

M = TypeVar("M", bound=BaseModel)

#: Path settings typed as ``str`` (they may be empty: "none").
STR_PATHS: frozenset[tuple[str, ...]] = frozenset({("audit", "path")})


def checkout_root() -> Path | None:
    """The source checkout the package runs from, or None for an installed wheel."""
    root = Path(ecg_dicom.__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "src" / "ecg_dicom").is_dir():
        return root
    return None


def home() -> Path:
    """The folder the relative defaults live in (see the module's docstring)."""
    chosen = os.environ.get(HOME_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    root = checkout_root()
    if root is not None:
        return root
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "ecg-dicom"


def _is_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return Path in typing.get_args(annotation)
    return False


def path_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every path setting of a settings model, as dotted-name tuples."""
    found: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        here = (*prefix, name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += path_fields(annotation, here)
        elif _is_path(annotation) or here in STR_PATHS:
            found.append(here)
    return found


def _from_env(name: tuple[str, ...]) -> bool:
    wanted = (ENV_PREFIX + "__".join(name)).upper()
    return any(key.upper() == wanted for key in os.environ)


def _in_site(site: Mapping[str, Any], name: tuple[str, ...]) -> bool:
    node: Any = site
    for part in name:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return node is not None


def _get(model: BaseModel, name: tuple[str, ...]) -> Any:
    node: Any = model
    for part in name:
        node = getattr(node, part)
    return node


def _with(model: BaseModel, name: tuple[str, ...], value: Any) -> BaseModel:
    """A copy of ``model`` with the nested setting ``name`` replaced."""
    if len(name) == 1:
        return model.model_copy(update={name[0]: value})
    child = getattr(model, name[0])
    return model.model_copy(update={name[0]: _with(child, name[1:], value)})


def resolve_paths(
    settings: M, config_file: Path | str | None, site: Mapping[str, Any] | None = None
) -> M:
    """A copy of ``settings`` whose relative path settings are absolute (see the
    module's docstring).  ``site``: the sections read from ``config_file`` (read
    again when not given)."""
    config_dir = Path(config_file).expanduser().absolute().parent if config_file else None
    if site is None and config_file:
        from ecg_dicom.config.sources import read_yaml

        site = read_yaml(Path(config_file))
    site = site or {}
    resolved: BaseModel = settings
    for name in path_fields(type(settings)):
        value = _get(resolved, name)
        if value is None or str(value) == "":
            continue
        path = Path(value).expanduser()
        if path.is_absolute():
            if str(path) != str(value):
                resolved = _with(resolved, name, type(value)(path))
            continue
        if _from_env(name):
            base = Path.cwd()
        elif config_dir is not None and _in_site(site, name):
            base = config_dir
        else:
            base = home()
        resolved = _with(resolved, name, type(value)(base / path))
    return cast(M, resolved)
