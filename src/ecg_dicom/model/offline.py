"""ultralytics without a network and with a bounded number of threads.

ultralytics otherwise probes the network at import, tries to sync its settings and
downloads Arial.ttf for its plots; :func:`prepare_offline` prevents all three (and
sends ultralytics' log lines to standard error, where ours go).  The
runtime (PyTorch inference, exports) and training both call it before they first
import ultralytics.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

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
    (``YOLO_OFFLINE``); the settings sync and the font download are handled after
    import.  ``threads`` > 0 caps PyTorch's intra-op threads, including the value
    ultralytics resets them to when it selects the CPU.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR, torch_utils

    if SETTINGS.get("sync", True):
        SETTINGS.update({"sync": False})
    font = Path(USER_CONFIG_DIR) / "Arial.ttf"
    fallback = _fallback_font()
    if not font.exists() and fallback is not None:
        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fallback, font)
    _log_to_stderr()
    if threads > 0:
        torch.set_num_threads(threads)
        torch_utils.NUM_THREADS = threads  # select_device() resets torch threads to this


def _log_to_stderr() -> None:
    """ultralytics logs to standard output; ours is for results (``classify --json``
    prints one JSON document there, which the first run's model derivation must not
    break), so its messages go to standard error like every other log line."""
    for handler in logging.getLogger("ultralytics").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
