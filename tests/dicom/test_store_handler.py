"""The listener's handlers in-process: the C-STORE handler and the association gate.

No network and no service process: each C-STORE is an event object shaped like
pynetdicom's (the received data set already written into the spool's ``tmp/``, as
pynetdicom's chunked receive leaves it), given to the real handler with a real
Spool in ``tmp_path``.  The real-peer tests (storescu, storescp) are in
test_ingest_policy.py and tests/e2e.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pydicom
import pytest
from pydicom import Dataset, examples

from ecg_dicom.config import Settings
from ecg_dicom.dicom.association import AssociationGate
from ecg_dicom.dicom.store import StoreHandler
from ecg_dicom.errors import StoreStatus
from ecg_dicom.jobs import JobQueue, JobState, Spool
from ecg_dicom.sop import GENERAL_ECG, TWELVE_LEAD_ECG, sop_class_name
from realdata import real_ecg_paths


class FakeQueue:
    """Records the job ids queued; ``broken`` makes enqueue fail as a lost broker would."""

    def __init__(self, broken: bool = False) -> None:
        self.queued: list[str] = []
        self.broken = broken

    def enqueue(self, job_id: str, delay: float | None = None) -> None:
        if self.broken:
            raise ConnectionError("queue unavailable")
        self.queued.append(job_id)


@dataclass
class FakePrimitive:
    calling_ae_title: str


@dataclass
class FakeRequestor:
    ae_title: str
    address: str
    primitive: FakePrimitive


@dataclass
class FakeAcse:
    rejected: list[tuple[int, int, int]] = field(default_factory=list)

    def send_reject(self, result: int, source: int, reason: int) -> None:
        self.rejected.append((result, source, reason))


@dataclass
class FakeAssociation:
    requestor: FakeRequestor
    acse: FakeAcse = field(default_factory=FakeAcse)
    is_rejected: bool = False
    killed: bool = False

    def kill(self) -> None:
        self.killed = True


@dataclass
class FakeEvent:
    assoc: FakeAssociation
    request: Dataset
    dataset_path: Path | None = None


def association(ae_title: str = "CART", address: str = "10.0.0.7") -> FakeAssociation:
    return FakeAssociation(FakeRequestor(ae_title, address, FakePrimitive(ae_title)))


def store_event(spool: Spool, source: Path, sop_class: str | None = None) -> FakeEvent:
    """A C-STORE of ``source`` as pynetdicom hands it over (the file already in tmp/)."""
    received = spool.tmp_dir / f"tmp{spool.new_job_id()}"
    shutil.copyfile(source, received)
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    request = Dataset()
    request.AffectedSOPClassUID = sop_class or ds.SOPClassUID
    request.AffectedSOPInstanceUID = ds.SOPInstanceUID
    return FakeEvent(association(), request, received)


def handler(tmp_path: Path, queue: FakeQueue | None = None, **settings: Any
            ) -> tuple[StoreHandler, Spool, FakeQueue]:
    spool = Spool(tmp_path / "spool", fsync=False)
    queue = queue or FakeQueue()
    return StoreHandler(Settings(**settings), spool, cast(JobQueue, queue)), spool, queue


@pytest.mark.parametrize("source", real_ecg_paths(), ids=lambda p: p.parent.name)
def test_a_real_ecg_is_spooled_recorded_queued_then_acknowledged(
    tmp_path: Path, source: Path
) -> None:
    store, spool, queue = handler(tmp_path)
    event = store_event(spool, source)
    assert store(event) == StoreStatus.SUCCESS
    [job] = spool.list_jobs()
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    assert job.state == JobState.RECEIVED
    assert (job.sop_class_uid, job.sop_instance_uid, job.study_instance_uid) == (
        ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID)
    assert (job.calling_ae, job.peer_address, job.size) == (
        "CART", "10.0.0.7", source.stat().st_size)
    assert spool.instance_path(job.job_id).read_bytes() == source.read_bytes()
    assert list(spool.tmp_dir.iterdir()) == []  # moved, not copied
    assert queue.queued == [job.job_id]


def test_a_data_set_of_another_class_than_its_c_store_is_refused(tmp_path: Path) -> None:
    store, spool, queue = handler(tmp_path)
    twelve_lead = next(
        p for p in real_ecg_paths()
        if pydicom.dcmread(p, stop_before_pixels=True).SOPClassUID == TWELVE_LEAD_ECG
    )
    assert store(store_event(spool, twelve_lead, GENERAL_ECG)) == 0xA900
    assert spool.list_jobs() == [] and queue.queued == []


def test_bytes_that_are_not_dicom_cannot_be_understood(tmp_path: Path) -> None:
    store, spool, queue = handler(tmp_path)
    event = store_event(spool, real_ecg_paths()[0])
    cast(Path, event.dataset_path).write_bytes(b"")  # nothing arrived
    assert store(event) == 0xC000
    assert spool.list_jobs() == [] and queue.queued == []


def test_below_the_disk_reserve_is_out_of_resources(tmp_path: Path) -> None:
    store, spool, queue = handler(tmp_path)
    spool.min_free_mb = 10**9  # more than any disk has
    answer = store(store_event(spool, real_ecg_paths()[0]))
    assert isinstance(answer, Dataset) and answer.Status == 0xA700
    assert answer.ErrorComment.startswith("spool disk has ")  # the reason, for the sender
    assert spool.list_jobs() == [] and queue.queued == []


def test_a_lost_queue_keeps_the_job_received_and_still_acknowledges(tmp_path: Path) -> None:
    store, spool, _ = handler(tmp_path, FakeQueue(broken=True))
    assert store(store_event(spool, real_ecg_paths()[0])) == StoreStatus.SUCCESS
    [job] = spool.list_jobs()
    assert job.state == JobState.RECEIVED
    assert spool.recover() == [job.job_id]  # the next start-up queues it


def test_an_object_that_is_not_an_ecg_input_is_skipped_with_its_reason(tmp_path: Path) -> None:
    store, spool, queue = handler(tmp_path)
    ct = Path(examples.get_path("ct"))
    event = store_event(spool, ct)
    assert store(event) == StoreStatus.SUCCESS
    [job] = spool.list_jobs()
    source = pydicom.dcmread(ct, stop_before_pixels=True)
    assert job.state == JobState.SKIPPED
    assert job.reason == f"skipped: {sop_class_name(source.SOPClassUID)} is not an ECG input"
    assert (job.sop_instance_uid, job.study_instance_uid, job.size) == (
        source.SOPInstanceUID, source.StudyInstanceUID, ct.stat().st_size)
    assert not cast(Path, event.dataset_path).exists()  # bytes not kept
    assert not spool.instance_path(job.job_id).exists() and queue.queued == []


def test_refuse_answers_0122_with_the_reason_and_records_nothing(tmp_path: Path) -> None:
    store, spool, queue = handler(tmp_path, dicom={"non_ecg_objects": "refuse"})
    ct = Path(examples.get_path("ct"))
    event = store_event(spool, ct)
    answer = store(event)
    assert isinstance(answer, Dataset) and answer.Status == 0x0122
    name = sop_class_name(pydicom.dcmread(ct, stop_before_pixels=True).SOPClassUID)
    assert answer.ErrorComment == f"{name} is not an ECG input"[:64]
    assert spool.list_jobs() == [] and queue.queued == []
    assert not cast(Path, event.dataset_path).exists()


def test_gate_lets_allowed_callers_in_and_rejects_strangers() -> None:
    settings = Settings(dicom={"allowed_callers": [{"ae_title": "CART", "hosts": ["10.0.0.7"]}]})
    gate = AssociationGate(settings.dicom.allowed_callers)
    welcome = FakeEvent(association("CART", "10.0.0.7"), Dataset())
    gate.on_requested(welcome)
    assert welcome.assoc.acse.rejected == [] and not welcome.assoc.is_rejected
    for stranger in (association("OTHER", "10.0.0.7"), association("CART", "10.0.0.8")):
        event = FakeEvent(stranger, Dataset())
        gate.on_requested(event)
        # rejected-permanent, service-user, calling AE title not recognised (PS3.8 9.3.4)
        assert stranger.acse.rejected == [(1, 1, 3)]
        assert stranger.is_rejected and stranger.killed


def test_gate_rejects_transiently_once_closed() -> None:
    gate = AssociationGate(Settings().dicom.allowed_callers)
    gate.close()
    event = FakeEvent(association(), Dataset())
    gate.on_requested(event)
    # rejected-transient, service-provider (presentation), temporary congestion
    assert event.assoc.acse.rejected == [(2, 3, 1)] and event.assoc.killed
