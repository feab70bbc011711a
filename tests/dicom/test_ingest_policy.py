"""What ``ecg-dicom serve`` does with each object a PACS or a cart sends (issue 10, items 1 and 8).

Real peers on loopback: dcmtk ``storescu`` as the sender (pynetdicom for HTJ2K, which
the Debian dcmtk 3.6.7 does not know), dcmtk ``storescp`` as the PACS results go to.

* Objects that are not ECG inputs (a real CT, an SR, a KO) are acknowledged with
  Success and recorded as skipped with the reason; their bytes are not kept.  With
  ``dicom.non_ecg_objects: refuse`` they get a failure status instead.
* Our own results sent back (the SC and SR the service itself built) are skipped,
  even with ``skip_ai_results: false``; another AI's burned-in SC is skipped by
  default and processed when the setting is off.
* General 32-bit ECG (made from a real GE MAC55 file: its SS samples widened to
  SL, nothing else changed) is accepted and classified exactly like its source.
* Hemodynamic objects of Modality HD: processed when their channels include ECG
  leads, skipped by the worker ("not an ECG") when they hold only pressures.
* An SC compressed as HTJ2K (by OpenJPH's ``ojph_compress``, Debian openjph-tools)
  is accepted, decoded and classified.

Provenance: the real ECGs of ``../shared/data/dicom-ecg`` and the real ECG print-outs
of ``../shared/data/ecg-images`` (tests/README.md); pydicom's own CT example.  The
SR, KO and the other AI's SC are made here around those real objects; the
arterial-pressure channel of the Hemodynamic objects is synthetic.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest
from pydicom import Dataset, examples
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    generate_uid,
)
from pynetdicom import AE

from ecg_dicom.pages import page_from_dataset
from ecg_dicom.sop import (
    GENERAL_32BIT_ECG,
    HEMODYNAMIC_WAVEFORM,
    SECONDARY_CAPTURE,
)
from peers import require_tool, run_storescp
from realdata import DICOM_ECG_DIR, ECG_IMAGES_DIR, copies_with_new_uids
from serve_proc import ServeProcess, run_tool

pytestmark = pytest.mark.integration

KEY_OBJECT_SELECTION = UID("1.2.840.10008.5.1.4.1.1.88.59")
COMPREHENSIVE_3D_SR = UID("1.2.840.10008.5.1.4.1.1.88.34")
MAC55 = DICOM_ECG_DIR / "ge-mac55" / "ecg.dcm"
OTHER_AI = ("Other AI Inc", "CardioNet 2")


# --- objects made around real ones ------------------------------------------------


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _new_object(source: Dataset, sop_class: UID, modality: str) -> Dataset:
    """An instance of ``sop_class`` in the study and for the patient of ``source``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyID"):
        setattr(ds, keyword, source.get(keyword, ""))
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = 77, 1
    ds.Modality = modality
    ds.Manufacturer = "test"
    ds.ContentDate, ds.ContentTime = "20240102", "101010"
    return ds


def _reference(source: Dataset) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return ref


def sr_document(source: Dataset) -> Dataset:
    """An earlier Comprehensive 3D SR report of the ECG's study (as a cart system keeps)."""
    ds = _new_object(source, COMPREHENSIVE_3D_SR, "SR")
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code("126000", "DCM", "Imaging Measurement Report")])
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    text = Dataset()
    text.RelationshipType, text.ValueType = "CONTAINS", "TEXT"
    text.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    text.TextValue = "Sinus rhythm, read by a cardiologist"
    ds.ContentSequence = Sequence([text])
    return ds


def key_object(source: Dataset) -> Dataset:
    """A Key Object Selection that flags the ECG (PS3.3 A.35.4)."""
    ds = _new_object(source, KEY_OBJECT_SELECTION, "KO")
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code("113000", "DCM", "Of Interest")])
    ds.ContinuityOfContent = "SEPARATE"
    series = Dataset()
    series.SeriesInstanceUID = source.SeriesInstanceUID
    series.ReferencedSOPSequence = Sequence([_reference(source)])
    study = Dataset()
    study.StudyInstanceUID = source.StudyInstanceUID
    study.ReferencedSeriesSequence = Sequence([series])
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([study])
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "COMPOSITE"
    item.ReferencedSOPSequence = Sequence([_reference(source)])
    ds.ContentSequence = Sequence([item])
    return ds


def _print_out() -> np.ndarray:
    """A real ECG print-out (RGB) of the Mendeley set."""
    path = min((ECG_IMAGES_DIR / "normal").glob("*.jpg"))
    picture = cv2.imread(str(path))
    assert picture is not None, path
    return np.ascontiguousarray(picture[:, :, ::-1])


def _secondary_capture(source: Dataset, rgb: np.ndarray) -> Dataset:
    ds = _new_object(source, SECONDARY_CAPTURE, "OT")
    ds.ConversionType = "WSD"
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(rgb).tobytes()
    return ds


def other_ai_result(source: Dataset) -> Dataset:
    """A real print-out with another vendor's AI result drawn into it, declared as IHE
    AIR says: Burned In Annotation YES, Contributing Equipment "Processing Algorithm"."""
    rgb = _print_out().copy()
    cv2.rectangle(rgb, (300, 200), (700, 500), (255, 0, 0), 4)
    cv2.putText(rgb, "AI: abnormal 0.93", (300, 180), cv2.FONT_HERSHEY_SIMPLEX, 1.5,
                (255, 0, 0), 3)
    ds = _secondary_capture(source, rgb)
    ds.BurnedInAnnotation = "YES"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    algorithm = Dataset()
    algorithm.Manufacturer, algorithm.ManufacturerModelName = OTHER_AI
    algorithm.SoftwareVersions = "2.1"
    algorithm.PurposeOfReferenceCodeSequence = Sequence(
        [_code("Newcode1", "99IHE", "Processing Algorithm")])
    ds.ContributingEquipmentSequence = Sequence([algorithm])
    return ds


def general_32bit_ecg(path: Path) -> Dataset:
    """The real ECG as General 32-bit ECG: every group's SS samples widened to SL."""
    ds = pydicom.dcmread(path)
    for group in ds.WaveformSequence:
        assert group.WaveformSampleInterpretation == "SS"
        samples = np.frombuffer(group.WaveformData, "<i2")
        group.WaveformData = samples.astype("<i4").tobytes()
        group.WaveformBitsAllocated, group.WaveformSampleInterpretation = 32, "SL"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = GENERAL_32BIT_ECG
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds


def hemodynamic(path: Path, *, with_leads: bool) -> Dataset:
    """The real ECG's rhythm group as a Hemodynamic object of Modality HD, with an
    arterial pressure channel added (synthetic) — or that channel alone."""
    ds = pydicom.dcmread(path)
    del ds.WaveformSequence[1:]
    group = ds.WaveformSequence[0]
    channels, samples = int(group.NumberOfWaveformChannels), int(group.NumberOfWaveformSamples)
    raw = np.frombuffer(group.WaveformData, "<i2").reshape(samples, channels).T
    pressure = np.round(100 + 20 * np.sin(np.arange(samples) / 80.0)).astype(np.int16)
    art = Dataset()
    art.update(group.ChannelDefinitionSequence[0])
    art.ChannelSourceSequence = Sequence([_code("2:4106", "MDC", "Arterial pressure")])
    art.ChannelLabel = "ART"
    art.ChannelSensitivity, art.ChannelBaseline = "1", "0"
    art.ChannelSensitivityUnitsSequence = Sequence([_code("mm[Hg]", "UCUM", "mmHg")])
    if with_leads:
        definitions = [*group.ChannelDefinitionSequence, art]
        data = np.vstack([raw, pressure])
    else:
        definitions, data = [art], pressure[np.newaxis]
    group.ChannelDefinitionSequence = Sequence(definitions)
    group.NumberOfWaveformChannels = len(definitions)
    group.WaveformData = np.ascontiguousarray(data.T).astype("<i2").tobytes()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = HEMODYNAMIC_WAVEFORM
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality = "HD"
    return ds


def htj2k_capture(source: Dataset, folder: Path) -> tuple[Dataset, np.ndarray]:
    """A real print-out compressed losslessly as HTJ2K by OpenJPH (``ojph_compress``)."""
    rgb = _print_out()[:760, :1200]
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "page.ppm"), rgb[:, :, ::-1])
    done = subprocess.run(
        [require_tool("ojph_compress"), "-i", str(folder / "page.ppm"),
         "-o", str(folder / "page.j2c"), "-reversible", "true"],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    ds = _secondary_capture(source, rgb)
    ds.file_meta.TransferSyntaxUID = HTJ2KLossless
    ds.PhotometricInterpretation = "YBR_RCT"  # OpenJPH's reversible colour transform
    ds.PixelData = encapsulate([(folder / "page.j2c").read_bytes()])
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "00"
    return ds, rgb


# --- helpers ------------------------------------------------------------------------


def save(ds: Dataset, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def send(service: ServeProcess, *files: Path, args: tuple[str, ...] = ()) -> list[str]:
    """storescu each file on one association; the C-STORE responses in order.

    ``-R``: propose the classes of the files themselves; storescu's default list of
    128 classes lacks many (Comprehensive 3D SR among them).  Not with a profile
    (``-xf``), which names the classes itself.
    """
    required = () if "-xf" in args else ("-R",)
    done = run_tool("storescu", "-v", *required, "-aet", "MODALITY", "-aec", "ECGDICOM", *args,
                    "127.0.0.1", str(service.dicom_port), *map(str, files))
    return re.findall(r"Received Store Response \(([^)]*)\)", done.stderr) or [done.stderr]


def jobs_by_uid(service: ServeProcess) -> dict[str, dict[str, Any]]:
    return {j["sop_instance_uid"]: j for j in service.jobs()}


def wait_for(service: ServeProcess, uids: list[str], timeout: float = 300.0) -> dict[str, Any]:
    """Wait until the jobs of ``uids`` are finished (done, failed or skipped)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = jobs_by_uid(service)
        if all(jobs.get(u, {}).get("state") in ("done", "failed", "skipped") for u in uids):
            return jobs
        time.sleep(0.2)
    raise TimeoutError(f"{[jobs_by_uid(service).get(u) for u in uids]}\n{service.log()}")


def skipped_total(service: ServeProcess, kind: str) -> float:
    match = re.search(rf'ecgdicom_skipped_total\{{kind="{kind}"\}} ([0-9.]+)',
                      service.get("/metrics"))
    return float(match.group(1)) if match else 0.0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One service with the default policy for the tests that need no other settings."""
    proc = ServeProcess(tmp_path_factory.mktemp("svc"), {}).start()
    yield proc
    proc.stop()


# --- tests --------------------------------------------------------------------------


def test_whole_study_objects_are_acknowledged_only_the_ecg_is_processed(
    service: ServeProcess, tmp_path: Path
) -> None:
    [ecg_path] = copies_with_new_uids([MAC55], tmp_path / "ecg", 1)
    ecg = pydicom.dcmread(ecg_path, stop_before_pixels=True)
    ct = Path(examples.get_path("ct"))
    sr = save(sr_document(ecg), tmp_path, "sr")
    ko = save(key_object(ecg), tmp_path, "ko")
    assert send(service, sr, ecg_path, ct, ko) == ["Success"] * 4
    uids = {name: str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
            for name, p in (("sr", sr), ("ecg", ecg_path), ("ct", ct), ("ko", ko))}
    jobs = wait_for(service, list(uids.values()))
    assert jobs[uids["ecg"]]["state"] == "done", jobs[uids["ecg"]]
    expected = {
        "sr": "skipped: Comprehensive 3D SR Storage is not an ECG input",
        "ct": "skipped: CT Image Storage is not an ECG input",
        "ko": "skipped: Key Object Selection Document Storage is not an ECG input",
    }
    for name, reason in expected.items():
        job = jobs[uids[name]]
        assert (job["state"], job["reason"]) == ("skipped", reason), job
        assert job["calling_ae"] == "MODALITY" and job["size"] > 0
    assert jobs[uids["sr"]]["study_instance_uid"] == str(ecg.StudyInstanceUID)
    # Nothing of the declined objects is kept: the ECG's file only.
    instances = list((service.spool_dir / "instances").iterdir())
    assert f"{jobs[uids['ecg']]['job_id']}.dcm" in {p.name for p in instances}
    for name in expected:
        assert not (service.spool_dir / "instances" / f"{jobs[uids[name]]['job_id']}.dcm").exists()
    assert list((service.spool_dir / "tmp").iterdir()) == []
    assert skipped_total(service, "not_ecg_input") >= 3
    assert service.get("/healthz")["jobs"]["skipped"] >= 3


def test_refuse_answers_a_failure_and_records_nothing(tmp_path: Path) -> None:
    proc = ServeProcess(tmp_path / "svc", {"dicom": {"non_ecg_objects": "refuse"}})
    proc.workdir.mkdir()
    proc.start()
    try:
        ecg = pydicom.dcmread(MAC55, stop_before_pixels=True)
        sr = save(sr_document(ecg), tmp_path, "sr")
        ai = save(other_ai_result(ecg), tmp_path, "ai")
        ct = Path(examples.get_path("ct"))
        # dcmtk names 0x0122 "Refused: SOPClassNotSupported"; 0xC001 is in the error range.
        answers = send(proc, sr, ct, ai, args=("--no-halt",))
        assert answers[:2] == ["Refused: SOPClassNotSupported"] * 2, answers
        assert re.fullmatch(r"(Error|Failed): .*", answers[2]), answers
        log = run_tool("storescu", "-d", "-R", "-aec", "ECGDICOM", "127.0.0.1",
                       str(proc.dicom_port), str(sr)).stderr
        assert "Comprehensive 3D SR Storage is not an ECG input" in log  # Error Comment
        assert proc.jobs() == []
        assert list((proc.spool_dir / "tmp").iterdir()) == []
    finally:
        proc.stop()


def test_own_results_sent_back_are_skipped_even_with_skip_ai_results_off(
    tmp_path: Path
) -> None:
    with run_storescp(tmp_path / "pacs") as (pacs_port, _):
        config = {
            "dicom": {"skip_ai_results": False},
            "delivery": {"destinations": {
                "MODALITY": {"ae_title": "STORESCP", "host": "127.0.0.1", "port": pacs_port}}},
        }
        proc = ServeProcess(tmp_path / "svc", config)
        proc.workdir.mkdir()
        proc.start()
        try:
            [ecg] = copies_with_new_uids([MAC55], tmp_path / "ecg", 1)
            assert send(proc, ecg) == ["Success"]
            proc.wait_jobs(1)
            results = sorted((tmp_path / "pacs").iterdir())
            assert len(results) == 2, results
            # The loop a forward-everything router makes: the results come back.
            # -xt: also propose JPEG-LS Lossless, in which the SC may come compressed.
            assert send(proc, *results, args=("-xt",)) == ["Success", "Success"]
            jobs = proc.jobs()
        finally:
            proc.stop()
    by_uid = {j["sop_instance_uid"]: j for j in jobs}
    assert len(jobs) == 3 and [j["state"] for j in jobs].count("done") == 1
    for path in results:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        job = by_uid[str(ds.SOPInstanceUID)]
        assert job["state"] == "skipped", job
        if ds.Modality == "SR":
            assert job["reason"].endswith("SR Storage is not an ECG input"), job
        else:
            assert job["reason"].startswith("skipped: an ecg-dicom result"), job


def test_other_ai_burned_in_result_is_skipped_by_default(
    service: ServeProcess, tmp_path: Path
) -> None:
    ecg = pydicom.dcmread(MAC55, stop_before_pixels=True)
    ai = other_ai_result(ecg)
    assert send(service, save(ai, tmp_path, "ai")) == ["Success"]
    job = jobs_by_uid(service)[str(ai.SOPInstanceUID)]
    assert job["state"] == "skipped"
    assert job["reason"] == "skipped: burned-in AI result of Other AI Inc / CardioNet 2"
    assert skipped_total(service, "ai_result") >= 1


def test_other_ai_burned_in_result_is_processed_when_the_setting_is_off(
    tmp_path: Path
) -> None:
    proc = ServeProcess(tmp_path / "svc", {"dicom": {"skip_ai_results": False}})
    proc.workdir.mkdir()
    proc.start()
    try:
        ai = other_ai_result(pydicom.dcmread(MAC55, stop_before_pixels=True))
        assert send(proc, save(ai, tmp_path, "ai")) == ["Success"]
        [job] = proc.wait_jobs(1, states=("done", "failed", "skipped"))
    finally:
        proc.stop()
    assert job["state"] == "done" and job["sop_instance_uid"] == str(ai.SOPInstanceUID), job
    assert job["result"]["label"] in ("Normal", "Abnormal", "Not interpretable")


def test_general_32bit_ecg_is_classified_like_its_16bit_source(
    service: ServeProcess, tmp_path: Path
) -> None:
    [original] = copies_with_new_uids([MAC55], tmp_path / "ecg", 1)
    wide = save(general_32bit_ecg(original), tmp_path, "ecg32")
    # Debian's dcmtk 3.6.7 predates the class: storescu proposes it from a profile.
    profile = tmp_path / "ecg32.cfg"
    profile.write_text(
        "[[TransferSyntaxes]]\n[Uncompressed]\nTransferSyntax1 = LocalEndianExplicit\n"
        "TransferSyntax2 = LittleEndianImplicit\n\n[[PresentationContexts]]\n[ECG]\n"
        f"PresentationContext1 = {GENERAL_32BIT_ECG}\\Uncompressed\n"
        "PresentationContext2 = 1.2.840.10008.5.1.4.1.1.9.1.1\\Uncompressed\n\n"
        "[[Profiles]]\n[ECG]\nPresentationContexts = ECG\n")
    assert send(service, original, wide, args=("-xf", str(profile), "ECG")) == ["Success"] * 2
    uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
            for p in (original, wide)]
    jobs = wait_for(service, uids)
    first, second = (jobs[u] for u in uids)
    assert second["sop_class_uid"] == GENERAL_32BIT_ECG
    assert first["state"] == second["state"] == "done", (first, second)
    for key in ("label", "class_name", "abnormal_score", "detections"):
        assert first["result"][key] == second["result"][key], key


def test_hemodynamic_of_modality_hd_with_ecg_leads_is_processed_else_skipped(
    service: ServeProcess, tmp_path: Path
) -> None:
    with_leads = hemodynamic(MAC55, with_leads=True)
    pressure_only = hemodynamic(MAC55, with_leads=False)
    files = [save(with_leads, tmp_path, "hd-ecg"), save(pressure_only, tmp_path, "hd-art")]
    assert send(service, *files) == ["Success", "Success"]
    uids = [str(with_leads.SOPInstanceUID), str(pressure_only.SOPInstanceUID)]
    jobs = wait_for(service, uids)
    processed, skipped = (jobs[u] for u in uids)
    assert processed["state"] == "done", processed
    assert skipped["state"] == "skipped", skipped
    assert "no ECG lead" in skipped["reason"] and "Modality HD" in skipped["reason"], skipped
    assert "ART" in skipped["reason"]


def test_htj2k_secondary_capture_is_decoded_and_classified(
    service: ServeProcess, tmp_path: Path
) -> None:
    ds, rgb = htj2k_capture(pydicom.dcmread(MAC55, stop_before_pixels=True), tmp_path)
    page = page_from_dataset(pydicom.dcmread(save(ds, tmp_path, "htj2k")))
    assert np.array_equal(page.image, rgb)  # lossless: exactly the print-out's pixels
    ae = AE(ae_title="VIEWER")
    ae.add_requested_context(SECONDARY_CAPTURE, [HTJ2KLossless])
    assoc = ae.associate("127.0.0.1", service.dicom_port, ae_title="ECGDICOM")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(pydicom.dcmread(tmp_path / "htj2k.dcm"))
    finally:
        assoc.release()
    assert status.Status == 0x0000
    job = wait_for(service, [str(ds.SOPInstanceUID)])[str(ds.SOPInstanceUID)]
    assert job["state"] == "done", job
