"""ultralytics without a network, with a bounded number of threads, and quiet.

ultralytics otherwise probes the network at import, tries to sync its settings and
downloads Arial.ttf for its plots; :func:`prepare_offline` prevents all three (and
sends ultralytics' log lines to standard error, where ours go, and gives Pillow its own
``Image.open`` back: ultralytics' replacement tries to install a package at run time).  The
runtime (PyTorch inference, exports) and training both call it before they first
import ultralytics.

:func:`quiet_library_output` keeps what ultralytics, NNCF, OpenVINO and torch print
while a runtime model is derived (about 40 lines: export banners, NNCF's ignored
nodes, progress bars) off the service's output: it goes to one DEBUG line.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("ecg_dicom.model")

#: The loggers of the libraries a model derivation drives; each has its own handler.
DERIVATION_LOGGERS = ("ultralytics", "nncf", "openvino", "torch")

#: Fonts ultralytics can use in place of the Arial.ttf it would download: Debian's
#: fonts-dejavu-core, else the DejaVu Sans that matplotlib bundles (on GPU images).
FALLBACK_FONTS = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),)


def _fallback_font() -> Path | None:
    for candidate in FALLBACK_FONTS:
        if candidate.exists():
            return candidate
    try:
        import matplotlib

        bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    except ImportError:
        return None
    return bundled if bundled.exists() else None


def prepare_offline(threads: int = 0) -> None:
    """Make ultralytics work without a network and with a bounded number of threads.

    Must run before ultralytics is first imported to stop its DNS probe
    (``YOLO_OFFLINE``); the settings sync, the font download, its log stream and its
    ``Image.open`` patch are handled after import, once per process.  ``threads`` > 0
    caps PyTorch's intra-op threads, including the value ultralytics resets them to
    when it selects the CPU.  Every import of ultralytics in the package comes after a
    call (the detector's NMS included).
    """
    _offline_once()
    if threads > 0:
        import torch
        from ultralytics.utils import torch_utils

        torch.set_num_threads(threads)
        torch_utils.NUM_THREADS = threads  # select_device() resets torch threads to this


@functools.cache
def _offline_once() -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    if SETTINGS.get("sync", True):
        SETTINGS.update({"sync": False})
    font = Path(USER_CONFIG_DIR) / "Arial.ttf"
    fallback = _fallback_font()
    if not font.exists() and fallback is not None:
        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fallback, font)
    _log_to_stderr()
    _restore_pillow_open()


def _log_to_stderr() -> None:
    """ultralytics logs to standard output; ours is for results (``classify --json``
    prints one JSON document there, which the first run's model derivation must not
    break), so its messages go to standard error like every other log line."""
    for handler in logging.getLogger("ultralytics").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


def _restore_pillow_open() -> None:
    """Undo ultralytics' patch of ``PIL.Image.open``.

    On importing, ultralytics replaces ``Image.open`` process-wide with a wrapper that,
    on bytes Pillow cannot identify, tries to pip-install ``pi-heif`` (a download, at run
    time) and then raises ModuleNotFoundError instead of Pillow's
    UnidentifiedImageError.  The pages read pictures with Pillow (a JPEG-LS or RLE
    frame is one Pillow cannot identify), and the service must never install anything.
    """
    from PIL import Image
    from ultralytics.utils import patches

    original = getattr(patches, "_image_open", None)
    if original is not None:
        Image.open = original


@contextlib.contextmanager
def quiet_library_output() -> Iterator[None]:
    """Keep the libraries' own output of a model derivation off the service's output.

    Inside: the loggers of :data:`DERIVATION_LOGGERS` pass only errors, and what is
    written to ``sys.stdout``/``sys.stderr`` (banners, progress bars, warnings) is
    collected and logged as one DEBUG line at the end.  With the root logger at DEBUG
    nothing is held back.  Our own log handler keeps the stream it was given, so the
    service's lines (other threads included) are not affected; another thread's
    ``print`` during a derivation would be collected too (nothing of ours prints).
    """
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    # Imported first: each library makes its handler (on the real streams) and sets its
    # logger's level when imported, which would undo the levels set here.
    prepare_offline()
    for library in ("openvino", "nncf"):
        with contextlib.suppress(ImportError):
            importlib.import_module(library)
    loggers = [logging.getLogger(name) for name in DERIVATION_LOGGERS]
    levels = [logger.level for logger in loggers]
    collected = io.StringIO()
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(collected), contextlib.redirect_stderr(collected):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if collected.getvalue().strip():
            log.debug("output of the model derivation:\n%s", collected.getvalue())
