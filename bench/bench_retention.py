"""Disk use per ECG before and after retention, and the audit trail it leaves.

Sends N real ECGs (new UIDs each) with dcmtk storescu to a real ``ecg-dicom serve`` that
delivers to a storescp PACS, then prints, as JSON lines:

* ``age`` mode: the spool after processing (retention sweeps off), then after one
  ``ecg-dicom spool clean`` with ``inputs_days`` ~0 (every done job's files removed);
* ``size`` mode: ``storage.retention.max_spool_gb`` 0.008 (8.6 MB) with a sweep every 3 s:
  the spool's peak while the ECGs stream in;
* both: the audit messages written, by EventID/EventActionCode.

Run: ``PYTHONPATH=tests .venv/bin/python bench/bench_retention.py [--count 20] [--mode age|size]``
(needs dcmtk; about a minute per 10 ECGs on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from ecg_dicom.jobs.retention import folder_bytes
from peers import run_storescp
from realdata import copies_with_new_uids, real_ecg_paths
from serve_proc import ServeProcess, run_tool


def spool_figures(spool: Path) -> dict[str, int]:
    return {
        "spool": folder_bytes(spool),
        "instances": folder_bytes(spool / "instances"),
        "results": folder_bytes(spool / "results"),
    }


EVENT = re.compile(r'EventID csd-code="(\d+)"')
ACTION = re.compile(r'EventActionCode="(\w)"')


def event_of(message: str) -> tuple[str, str]:
    """(EventID code, EventActionCode) of one audit message."""
    event, action = EVENT.search(message), ACTION.search(message)
    return (event.group(1) if event else "?", action.group(1) if action else "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--mode", choices=("age", "size"), default="age")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-retention-"))
    files = copies_with_new_uids(real_ecg_paths(), root / "send", args.count)
    retention: dict[str, Any] = {"inputs_days": 0, "outputs_days": 0}
    if args.mode == "size":
        retention.update(max_spool_gb=0.008, interval_minutes=0.05)
    started = time.monotonic()
    with run_storescp(root / "pacs") as (pacs_port, _):
        config = {
            "storage": {"retention": retention},
            "delivery": {"destinations": {"STORESCU": {
                "ae_title": "PACS", "host": "127.0.0.1", "port": pacs_port}}},
        }
        service = ServeProcess(root / "service", config)
        service.workdir.mkdir(exist_ok=True)
        service.start()
        peak = 0
        try:
            for first in range(0, len(files), 5):
                sent = run_tool("storescu", "-aec", "ECGDICOM", "127.0.0.1",
                                str(service.dicom_port), *map(str, files[first:first + 5]))
                if sent.returncode != 0:
                    sys.exit(f"storescu failed: {sent.stderr[-2000:]}")
                peak = max(peak, folder_bytes(service.spool_dir))
            service.wait_jobs(len(files), states=("done",), timeout=1800)
            if args.mode == "size":
                time.sleep(4)  # a last sweep
            peak = max(peak, folder_bytes(service.spool_dir))
            processed = spool_figures(service.spool_dir)
        finally:
            service.stop()
    print(json.dumps({
        "ecgs": len(files), "mode": args.mode,
        "sent_bytes": sum(f.stat().st_size for f in files),
        "after_processing": processed, "peak_spool_bytes": peak,
        "seconds": round(time.monotonic() - started, 1),
    }))
    if args.mode == "age":
        site = service.workdir / "site.yaml"
        config = yaml.safe_load(site.read_text())
        config["storage"]["retention"] = {"inputs_days": 1e-6, "outputs_days": 0}
        site.write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECG_DICOM_")}
        cleaned = subprocess.run(
            [sys.executable, "-m", "ecg_dicom", "--config", str(site), "spool", "clean"],
            cwd=service.workdir, capture_output=True, text=True, env=env, check=False,
        )
        print(json.dumps({"spool_clean": cleaned.stdout.strip(), "exit": cleaned.returncode,
                          "after_clean": spool_figures(service.spool_dir)}))
    audit = (service.workdir / "var" / "audit" / "audit.log").read_text().splitlines()
    events = Counter("/".join(event_of(line)) for line in audit)
    print(json.dumps({"audit_messages": len(audit), "audit_bytes": sum(map(len, audit)),
                      "by_event": dict(sorted(events.items()))}))


if __name__ == "__main__":
    main()
