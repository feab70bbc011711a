"""Orthanc (Debian package) run as a plain process, as a test PACS on loopback.

Configured by a JSON file in a temporary folder: free DICOM and HTTP ports,
no remote access, no authentication, ecg-dicom declared as a modality.
Readiness is awaited by polling its REST API.  ``TCP_NODELAY=1`` is set.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers import _stop, dcmtk_env, free_port, require_tool

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


@dataclass
class Orthanc:
    aet: str
    dicom_port: int
    http_port: int
    proc: subprocess.Popen[bytes]

    def rest(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method
        )
        with urllib.request.urlopen(req, timeout=120) as rsp:
            payload = rsp.read()
        return json.loads(payload) if payload[:1] in (b"{", b"[") else payload

    def upload(self, path: Path) -> str:
        """POST /instances: store a file in Orthanc; returns its Orthanc instance id."""
        return str(self.rest("POST", "/instances", raw=path.read_bytes())["ID"])

    def send_to(self, modality: str, instance_id: str) -> None:
        """Orthanc sends an instance by C-STORE to a declared modality."""
        self.rest("POST", f"/modalities/{modality}/store",
                  {"Resources": [instance_id], "Synchronous": True})

    def instances_of_study(self, study_uid: str) -> list[dict[str, Any]]:
        ids = self.rest("POST", "/tools/find",
                        {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}})
        return [self.rest("GET", f"/instances/{i}/simplified-tags") | {"ID": i} for i in ids]


@contextlib.contextmanager
def run_orthanc(workdir: Path, modalities: dict[str, Any],
                aet: str = "ORTHANC", dicomweb: bool = False,
                lua: str | None = None, extra: dict[str, Any] | None = None) -> Iterator[Orthanc]:
    """Orthanc on free loopback ports; ``lua``: the text of a Lua script it runs
    (e.g. an auto-routing rule), written beside its configuration; ``extra``: more
    configuration options (e.g. DICOM TLS)."""
    exe = require_tool("Orthanc")
    workdir.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port = free_port(), free_port()
    config = {
        "Name": "ecg-dicom-test",
        "DicomAet": aet,
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "DicomModalities": modalities,
        "DicomCheckCalledAet": False,
        "UnknownSopClassAccepted": True,
        "Plugins": [str(DICOMWEB_PLUGIN)] if dicomweb else [],
    }
    config.update(extra or {})
    if lua is not None:
        (workdir / "rules.lua").write_text(lua)
        config["LuaScripts"] = [str(workdir / "rules.lua")]
    cfg = workdir / "orthanc.json"
    cfg.write_text(json.dumps(config))
    log = open(workdir / "orthanc.log", "wb")  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen([exe, str(cfg)], stdout=log, stderr=subprocess.STDOUT, env=dcmtk_env())
    orthanc = Orthanc(aet, dicom_port, http_port, proc)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log_tail = (workdir / "orthanc.log").read_text()[-3000:]
                raise RuntimeError(f"Orthanc exited: {log_tail}")
            try:
                orthanc.rest("GET", "/system")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise TimeoutError("Orthanc did not answer in 30 s") from None
                time.sleep(0.05)
        yield orthanc
    finally:
        _stop(proc)
        log.close()
