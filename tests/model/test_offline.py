"""ultralytics prepared for a machine without a network, and kept off standard output."""

from __future__ import annotations

import subprocess
import sys


def test_ultralytics_logs_to_stderr_so_stdout_carries_only_results() -> None:
    """``classify --json`` prints one JSON document; the first run derives the model
    through ultralytics' exporter, whose chatter must not land in that document."""
    code = (
        "from ecg_dicom.model.offline import prepare_offline\n"
        "prepare_offline()\n"
        "from ultralytics.utils import LOGGER\n"
        "LOGGER.warning('exporter chatter')\n"
        "print('{}')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert run.stdout == "{}\n"
    assert "exporter chatter" in run.stderr


def test_pillow_keeps_its_own_open_once_ultralytics_is_imported() -> None:
    """ultralytics' ``Image.open`` would try to install pi-heif for bytes Pillow cannot
    identify (a JPEG-LS frame) and raise ModuleNotFoundError: the pages expect Pillow's
    UnidentifiedImageError, and nothing may be installed at run time."""
    code = (
        "import io\n"
        "from ecg_dicom.model.offline import prepare_offline\n"
        "prepare_offline()\n"
        "from ultralytics import YOLO\n"
        "from PIL import Image, UnidentifiedImageError\n"
        "try:\n"
        "    Image.open(io.BytesIO(b'not a picture Pillow knows'))\n"
        "except UnidentifiedImageError:\n"
        "    print('unidentified')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.stdout == "unidentified\n", run.stderr[-2000:]
    assert "AutoUpdate" not in run.stderr
