"""Disk under control at the listener (issue 12, item 4): a full spool answers 0xA700,
never an abort; a transfer cut short leaves no partial file; the free space is a
metric, and one warning comes before the reserve is reached.

In-process, with the real handler and the real receive files
(:mod:`ecg_dicom.dicom.receive`, what pynetdicom writes each data set into): the
reserve, a disk that fills while a data set arrives (``/dev/full`` gives the real
ENOSPC, no disk is ever filled) and the clean-up when an association ends.  Over
the network, ``ecg-dicom serve`` as a process: dcmtk ``storescu`` against a "full"
spool (a ``storage.min_free_mb`` above the disk's free space), and a pynetdicom
peer that sends half of a data set then aborts or drops the connection.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any, cast

import pydicom
import pytest
from prometheus_client import REGISTRY
from pydicom import Dataset, examples
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF

from ecg_dicom.config import Settings
from ecg_dicom.dicom.receive import ReceivedFiles, ReceivingFile
from ecg_dicom.dicom.store import StoreHandler
from ecg_dicom.errors import StoreStatus
from ecg_dicom.jobs import JobQueue, JobState, Spool
from realdata import copies_with_new_uids, real_ecg_paths
from serve_proc import ServeProcess, run_tool

MB = 1024 * 1024


class FakeQueue:
    def __init__(self) -> None:
        self.queued: list[str] = []

    def enqueue(self, job_id: str, delay: float | None = None) -> None:
        self.queued.append(job_id)


def parts(tmp_path: Path, opener: Callable[[Path], IO[bytes]] | None = None
          ) -> tuple[Spool, ReceivedFiles, StoreHandler, FakeQueue]:
    spool = Spool(tmp_path / "spool", fsync=False)
    files = ReceivedFiles(spool, opener) if opener else ReceivedFiles(spool)
    queue = FakeQueue()
    store = StoreHandler(Settings(), spool, cast(JobQueue, queue), files)
    return spool, files, store, queue


def receive(files: ReceivedFiles, source: Path) -> ReceivingFile:
    """What pynetdicom does with a C-STORE data set: open, write in fragments, flush."""
    received = files.open(delete=False, mode="wb", suffix=".dcm")
    data = source.read_bytes()
    for start in range(0, len(data), 16384):
        received.write(data[start:start + 16384])
        received.file.flush()
    return received


def store_event(received: ReceivingFile, source: Path) -> Any:
    """The EVT_C_STORE event pynetdicom gives the handler for ``received``."""
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    request = Dataset()
    request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    requestor = SimpleNamespace(ae_title="CART", address="10.0.0.7")
    return SimpleNamespace(assoc=SimpleNamespace(requestor=requestor), request=request,
                           dataset_path=Path(received.name))


def ended(thread: object, name: str = "EVT_ABORTED") -> Any:
    return SimpleNamespace(assoc=SimpleNamespace(dul=thread), event=SimpleNamespace(name=name))


# --- in-process --------------------------------------------------------------------


def test_below_the_reserve_nothing_is_written_and_the_answer_is_a700(tmp_path: Path) -> None:
    spool, files, store, queue = parts(tmp_path)
    spool.min_free_mb = 10**9  # more than any disk has
    for source in (real_ecg_paths()[0], Path(examples.get_path("ct"))):  # ECG or not
        received = receive(files, source)
        assert list(spool.tmp_dir.iterdir()) == []  # the reserve is kept: nothing written
        answer = store(store_event(received, source))
        assert isinstance(answer, Dataset) and answer.Status == StoreStatus.OUT_OF_RESOURCES
        assert re.match(r"spool disk has \d+ MB free, below storage\.min_free_mb=",
                        answer.ErrorComment)  # the reason (Error Comment is at most 64 chars)
        received.close()  # as pynetdicom does after the handler
    assert spool.list_jobs() == [] and queue.queued == [] and files.pending() == []


def test_a_disk_that_fills_while_receiving_answers_a700_instead_of_raising(
    tmp_path: Path
) -> None:
    def full_disk(path: Path) -> IO[bytes]:
        path.touch()  # the file exists, as a real one would, until it is dropped
        return open("/dev/full", "wb")  # every flush fails with ENOSPC

    spool, files, store, queue = parts(tmp_path, full_disk)
    source = real_ecg_paths()[0]
    received = receive(files, source)  # does not raise into pynetdicom
    assert list(spool.tmp_dir.iterdir()) == []  # the partial file is removed at once
    answer = store(store_event(received, source))
    assert isinstance(answer, Dataset) and answer.Status == 0xA700
    assert answer.ErrorComment == "spool disk: No space left on device while receiving"
    received.close()
    assert spool.list_jobs() == [] and queue.queued == [] and files.pending() == []


def test_an_unfinished_transfer_is_removed_when_its_association_ends(tmp_path: Path) -> None:
    spool, files, store, _ = parts(tmp_path)
    source = real_ecg_paths()[0]
    data = source.read_bytes()
    partial = files.open()  # opened by this thread: this association's DUL
    partial.write(data[: len(data) // 2])
    partial.flush()
    files.on_ended(ended(object()))  # another association ended: not this one's file
    assert Path(partial.name).stat().st_size == len(data) // 2
    files.on_ended(ended(threading.current_thread()))
    assert list(spool.tmp_dir.iterdir()) == [] and files.pending() == []
    partial.write(b"more")  # pynetdicom may still write: dropped, never raises
    partial.close()
    assert list(spool.tmp_dir.iterdir()) == []


def test_an_acknowledged_instance_is_never_removed_when_its_association_ends(
    tmp_path: Path
) -> None:
    spool, files, store, _ = parts(tmp_path)
    source = real_ecg_paths()[0]
    received = receive(files, source)
    assert store(store_event(received, source)) == StoreStatus.SUCCESS
    # Aborted after the Success, before pynetdicom closed the file.
    files.on_ended(ended(threading.current_thread(), "EVT_CONN_CLOSE"))
    [job] = spool.list_jobs()
    assert job.state == JobState.RECEIVED
    assert spool.instance_path(job.job_id).read_bytes() == source.read_bytes()


def test_files_of_an_association_whose_thread_died_are_swept(tmp_path: Path) -> None:
    spool, files, _, _ = parts(tmp_path)
    dead = threading.Thread(target=lambda: files.open().write(b"partial"))
    dead.start()
    dead.join()
    assert len(list(spool.tmp_dir.iterdir())) == 1
    fresh = files.open()  # the next data set sweeps what a dead DUL left
    assert list(spool.tmp_dir.iterdir()) == [Path(fresh.name)]
    fresh.close()


def test_free_space_gauge_and_one_warning_per_crossing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    free_mb = shutil.disk_usage(spool.root).free // MB
    caplog.set_level(logging.INFO, logger="ecg_dicom.spool")
    spool.min_free_mb = int(free_mb * 0.7)  # free is below 2 x the reserve, above it
    for _ in range(3):
        spool.check_free_space()  # not refused yet
    gauge = REGISTRY.get_sample_value("ecgdicom_spool_free_bytes")
    assert gauge is not None and abs(gauge - free_mb * MB) < 0.05 * free_mb * MB
    spool.min_free_mb = 1  # back above
    spool.free_bytes()
    spool.min_free_mb = int(free_mb * 0.7)  # below again
    spool.free_bytes()
    spool.free_bytes()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, [r.getMessage() for r in caplog.records]
    assert "below 2 x storage.min_free_mb" in warnings[0].getMessage()
    assert sum("free again" in r.getMessage() for r in caplog.records) == 1


# --- over the network --------------------------------------------------------------


@pytest.mark.integration
def test_a_full_spool_answers_a700_to_every_object_and_never_aborts(tmp_path: Path) -> None:
    ecgs = copies_with_new_uids(real_ecg_paths(), tmp_path / "ecg", 5)
    ct = Path(examples.get_path("ct"))
    proc = ServeProcess(tmp_path, {
        "storage": {"min_free_mb": 10**9}, "queue": {"workers": 0},  # "full": below the reserve
    }).start()
    try:
        done = run_tool("storescu", "-d", "-R", "--no-halt", "-aet", "CART", "-aec", "ECGDICOM",
                        "127.0.0.1", str(proc.dicom_port), *map(str, [*ecgs, ct]))
        answers = re.findall(r"DIMSE Status +: (0x\w+)", done.stderr)
        assert answers == ["0xa700"] * 6, done.stderr[-3000:]
        assert "Abort" not in done.stderr and "Releasing Association" in done.stderr
        assert "spool disk has " in done.stderr  # Error Comment (0000,0902)
        assert proc.jobs() == [] and list((proc.spool_dir / "tmp").iterdir()) == []
        metrics = proc.get("/metrics")
        [free] = re.findall(r"^ecgdicom_spool_free_bytes (\S+)$", metrics, re.M)
        assert float(free) > 0
        assert proc.log().count("below 2 x storage.min_free_mb") == 1  # once, not per object
    finally:
        proc.stop()


def _half_a_store(assoc: Any, source: Path) -> None:
    """Send the C-STORE command and half of the data set's P-DATA, and no more."""
    ds = pydicom.dcmread(source)
    req = C_STORE()
    req.MessageID, req.Priority = 1, 2
    req.AffectedSOPClassUID, req.AffectedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    req.DataSet = io.BytesIO(cast(bytes, encode(ds, True, True)))
    message = C_STORE_RQ()
    message.primitive_to_message(req)
    context_id = assoc.accepted_contexts[0].context_id
    pdus: list[bytes] = []
    for primitive in message.encode_msg(context_id, 4096):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        pdus.append(pdu.encode())
    assert len(pdus) > 4
    for encoded in pdus[: len(pdus) // 2]:
        assoc.dul.socket.send(encoded)


def _wait(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.integration
@pytest.mark.parametrize("cut", ["abort", "close"])
def test_a_transfer_cut_short_leaves_no_partial_file(tmp_path: Path, cut: str) -> None:
    source = copies_with_new_uids(real_ecg_paths(), tmp_path / "ecg", 1)[0]
    proc = ServeProcess(tmp_path, {"queue": {"workers": 0}}).start()
    tmp = proc.spool_dir / "tmp"
    try:
        ae = AE(ae_title="CART")
        ae.add_requested_context(pydicom.dcmread(source).SOPClassUID, ImplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", proc.dicom_port, ae_title="ECGDICOM")
        assert assoc.is_established
        _half_a_store(assoc, source)
        assert _wait(lambda: any(f.stat().st_size > 0 for f in tmp.iterdir())), "no partial"
        if cut == "abort":
            assoc.abort()
        else:  # the peer vanishes: no A-ABORT, the TCP connection just closes
            cast(Any, assoc.dul.socket).socket.shutdown(socket.SHUT_RDWR)
            assert _wait(lambda: not assoc.is_established or assoc.is_aborted)
            assoc.abort()
        assert _wait(lambda: list(tmp.iterdir()) == []), [f.name for f in tmp.iterdir()]
        assert "removed 1 partial transfer(s)" in proc.log()
        # The service goes on: the next peer is served and its ECG acknowledged.
        assert run_tool("echoscu", "-aec", "ECGDICOM", "127.0.0.1",
                        str(proc.dicom_port)).returncode == 0
        done = run_tool("storescu", "-v", "-R", "-aet", "CART", "-aec", "ECGDICOM",
                        "127.0.0.1", str(proc.dicom_port), str(source))
        assert "Received Store Response (Success)" in done.stderr, done.stderr[-2000:]
        assert [j["state"] for j in proc.jobs()] == ["received"]
        assert list(tmp.iterdir()) == []
    finally:
        proc.stop()
