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

