"""Process-wide library settings, made once, visibly, at start.

pynetdicom's ``apps/qrscp`` habit: every switch that changes a library for the
whole process is set here and nowhere else, by the CLI at start
(:func:`configure_process`) and by the tests and benchmarks that run the parts
in-process (:func:`configure_libraries`, :func:`configure_receiving`).

* Logging: one JSON or text handler on the root logger (``logging.format``); the
  libraries' routine lines (pynetdicom, huey, highdicom, uvicorn, ultralytics...)
  only at DEBUG (:mod:`ecg_dicom.logs`).
* pydicom reads tolerantly (real carts write e.g. UIDs with empty components);
  the builders are strict when writing.
* A listener receives each data set straight into the spool's ``tmp/`` folder
  (pynetdicom's chunked receive), on the same file system as the spool, so
  adopting a received instance is a rename.  pynetdicom opens that file with
  ``tempfile.NamedTemporaryFile``, named in ``pynetdicom.dimse_messages``; the
  listener gives its own (``open_file``: :class:`ecg_dicom.dicom.receive.ReceivedFiles`),
  so that a full disk is answered 0xA700 instead of killing the association and
  a transfer cut short leaves no file.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
from pynetdicom import _config as pynetdicom_config
from pynetdicom import dimse_messages

from ecg_dicom.config import LoggingSettings, Settings
from ecg_dicom.logs import configure_logging


def configure_process(settings: Settings) -> None:
    """Logging and the library settings, for every command (the CLI calls it)."""
    configure_logging(settings.logging.level, json_logs(settings.logging))
    configure_libraries()


def json_logs(logging_settings: LoggingSettings) -> bool:
    """Whether log lines are JSON: ``logging.format``, ``auto`` being text on a terminal
    (stderr) and JSON otherwise; the deprecated ``json_format: false`` means text."""
    chosen = logging_settings.format
    if chosen == "auto" and logging_settings.json_format is False:
        chosen = "text"
    if chosen == "auto":
        return not sys.stderr.isatty()
    return chosen == "json"


def configure_libraries() -> None:
    """The library settings every process of ecg-dicom runs with (the tests and the
    benchmarks that run the parts in-process call it too)."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


def configure_receiving(tmp_dir: Path, open_file: Callable[..., Any] | None = None) -> None:
    """Write received data sets as they arrive into ``tmp_dir`` (the spool's ``tmp/``).

    ``open_file`` replaces the ``NamedTemporaryFile(delete=False, mode="wb",
    suffix=".dcm")`` pynetdicom opens each data set with (it must write into
    ``tmp_dir`` itself); without it pynetdicom's own writes into ``tmp_dir``.
    """
    pynetdicom_config.STORE_RECV_CHUNKED_DATASET = True
    tempfile.tempdir = str(tmp_dir)
    if open_file is not None:
        dimse_messages.NamedTemporaryFile = open_file  # type: ignore[assignment]
