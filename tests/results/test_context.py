"""Identity and order context reach both results, and both stay valid.

A real cart ECG (GE MUSE, from shared/data) is given what a hospital's RIS and
MPI put there: an ISO_IR 192 (UTF-8) patient name with Japanese ideographic and
phonetic groups, a Greek referring physician, Issuer of Patient ID with its
qualifiers, Other Patient IDs, Accession Number with its issuer, Request
Attributes, patient age/size/weight, a Study Description and a Timezone Offset.
``build.build_outputs`` then makes the SC and the SR, and:

* both keep every one of them, read back from Part 10 bytes, strings encoded in
  UTF-8 as declared;
* the SC carries the Request Attributes Sequence (General Series, PS3.3 C.7.3.1),
  the SR a Referenced Request Sequence (SR Document General, C.17.2.1) built
  from it, with the accession number's issuer;
* times written by the build are in the source's timezone;
* dciodvfy (dicom3tools) reports no error, and no warning but the source's own
  missing Study ID, on either object, nor on the SC of a lossy JPEG image source;
* an invalid value from the sender (Patient's Age "45") is left out, and a
  source without any order gets no Referenced Request Sequence.

A missing dciodvfy fails the test (peers.require_tool).
"""

from __future__ import annotations

import datetime
import subprocess
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

from ecg_dicom.config import Settings
from ecg_dicom.pages import page_from_dataset
from ecg_dicom.records import Classification, Detection, Outputs, Page
from ecg_dicom.results.build import build_outputs
from ecg_dicom.results.context import copy_context
from ecg_dicom.results.orders import referenced_requests
from peers import dcmtk_env, require_tool
from realdata import DICOM_ECG_DIR
from results.samples import read_rgb

pytestmark = pytest.mark.integration

NAME = "Yamada^Tarou=山田^太郎=やまだ^たろう"
REFERRING = "Papadopoulos^Nikos=Παπαδόπουλος^Νίκος"
#: LO allows 64 characters; dciodvfy counts UTF-8 bytes, so the test value fits 64 bytes.
DESCRIPTION = "Ruhe-EKG für — Ηλεκτροκαρδιογράφημα"
ACCESSION = "ACC-2024-0042"
OFFSET = "+0900"
#: dciodvfy warnings accepted: the cart's own object has no Study ID (type 2, copied empty).
ACCEPTED_WARNINGS = (
    "Missing attribute or value that would be needed to build DICOMDIR - Study ID",
)


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _hospital_ecg() -> Dataset:
    """The GE MUSE cart ECG with a hospital's identity and order context."""
    ds = pydicom.dcmread(DICOM_ECG_DIR / "ge-muse-mv360" / "ecg.dcm")
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = NAME
    ds.PatientID = "4711"
    ds.IssuerOfPatientID = "TOKYO-UH"
    ds.IssuerOfPatientIDQualifiersSequence = DicomSequence([_item(
        UniversalEntityID="1.2.392.200036.9999.1", UniversalEntityIDType="ISO",
        IdentifierTypeCode="MR")])
    ds.OtherPatientIDsSequence = DicomSequence([_item(
        PatientID="N-99812", IssuerOfPatientID="NATIONAL", TypeOfPatientID="TEXT")])
    ds.PatientAge = "061Y"
    ds.PatientSize = "1.72"
    ds.PatientWeight = "68.5"
    ds.StudyDescription = DESCRIPTION
    ds.ReferringPhysicianName = REFERRING
    ds.AccessionNumber = ACCESSION
    ds.IssuerOfAccessionNumberSequence = DicomSequence([_item(LocalNamespaceEntityID="RIS-TOKYO")])
    ds.RequestAttributesSequence = DicomSequence([_item(
        RequestedProcedureID="RP-12", AccessionNumber=ACCESSION,
        RequestedProcedureDescription="12誘導心電図", ScheduledProcedureStepID="SPS-3")])
    ds.TimezoneOffsetFromUTC = OFFSET
    return _roundtrip(ds)


def _roundtrip(ds: Dataset) -> Dataset:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(BytesIO(buffer.getvalue()))


def _abnormal(page: Page) -> Classification:
    r = page.regions[1]
    det = Detection("MI-ECG", 0.91, (r.x0 + 5, r.y0 + 5, r.x1 - 5, r.y1 - 5))
    return Classification(label="Abnormal", class_name="MI-ECG", confidence=0.91,
                          abnormal_score=0.93, detections=(det,), model_name="ecg-dicom YOLOv8m",
                          model_version="7d" * 32, runtime="onnx f32")


def _dciodvfy(ds: Dataset, path: Path) -> list[str]:
    """Errors and unaccepted warnings dciodvfy reports for ``ds`` written to ``path``."""
    ds.save_as(path, enforce_file_format=True)
    run = subprocess.run([require_tool("dciodvfy"), str(path)], capture_output=True, text=True,
                         env=dcmtk_env(), check=False, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    return [ln for ln in lines if ln.startswith("Error")] + [
        ln for ln in lines
        if ln.startswith("Warning") and not any(a in ln for a in ACCEPTED_WARNINGS)
    ]


@pytest.fixture(scope="module")
def built() -> tuple[Dataset, Outputs, datetime.datetime]:
    source = _hospital_ecg()
    page = page_from_dataset(source)
    started = datetime.datetime.now(datetime.UTC)
    return source, build_outputs(source, page, _abnormal(page), Settings()), started


@pytest.mark.parametrize("which", ["sc", "sr"])
def test_identity_and_study_context_kept(
    built: tuple[Dataset, Outputs, datetime.datetime], which: str
) -> None:
    source, outputs, _ = built
    ds = _roundtrip(getattr(outputs, which))
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.PatientName == NAME and ds.ReferringPhysicianName == REFERRING
    assert ds.StudyDescription == DESCRIPTION
    # The bytes on the wire are UTF-8, as declared.
    raw = pydicom.dcmread(BytesIO(_bytes(getattr(outputs, which))), defer_size=None)
    assert raw.get_item("PatientName").value == NAME.encode("utf-8")
    for keyword in ("PatientID", "IssuerOfPatientID", "PatientAge", "PatientSize",
                    "PatientWeight", "AccessionNumber", "StudyInstanceUID", "StudyDate",
                    "StudyTime", "TimezoneOffsetFromUTC"):
        assert str(ds[keyword].value) == str(source[keyword].value), (which, keyword)
    qualifiers = ds.IssuerOfPatientIDQualifiersSequence[0]
    assert qualifiers.UniversalEntityID == "1.2.392.200036.9999.1"
    assert qualifiers.UniversalEntityIDType == "ISO" and qualifiers.IdentifierTypeCode == "MR"
    other = ds.OtherPatientIDsSequence[0]
    assert (other.PatientID, other.IssuerOfPatientID) == ("N-99812", "NATIONAL")
    assert ds.IssuerOfAccessionNumberSequence[0].LocalNamespaceEntityID == "RIS-TOKYO"


def test_sc_keeps_request_attributes(built: tuple[Dataset, Outputs, datetime.datetime]) -> None:
    _, outputs, _ = built
    sc = _roundtrip(outputs.sc)
    (request,) = sc.RequestAttributesSequence
    assert request.RequestedProcedureID == "RP-12"
    assert request.AccessionNumber == ACCESSION
    assert request.RequestedProcedureDescription == "12誘導心電図"
    assert request.ScheduledProcedureStepID == "SPS-3"
    assert "ReferencedRequestSequence" not in sc  # an SR attribute


def test_sr_references_the_request(built: tuple[Dataset, Outputs, datetime.datetime]) -> None:
    source, outputs, _ = built
    sr = _roundtrip(outputs.sr)
    (request,) = sr.ReferencedRequestSequence
    assert request.StudyInstanceUID == source.StudyInstanceUID
    assert request.AccessionNumber == ACCESSION
    assert request.IssuerOfAccessionNumberSequence[0].LocalNamespaceEntityID == "RIS-TOKYO"
    assert request.RequestedProcedureID == "RP-12"
    assert request.RequestedProcedureDescription == "12誘導心電図"
    # Type 2 attributes present (empty) where the order did not say.
    for keyword in ("ReferencedStudySequence", "PlacerOrderNumberImagingServiceRequest",
                    "FillerOrderNumberImagingServiceRequest", "RequestedProcedureCodeSequence"):
        assert keyword in request, keyword
    assert "RequestAttributesSequence" not in sr  # not in the SR Document Series module


def test_times_written_by_the_build_are_in_the_source_timezone(
    built: tuple[Dataset, Outputs, datetime.datetime],
) -> None:
    _, outputs, started = built
    zone = datetime.timezone(datetime.timedelta(hours=9))
    for ds in (outputs.sc, outputs.sr):
        for date_kw, time_kw in (("InstanceCreationDate", "InstanceCreationTime"),
                                 ("ContentDate", "ContentTime")):
            stamp = datetime.datetime.strptime(
                f"{ds[date_kw].value}{str(ds[time_kw].value)[:6]}", "%Y%m%d%H%M%S"
            ).replace(tzinfo=zone)
            assert abs((stamp - started).total_seconds()) < 120, (date_kw, stamp, started)
    assert outputs.sc.DateOfSecondaryCapture == outputs.sc.ContentDate


def test_both_outputs_pass_dciodvfy(
    built: tuple[Dataset, Outputs, datetime.datetime], tmp_path: Path
) -> None:
    _, outputs, _ = built
    problems = {
        name: _dciodvfy(ds, tmp_path / f"{name}.dcm")
        for name, ds in (("sc", outputs.sc), ("sr", outputs.sr))
    }
    assert problems == {"sc": [], "sr": []}, problems


def test_dciodvfy_sees_a_broken_request(
    built: tuple[Dataset, Outputs, datetime.datetime], tmp_path: Path
) -> None:
    """The check can fail: a Referenced Request item without its Study Instance UID
    (type 1) is reported."""
    _, outputs, _ = built
    sr = _roundtrip(outputs.sr)
    del sr.ReferencedRequestSequence[0].StudyInstanceUID
    assert any("StudyInstanceUID" in p or "Study Instance UID" in p
               for p in _dciodvfy(sr, tmp_path / "broken.dcm"))


@pytest.mark.filterwarnings("ignore:Invalid value for VR AS")
def test_invalid_values_from_the_sender_are_left_out(tmp_path: Path) -> None:
    source = _hospital_ecg()
    source.PatientAge = "61"  # AS must be nnnD/W/M/Y (PS3.5 6.2)
    source.TimezoneOffsetFromUTC = "JST"
    page = page_from_dataset(source)
    outputs = build_outputs(source, page, _abnormal(page), Settings())
    for name, ds in (("sc", outputs.sc), ("sr", outputs.sr)):
        assert "PatientAge" not in ds and "TimezoneOffsetFromUTC" not in ds, name
        assert _dciodvfy(ds, tmp_path / f"{name}.dcm") == [], name


def test_no_order_no_referenced_request() -> None:
    source = pydicom.dcmread(DICOM_ECG_DIR / "ge-muse-mv360" / "ecg.dcm")
    assert not source.get("AccessionNumber") and "RequestAttributesSequence" not in source
    assert referenced_requests(source) == []
    source.AccessionNumber = ACCESSION
    (item,) = referenced_requests(source)
    assert item.AccessionNumber == ACCESSION and item.RequestedProcedureID == ""


def test_character_set_follows_what_the_object_holds() -> None:
    """A Latin-1 source stays ISO_IR 100; a value outside it (a Greek institution
    name from the configuration) makes the result declare UTF-8."""
    source = pydicom.dcmread(DICOM_ECG_DIR / "ge-muse-mv360" / "ecg.dcm")
    assert source.SpecificCharacterSet == "ISO_IR 100"
    target = Dataset()
    target.Modality = "ECG"
    target.PatientName = "Müller^Jürgen"
    copy_context(source, target)
    assert target.SpecificCharacterSet == "ISO_IR 100"
    target.InstitutionName = "Πανεπιστημιακό Νοσοκομείο"
    copy_context(source, target)
    assert target.SpecificCharacterSet == "ISO_IR 192"
    assert pydicom.dcmread(BytesIO(_bytes(target, with_meta=False)), force=True).InstitutionName \
        == "Πανεπιστημιακό Νοσοκομείο"
    # No character set in the source: the default repertoire is ASCII, so an accented
    # name made by us needs UTF-8 declared; ASCII alone declares nothing.
    plain = Dataset()
    plain.StudyInstanceUID = source.StudyInstanceUID
    ascii_only = Dataset()
    ascii_only.InstitutionName = "General Hospital"
    copy_context(plain, ascii_only)
    assert "SpecificCharacterSet" not in ascii_only
    accented = Dataset()
    accented.InstitutionName = "Universitätsklinikum"
    copy_context(plain, accented)
    assert accented.SpecificCharacterSet == "ISO_IR 192"


def _bytes(ds: Dataset, with_meta: bool = True) -> bytes:
    buffer = BytesIO()
    if with_meta:
        ds.save_as(buffer, enforce_file_format=True)
    else:
        ds.save_as(buffer, implicit_vr=False, little_endian=True)
    return buffer.getvalue()


def test_lossy_image_source_sc_passes_dciodvfy(tmp_path: Path) -> None:
    """An SC made from a real JPEG scan carries Lossy Image Compression 01 with its
    ratio and method (PS3.3 C.7.6.1.1.5) and stays valid."""
    import highdicom as hd
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, generate_uid

    from realdata import ECG_IMAGES_DIR

    path = min((ECG_IMAGES_DIR / "history_mi").glob("*.jpg"))
    rgb = read_rgb(path)
    scan = hd.sc.SCImage(
        pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", study_instance_uid=generate_uid(),
        series_instance_uid=generate_uid(), series_number=1, sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer="scanner", patient_id="IMG-1",
        patient_name="Doe^Jane", patient_birth_date="19600101", patient_sex="F",
        accession_number="ACC1", study_id="S1", study_date="20240102", study_time="101010",
        referring_physician_name="Ref^Doctor", patient_orientation=("L", "F"),
    )
    scan.PixelData = encapsulate([path.read_bytes()])
    scan["PixelData"].VR = "OB"
    scan.PhotometricInterpretation = "YBR_FULL_422"
    scan.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    source = _roundtrip(scan)
    page = page_from_dataset(source)
    h, w = page.image.shape[:2]
    det = Detection("History_MI", 0.8, (w * 0.1, h * 0.2, w * 0.4, h * 0.5))
    result = Classification(label="Abnormal", class_name="History_MI", confidence=0.8,
                            abnormal_score=0.9, detections=(det,), model_name="m",
                            model_version="1f" * 32)
    outputs = build_outputs(source, page, result, Settings())
    assert outputs.sc.LossyImageCompression == "01"
    assert outputs.sc.LossyImageCompressionMethod == "ISO_10918_1"
    assert float(outputs.sc.LossyImageCompressionRatio) > 5
    assert "PixelSpacing" not in outputs.sc  # a picture of unknown scale
    problems = {name: _dciodvfy(ds, tmp_path / f"{name}.dcm")
                for name, ds in (("sc", outputs.sc), ("sr", outputs.sr))}
    assert problems == {"sc": [], "sr": []}, problems


@pytest.mark.parametrize(("charset", "name", "declared"), [
    # Japanese with code extensions: the empty first value is ISO 2022 IR 6 (C.12.1.1.2)
    (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎", ["ISO 2022 IR 6", "ISO 2022 IR 87"]),
    # Korean: highdicom cannot write ISO 2022 IR 149, so the results declare UTF-8
    (["", "ISO 2022 IR 149"], "Kim^Minjun=김^민준", "ISO_IR 192"),
    ("ISO_IR 100", "Müller^Jürgen", "ISO_IR 100"),
])
def test_character_sets_of_real_sites(
    charset: str | list[str], name: str, declared: str | list[str], tmp_path: Path
) -> None:
    source = _hospital_ecg()
    source.SpecificCharacterSet = charset
    source.PatientName = name
    source.ReferringPhysicianName = "Sato^Hanako"
    source.StudyDescription = "Resting ECG"
    source.RequestAttributesSequence[0].RequestedProcedureDescription = "Resting ECG"
    source = _roundtrip(source)
    assert source.PatientName == name
    page = page_from_dataset(source)
    outputs = build_outputs(source, page, _abnormal(page), Settings())
    for which, ds in (("sc", outputs.sc), ("sr", outputs.sr)):
        assert ds.SpecificCharacterSet == declared, which
        assert _roundtrip(ds).PatientName == name, which
        assert _dciodvfy(ds, tmp_path / f"{which}.dcm") == [], which
