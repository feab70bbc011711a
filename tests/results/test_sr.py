"""sr.py: what the SR says -- probability of the stated finding, decisive boxes only,
"Not interpretable" coded with its reason, Procedure Reported per input kind, and the
source device as Acquisition Equipment.

Built from the real cart ECGs (and variants made from them: variants), with
results from the real decision rule (detect.decide) or for a real not-interpretable
input (a flat copy of the GE MAC55).  Read back with highdicom and dcmtk's dsrdump;
every SR is checked with dciodvfy (dicom3tools).  A missing tool fails the test.
"""

from __future__ import annotations

import copy
import subprocess
from io import BytesIO
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom import Dataset

from ecg_dicom.config import Settings
from ecg_dicom.errors import NotInterpretableError
from ecg_dicom.model import NO_CHART_REASON, decide, not_interpretable
from ecg_dicom.pages import not_interpretable_page, page_from_dataset
from ecg_dicom.records import Classification, Detection, Outputs, Page
from ecg_dicom.results.build import build_outputs
from ecg_dicom.results.equipment import source_equipment
from ecg_dicom.sop import GENERAL_ECG
from peers import dcmtk_env, require_tool
from results.samples import measurement_report
from variants import (
    ambulatory_ecg,
    general_ecg,
    hemodynamic,
    raw_reference,
    read_real,
    roundtrip,
    secondary_capture,
    training_page,
)

MODEL = "ecg-dicom YOLOv8m"
VERSION = "5e1f" * 16
PROBABILITY = hd.sr.CodedConcept("122157", "DCM", "Probability")


def _roundtrip(ds: Dataset) -> Dataset:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(BytesIO(buffer.getvalue()))


def _result(*boxes: Detection, threshold: float = 0.5) -> Classification:
    return decide(boxes, model_name=MODEL, model_version=VERSION, threshold=threshold,
                  runtime="onnx f32")


def _page_and_result(ds: Dataset) -> tuple[Page, Classification]:
    """The page the service would use, and a not-interpretable result where it would."""
    try:
        return page_from_dataset(ds), _result()
    except NotInterpretableError as exc:
        return not_interpretable_page(exc), not_interpretable(exc.reason, MODEL, VERSION)


def _build(source: Dataset, page: Page, result: Classification) -> Outputs:
    return build_outputs(source, page, result, Settings())


def _sr(outputs: Outputs) -> hd.sr.Comprehensive3DSR:
    return hd.sr.Comprehensive3DSR.from_dataset(_roundtrip(outputs.sr))  # type: ignore[arg-type]


def _code(concept: object) -> tuple[str, str]:
    return (concept.value, concept.scheme_designator)  # type: ignore[attr-defined]


def _summary_items(sr: hd.sr.Comprehensive3DSR) -> list[Dataset]:
    (summary,) = measurement_report(sr).get_image_measurement_groups()
    return list(summary[0].ContentSequence)


def _concepts(items: list[Dataset]) -> dict[str, object]:
    found: dict[str, object] = {}
    for item in items:
        key = item.ConceptNameCodeSequence[0].CodeValue
        if item.ValueType == "CODE":
            code = item.ConceptCodeSequence[0]
            found[key] = (code.CodeValue, code.CodingSchemeDesignator)
        elif item.ValueType == "TEXT":
            found[key] = item.TextValue
        elif item.ValueType == "NUM":
            found[key] = float(item.MeasuredValueSequence[0].NumericValue)
    return found


def _dciodvfy_errors(ds: Dataset, tmp_path: Path) -> list[str]:
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    run = subprocess.run([require_tool("dciodvfy"), str(path)], capture_output=True, text=True,
                         env=dcmtk_env(), check=False, timeout=120)
    return [ln for ln in (run.stdout + run.stderr).splitlines() if ln.startswith("Error")]


def _dsrdump(ds: Dataset, tmp_path: Path) -> str:
    path = tmp_path / f"dump-{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    run = subprocess.run([require_tool("dsrdump"), "+Pl", "+Pc", str(path)], capture_output=True,
                         text=True, env=dcmtk_env(), check=False, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.fixture(scope="module")
def mac55() -> tuple[Dataset, Page]:
    source = read_real("ge-mac55")
    return source, page_from_dataset(source)


def _box(page: Page, region: int) -> tuple[float, float, float, float]:
    r = page.regions[region]
    return (r.x0 + 4, r.y0 + 4, r.x1 - 4, r.y1 - 4)


# --- probability of the stated finding ---------------------------------------------------


def test_normal_probability_is_one_minus_the_abnormal_score(mac55: tuple[Dataset, Page]) -> None:
    source, page = mac55
    result = _result(Detection("Normal-ECG", 0.7, _box(page, 0)),
                     Detection("History_MI", 0.3, _box(page, 4)))
    assert result.label == "Normal"
    items = _concepts(_summary_items(_sr(_build(source, page, result))))
    assert items["121071"] == ("164854000", "SCT")  # Finding: Normal
    assert items["122157"] == pytest.approx(0.7)  # 1 - 0.3/(0.3 + 0.7)
    assert items["111017"] == ("111242", "DCM")
    assert items["121073"] == ("164854000", "SCT")  # Impression: the Normal-ECG class


def test_abnormal_probability_is_the_abnormal_score_not_a_box_confidence(
    mac55: tuple[Dataset, Page],
) -> None:
    source, page = mac55
    result = _result(Detection("MI-ECG", 0.6, _box(page, 1)),
                     Detection("Normal-ECG", 0.2, _box(page, 0)))
    items = _concepts(_summary_items(_sr(_build(source, page, result))))
    assert items["121071"] == ("102594003", "SCT")  # Abnormal ECG
    assert items["122157"] == pytest.approx(0.75) != 0.6
    assert items["121073"] == ("57054005", "SCT")  # acute MI


def test_impression_never_contradicts_the_label(mac55: tuple[Dataset, Page]) -> None:
    source, page = mac55
    # threshold 0.25: Abnormal although the Normal-ECG box is the most confident
    result = _result(Detection("Normal-ECG", 0.7, _box(page, 0)),
                     Detection("History_MI", 0.3, _box(page, 4)), threshold=0.25)
    items = _concepts(_summary_items(_sr(_build(source, page, result))))
    assert items["121071"] == ("102594003", "SCT")
    assert items["121073"] == ("399211009", "SCT")  # History of MI, not "Normal"
    assert items["122157"] == pytest.approx(0.3)


# --- only decisive boxes become findings -------------------------------------------------


def test_only_decisive_boxes_become_coded_findings(
    mac55: tuple[Dataset, Page], tmp_path: Path
) -> None:
    source, page = mac55
    result = _result(
        Detection("ECG HB", 0.6, _box(page, 1)),
        Detection("History_MI", 0.3, _box(page, 4)),
        Detection("Normal-ECG", 0.2, _box(page, 0)),
        Detection("Normal-ECG", 0.1, _box(page, 8)),
    )
    outputs = _build(source, page, result)
    groups = measurement_report(_sr(outputs)).get_planar_roi_measurement_groups()
    assert [_code(g.finding_type) for g in groups] == [("698247007", "SCT"), ("164854000", "SCT")]
    probabilities = [g.get_measurements(name=PROBABILITY)[0].value for g in groups]
    assert probabilities == pytest.approx([0.6, 0.2])  # each box's own confidence
    # Numbered by their place in the result's list (the JSON a person can read).
    assert [str(g.tracking_identifier).split(":")[0] for g in groups] == [
        "Detection 1", "Detection 3"]
    dump = _dsrdump(outputs.sr, tmp_path)  # type: ignore[arg-type]
    assert dump.count("POLYLINE") == 2 and "399211009" not in dump
    assert not _dciodvfy_errors(outputs.sr, tmp_path)  # type: ignore[arg-type]


# --- not interpretable -------------------------------------------------------------------


@pytest.fixture(scope="module")
def flat_mac55() -> tuple[Dataset, Page, Classification]:
    source = read_real("ge-mac55")
    group = source.WaveformSequence[0]
    group.WaveformData = np.zeros_like(raw_reference(source)).T.astype("<i2").tobytes()
    source = roundtrip(source)
    page, result = _page_and_result(source)
    return source, page, result


def test_not_interpretable_is_coded_with_its_reason(
    flat_mac55: tuple[Dataset, Page, Classification], tmp_path: Path
) -> None:
    source, page, result = flat_mac55
    assert result.label == "Not interpretable" and "flat" in result.reason
    outputs = _build(source, page, result)
    sr = _sr(outputs)
    items = _summary_items(sr)
    found = _concepts(items)
    assert found["111017"] == ("111245", "DCM")  # No algorithms succeeded; without findings
    assert found["121106"] == f"Not interpretable: {result.reason}"  # Comment (TEXT)
    for absent in ("121071", "122157", "121073"):  # no Finding, Probability, Impression
        assert absent not in found
    assert measurement_report(sr).get_planar_roi_measurement_groups() == []
    # The TEXT evaluation follows the coded one (TID 1501 rows 11 and 12).
    kinds = [(i.ValueType, i.ConceptNameCodeSequence[0].CodeValue) for i in items]
    assert kinds.index(("TEXT", "121106")) == kinds.index(("CODE", "111017")) + 1
    dump = _dsrdump(outputs.sr, tmp_path)  # type: ignore[arg-type]
    assert "No algorithms succeeded; without findings" in dump
    assert "Not interpretable: the recording is flat" in dump
    assert not _dciodvfy_errors(outputs.sr, tmp_path)  # type: ignore[arg-type]


def test_no_box_is_not_interpretable_in_the_sr(mac55: tuple[Dataset, Page]) -> None:
    source, page = mac55
    found = _concepts(_summary_items(_sr(_build(source, page, _result()))))
    assert found["111017"] == ("111245", "DCM")
    assert found["121106"] == f"Not interpretable: {NO_CHART_REASON}"
    assert "121071" not in found and "122157" not in found


def test_unknown_label_is_refused(mac55: tuple[Dataset, Page]) -> None:
    source, page = mac55
    bad = Classification(label="No finding", class_name=None, confidence=0.0,  # type: ignore[arg-type]
                         abnormal_score=0.0, detections=(), model_name=MODEL,
                         model_version=VERSION)
    with pytest.raises(ValueError, match="unknown result label 'No finding'"):
        _build(source, page, bad)


# --- Procedure Reported per input kind -----------------------------------------------------


def _twelve_lead_general() -> Dataset:
    ds = read_real("ge-mac55")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = GENERAL_ECG
    return roundtrip(ds)


def _scanned_page() -> Dataset:
    return roundtrip(secondary_capture(training_page(0), Manufacturer="ScanCo",
                                       ManufacturerModelName="PageScan 9"))


@pytest.mark.parametrize(("make", "code"), [
    (lambda: read_real("ge-mac55"), ("268400002", "SCT", "12-Lead ECG")),
    (_twelve_lead_general, ("268400002", "SCT", "12-Lead ECG")),
    (general_ecg, ("ECG", "DCM", "Electrocardiography")),  # 3 leads: not a 12-lead ECG
    (ambulatory_ecg, ("266706003", "SCT", "Continuous electrocardiogram monitoring")),
    (hemodynamic, ("41976001", "SCT", "Cardiac catheterization")),
    (_scanned_page, ("ECG", "DCM", "Electrocardiography")),
], ids=["12-lead", "general-12", "general-3", "ambulatory", "hemodynamic", "scanned-page"])
def test_procedure_reported_matches_the_input(make, code, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = make()
    page, result = _page_and_result(source)
    outputs = _build(source, page, result)
    sr = _roundtrip(outputs.sr)  # type: ignore[arg-type]
    (procedure,) = [
        item for item in sr.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == "121058"  # Procedure reported
    ]
    value = procedure.ConceptCodeSequence[0]
    assert (value.CodeValue, value.CodingSchemeDesignator, value.CodeMeaning) == code
    assert not _dciodvfy_errors(outputs.sr, tmp_path)  # type: ignore[arg-type]


def test_procedure_codes_exist_in_pydicoms_dictionary() -> None:
    from pydicom.sr.codedict import codes

    assert codes.SCT._12LeadECG.value == "268400002"
    assert codes.cid3670._12LeadECG.value == "268400002"  # CID 3670 ECG Procedure Types
    assert codes.SCT.ContinuousElectrocardiogramMonitoring.value == "266706003"
    assert codes.cid3757.CardiacCatheterization.value == "41976001"
    assert codes.cid29.Electrocardiography.value == "ECG"
    assert codes.cid6047.NoAlgorithmsSucceededWithoutFindings.value == "111245"
    assert codes.DCM.Comment.value == "121106"
    assert codes.cid7005.AcquisitionEquipment.value == "109101"


# --- Contributing Equipment: the cart acquired it, ecg-dicom processed it ---------------


def _equipment(ds: Dataset) -> list[tuple[str, str, str, str]]:
    return [
        (str(e.get("Manufacturer", "")), str(e.get("ManufacturerModelName", "")),
         e.PurposeOfReferenceCodeSequence[0].CodeValue,
         e.PurposeOfReferenceCodeSequence[0].CodeMeaning)
        for e in _roundtrip(ds).ContributingEquipmentSequence
    ]


def test_source_device_is_the_acquisition_equipment_of_sr_and_sc(
    flat_mac55: tuple[Dataset, Page, Classification],
) -> None:
    source, page, result = flat_mac55
    outputs = _build(source, page, result)
    for ds in (outputs.sr, outputs.sc):
        equipment = _equipment(ds)  # type: ignore[arg-type]
        assert equipment[0] == ("GE", "MAC55", "109101", "Acquisition Equipment")
        assert [e for e in equipment if e[2] == "109101"] == [equipment[0]]  # only the cart
        assert (Settings().output.manufacturer, MODEL, "Newcode1", "Processing Algorithm") in (
            equipment)
        first = _roundtrip(ds).ContributingEquipmentSequence[0]  # type: ignore[arg-type]
        assert first.InstitutionName == "VUMC" and first.StationName == "1"
        assert first.ContributionDateTime == source.AcquisitionDateTime


def test_scanned_page_names_the_scanner(tmp_path: Path) -> None:
    source = _scanned_page()
    page, result = _page_and_result(source)
    outputs = _build(source, page, result)
    assert _equipment(outputs.sr)[0] == (  # type: ignore[arg-type]
        "ScanCo", "PageScan 9", "109101", "Acquisition Equipment")
    assert not _dciodvfy_errors(outputs.sr, tmp_path)  # type: ignore[arg-type]


def test_source_without_manufacturer_gives_no_acquisition_item(
    mac55: tuple[Dataset, Page],
) -> None:
    source, page = mac55
    anonymous = copy.deepcopy(source)
    anonymous.Manufacturer = ""
    assert source_equipment(anonymous) is None  # nothing is invented
    outputs = _build(anonymous, page, _result(Detection("MI-ECG", 0.9, _box(page, 1))))
    assert all(e[2] != "109101" for e in _equipment(outputs.sr))  # type: ignore[arg-type]
    item = source_equipment(source)
    assert item is not None and "DeviceSerialNumber" not in item  # absent in the source
