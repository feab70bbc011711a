"""Delivery against real peers on loopback: dcmtk ``storescp``, pynetdicom SCPs that
answer with chosen statuses, raw sockets for what no SCP does on purpose, and a
local HTTP server for STOW-RS.  Each case checks the kind of DeliveryError
(transient: retry; permanent: do not) and, for success, that the objects arrived.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import pydicom
import pytest
from pydicom import Dataset, examples
from pydicom.uid import CTImageStorage, SecondaryCaptureImageStorage
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_STORE

from ecg_dicom.config import Destination, Settings
from ecg_dicom.dicom.negotiation import sr_fits_class
from ecg_dicom.dicom.scu import destinations_for, send_outputs
from ecg_dicom.dicom.stow import stow_outputs
from ecg_dicom.errors import DeliveryError
from ecg_dicom.pages import page_from_dataset
from ecg_dicom.records import Classification, Detection, Outputs
from ecg_dicom.results import build_outputs
from peers import LOOPBACK, dciodvfy, free_port, run_storescp, wait_for_port

pytestmark = pytest.mark.integration

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def outputs() -> Outputs:
    source = examples.waveform
    page = page_from_dataset(source)
    region = page.regions[1]
    result = Classification(
        label="Abnormal", class_name="MI-ECG", confidence=0.9, abnormal_score=0.9,
        detections=(Detection("MI-ECG", 0.9, (region.x0, region.y0, region.x1, region.y1)),),
        model_name="ecg-dicom YOLOv8m", model_version="ab" * 32,
    )
    return build_outputs(source, page, result, Settings())


def _datasets(outputs: Outputs) -> list[Dataset]:
    return [outputs.sc, outputs.sr]  # type: ignore[list-item]


def _send(
    outputs: Outputs, port: int, ae_title: str = "STORESCP", timeout: float = TIMEOUT
) -> None:
    send_outputs(_datasets(outputs), Destination(ae_title=ae_title, host=LOOPBACK, port=port),
                 calling_ae="ECGDICOM", timeout=timeout)


# --- dcmtk storescp -------------------------------------------------------------


def test_objects_arrive_at_storescp(outputs: Outputs, tmp_path: Path) -> None:
    received = tmp_path / "received"
    with run_storescp(received) as (port, _proc):
        _send(outputs, port)
    stored = {pydicom.dcmread(p).SOPInstanceUID: p for p in received.iterdir()}
    assert set(stored) == {outputs.sc.SOPInstanceUID, outputs.sr.SOPInstanceUID}  # type: ignore[attr-defined]
    sr = pydicom.dcmread(stored[outputs.sr.SOPInstanceUID])  # type: ignore[attr-defined]
    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR
    assert sr.StudyInstanceUID == examples.waveform.StudyInstanceUID


def test_sending_twice_stores_the_same_instances(outputs: Outputs, tmp_path: Path) -> None:
    """Deterministic UIDs: a re-send overwrites, it never adds a second result."""
    received = tmp_path / "received"
    with run_storescp(received) as (port, _proc):
        _send(outputs, port)
        _send(outputs, port)
    uids = sorted(pydicom.dcmread(p).SOPInstanceUID for p in received.iterdir())
    assert len(set(uids)) == 2


_PROFILE = """
[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = LittleEndianImplicit
[[PresentationContexts]]
[Offered]
PresentationContext1 = VerificationSOPClass\\Uncompressed
PresentationContext2 = SecondaryCaptureImageStorage\\Uncompressed
{sr_lines}
[[Profiles]]
[Offered]
PresentationContexts = Offered
"""


def _storescp_config(folder: Path, sr_classes: list[str]) -> Path:
    """A dcmtk association profile: SC uncompressed only, and only ``sr_classes``."""
    lines = "\n".join(
        f"PresentationContext{i} = {name}\\Uncompressed" for i, name in enumerate(sr_classes, 3)
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "storescp.cfg"
    path.write_text(_PROFILE.format(sr_lines=lines))
    return path


@pytest.mark.parametrize(
    ("offered", "expected"),
    [(["ComprehensiveSRStorage", "EnhancedSRStorage"], "1.2.840.10008.5.1.4.1.1.88.33"),
     (["EnhancedSRStorage"], "1.2.840.10008.5.1.4.1.1.88.22")],
)
def test_pacs_without_3d_sr_gets_the_next_sr_class_and_an_uncompressed_sc(
    outputs: Outputs, tmp_path: Path, offered: list[str], expected: str
) -> None:
    config = _storescp_config(tmp_path, offered)
    received = tmp_path / "received"
    with run_storescp(received, "-xf", str(config), "Offered",
                      accept_all=False) as (port, _proc):
        sent = send_outputs(_datasets(outputs), Destination(ae_title="STORESCP", host=LOOPBACK,
                            port=port), calling_ae="ECGDICOM", timeout=TIMEOUT)
    stored = [pydicom.dcmread(p) for p in received.iterdir()]
    [sr] = [d for d in stored if d.Modality == "SR"]
    [sc] = [d for d in stored if d.Modality != "SR"]
    assert sr.SOPClassUID == expected
    # Another class is another instance: its own UID, derived (a re-send stays idempotent).
    assert sr.SOPInstanceUID != outputs.sr.SOPInstanceUID  # type: ignore[attr-defined]
    assert sr.ContentSequence == outputs.sr.ContentSequence  # type: ignore[attr-defined]
    assert not sc.file_meta.TransferSyntaxUID.is_compressed
    assert sc.SOPInstanceUID == outputs.sc.SOPInstanceUID  # type: ignore[attr-defined]
    assert np.array_equal(sc.pixel_array, outputs.sc.pixel_array)  # type: ignore[attr-defined]
    [sr_sent] = [s for s in sent if s.modality == "SR"]
    assert sr_sent.sop_class_uid == expected and sr_sent.sop_instance_uid == sr.SOPInstanceUID
    assert "does not accept Comprehensive 3D SR" in sr_sent.fallback
    errors, _ = dciodvfy(received / next(p.name for p in received.iterdir()
                                                 if pydicom.dcmread(p).Modality == "SR"))
    assert errors == [], errors


def test_pacs_with_no_sr_class_is_a_permanent_failure(outputs: Outputs, tmp_path: Path) -> None:
    config = _storescp_config(tmp_path, [])
    with run_storescp(tmp_path / "received", "-xf", str(config), "Offered",
                      accept_all=False) as (port, _proc), \
            pytest.raises(DeliveryError) as info:
        _send(outputs, port)
    assert info.value.transient is False
    assert "Comprehensive 3D SR" in str(info.value) and "Enhanced SR" in str(info.value)


def test_sr_fits_class_refuses_3d_coordinates() -> None:
    sr = Dataset()
    item = Dataset()
    item.ValueType = "SCOORD3D"
    sr.ContentSequence = [item]
    assert sr_fits_class(sr, "1.2.840.10008.5.1.4.1.1.88.34")
    assert not sr_fits_class(sr, "1.2.840.10008.5.1.4.1.1.88.33")
    by_reference = Dataset()
    by_reference.ReferencedContentItemIdentifier = [1, 1]
    sr.ContentSequence = [by_reference]
    assert sr_fits_class(sr, "1.2.840.10008.5.1.4.1.1.88.33")
    assert not sr_fits_class(sr, "1.2.840.10008.5.1.4.1.1.88.22")


def test_refused_connection_is_transient(outputs: Outputs) -> None:
    with pytest.raises(DeliveryError) as info:
        _send(outputs, free_port())
    assert info.value.transient is True
    assert info.value.status is None


def test_storescp_refusing_the_association_is_permanent(outputs: Outputs, tmp_path: Path) -> None:
    with run_storescp(tmp_path / "r", "--refuse") as (port, _proc), \
            pytest.raises(DeliveryError) as info:
        _send(outputs, port)
    assert info.value.transient is False
    assert "rejected" in str(info.value).lower()


def test_storescp_aborting_is_transient(outputs: Outputs, tmp_path: Path) -> None:
    with run_storescp(tmp_path / "r", "--abort-after") as (port, _proc), \
            pytest.raises(DeliveryError) as info:
        _send(outputs, port)
    assert info.value.transient is True


# --- pynetdicom SCPs answering with chosen statuses -----------------------------


@pytest.fixture
def status_scp() -> Iterator[tuple[int, dict[str, Any]]]:
    """A pynetdicom Storage SCP whose C-STORE answer is ``state['status']``."""
    state: dict[str, Any] = {"status": 0x0000, "received": []}

    def on_store(event: evt.Event) -> int:
        state["received"].append(cast(C_STORE, event.request).AffectedSOPInstanceUID)
        return int(state["status"])

    ae = AE(ae_title="STATUSSCP")
    ae.add_supported_context(SecondaryCaptureImageStorage)
    ae.add_supported_context(COMPREHENSIVE_3D_SR)
    port = free_port()
    server = ae.start_server((LOOPBACK, port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert server is not None
    try:
        wait_for_port(LOOPBACK, port, 10)
        yield port, state
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("status", "transient"),
    [(0xA700, True), (0xA7FF, True), (0xA900, False), (0xC000, False), (0xC123, False),
     (0x0122, False), (0x0110, False)],
)
def test_failure_statuses(outputs: Outputs, status_scp: tuple[int, dict[str, Any]],
                          status: int, transient: bool) -> None:
    port, state = status_scp
    state["status"] = status
    with pytest.raises(DeliveryError) as info:
        _send(outputs, port, "STATUSSCP")
    assert info.value.transient is transient
    assert info.value.status == status
    # Stopped at the first refusal: the SC was tried, the SR was not sent after it.
    assert state["received"] == [outputs.sc.SOPInstanceUID]  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [0x0000, 0xB000, 0xB007])
def test_success_and_warning_statuses_deliver_sc_then_sr(
    outputs: Outputs, status_scp: tuple[int, dict[str, Any]], status: int
) -> None:
    port, state = status_scp
    state["status"] = status
    _send(outputs, port, "STATUSSCP")
    assert state["received"] == [outputs.sc.SOPInstanceUID, outputs.sr.SOPInstanceUID]  # type: ignore[attr-defined]


def test_sr_first_in_the_call_is_still_sent_after_the_sc(
    outputs: Outputs, status_scp: tuple[int, dict[str, Any]]
) -> None:
    port, state = status_scp
    send_outputs([outputs.sr, outputs.sc], Destination(ae_title="STATUSSCP", host=LOOPBACK,  # type: ignore[list-item]
                 port=port), calling_ae="ECGDICOM", timeout=TIMEOUT)
    assert state["received"] == [outputs.sc.SOPInstanceUID, outputs.sr.SOPInstanceUID]  # type: ignore[attr-defined]


def test_unsupported_sop_classes_are_permanent(outputs: Outputs) -> None:
    ae = AE(ae_title="CTONLY")
    ae.add_supported_context(CTImageStorage)
    port = free_port()
    server = ae.start_server((LOOPBACK, port), block=False)
    assert server is not None
    try:
        wait_for_port(LOOPBACK, port, 10)
        with pytest.raises(DeliveryError) as info:
            _send(outputs, port, "CTONLY")
    finally:
        server.shutdown()
    assert info.value.transient is False


# --- raw sockets: a transient rejection, and a peer that never answers -----------


@pytest.fixture
def raw_peer() -> Iterator[tuple[int, dict[str, bytes | None]]]:
    """A TCP peer that reads the A-ASSOCIATE-RQ and answers ``state['reply']``
    (None: say nothing and hold the connection)."""
    state: dict[str, bytes | None] = {"reply": None}
    listener = socket.create_server((LOOPBACK, 0))
    port = listener.getsockname()[1]
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)
            try:
                conn.settimeout(2)
                conn.recv(65536)
                if state["reply"] is not None:
                    conn.sendall(state["reply"])
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, state
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def _associate_rj(result: int, source: int, reason: int) -> bytes:
    """An A-ASSOCIATE-RJ PDU (PS3.8 9.3.4)."""
    return bytes([0x03, 0x00, 0, 0, 0, 4, 0x00, result, source, reason])


def test_transient_rejection_is_transient(outputs: Outputs, raw_peer: tuple[int, dict]) -> None:
    port, state = raw_peer
    state["reply"] = _associate_rj(0x02, 0x03, 0x01)  # provider: temporary congestion
    with pytest.raises(DeliveryError) as info:
        _send(outputs, port)
    assert info.value.transient is True


def test_permanent_rejection_is_permanent(outputs: Outputs, raw_peer: tuple[int, dict]) -> None:
    port, state = raw_peer
    state["reply"] = _associate_rj(0x01, 0x01, 0x07)  # user: called AE title not recognised
    with pytest.raises(DeliveryError) as info:
        _send(outputs, port)
    assert info.value.transient is False


def test_silent_peer_times_out_transiently(outputs: Outputs, raw_peer: tuple[int, dict]) -> None:
    port, _state = raw_peer
    with pytest.raises(DeliveryError) as info:
        _send(outputs, port, timeout=1.0)
    assert info.value.transient is True


# --- destinations ---------------------------------------------------------------


def test_destinations_for_caller_then_fixed_without_duplicates() -> None:
    pacs = Destination(ae_title="PACS", host="10.0.0.5", port=104)
    archive = Destination(ae_title="ARCHIVE", host="10.0.0.6", port=11112)
    settings = Settings(delivery={"destinations": {"MODALITY": pacs},
                                  "fixed_destinations": [archive, pacs]})
    assert destinations_for("MODALITY", settings) == [pacs, archive]
    assert destinations_for(" MODALITY ", settings) == [pacs, archive]
    assert destinations_for("OTHER", settings) == [archive, pacs]
    assert destinations_for("OTHER", Settings()) == []


# --- DICOMweb STOW-RS -----------------------------------------------------------


class _StowHandler(BaseHTTPRequestHandler):
    # Set per test on a fresh subclass (see the stow_server fixture).
    reply: ClassVar[tuple[int, dict[str, Any] | None]] = (200, None)
    requests: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append((self.path, self.headers["Content-Type"], body))
        code, payload = type(self).reply
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stow_server() -> Iterator[tuple[str, type[_StowHandler]]]:
    handler = type("Handler", (_StowHandler,), {"requests": [], "reply": (200, None)})
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}/dicom-web", handler
    finally:
        server.shutdown()
        server.server_close()


def _parts(content_type: str, body: bytes) -> list[Dataset]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    parts = list(message.iter_parts())
    assert all(p.get_content_type() == "application/dicom" for p in parts)
    return [pydicom.dcmread(BytesIO(cast(bytes, p.get_payload(decode=True)))) for p in parts]


def test_stow_sends_multipart_sc_then_sr(outputs: Outputs, stow_server: tuple[str, Any]) -> None:
    url, handler = stow_server
    stow_outputs(_datasets(outputs), url, timeout=TIMEOUT)
    ((path, content_type, body),) = handler.requests
    assert path == "/dicom-web/studies"
    assert content_type.startswith("multipart/related")
    assert 'type="application/dicom"' in content_type
    received = _parts(content_type, body)
    assert [d.SOPInstanceUID for d in received] == [
        outputs.sc.SOPInstanceUID, outputs.sr.SOPInstanceUID]  # type: ignore[attr-defined]


def _failed(reason: int) -> dict[str, Any]:
    return {"00081198": {"vr": "SQ", "Value": [{"00081197": {"vr": "US", "Value": [reason]}}]}}


@pytest.mark.parametrize(
    ("code", "payload", "transient"),
    [(503, None, True), (500, None, True), (429, None, True), (400, None, False),
     (404, None, False), (415, None, False), (409, _failed(0xA700), True),
     (409, _failed(0xC000), False), (202, _failed(0xA900), False)],
)
def test_stow_failures(outputs: Outputs, stow_server: tuple[str, Any], code: int,
                       payload: dict[str, Any] | None, transient: bool) -> None:
    url, handler = stow_server
    handler.reply = (code, payload)
    with pytest.raises(DeliveryError) as info:
        stow_outputs(_datasets(outputs), url, timeout=TIMEOUT)
    assert info.value.transient is transient


def test_stow_accepted_without_failures_is_success(outputs: Outputs,
                                                   stow_server: tuple[str, Any]) -> None:
    url, handler = stow_server
    handler.reply = (202, {"00081199": {"vr": "SQ", "Value": []}})
    stow_outputs(_datasets(outputs), url + "/studies", timeout=TIMEOUT)
    assert handler.requests[0][0] == "/dicom-web/studies"


def test_stow_connection_refused_is_transient(outputs: Outputs) -> None:
    with pytest.raises(DeliveryError) as info:
        stow_outputs(_datasets(outputs), f"http://{LOOPBACK}:{free_port()}/dicom-web",
                     timeout=TIMEOUT)
    assert info.value.transient is True

