"""Helpers for the waveform / render / images / pages tests (imported explicitly).

Everything is built from real data inside the tests: the three real DICOM
ECGs in ``../shared/data/dicom-ecg``, pydicom's own waveform example and the
training pages in ``../shared/data/ecg-images`` (provenance: tests/README.md).
"""

from __future__ import annotations

import subprocess
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom import examples
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ecg_dicom.pages.multiplex import lead_name
from ecg_dicom.records import STANDARD_LEADS
from ecg_dicom.sop import (
    AMBULATORY_ECG,
    ENCAPSULATED_PDF,
    GENERAL_ECG,
    HEMODYNAMIC_WAVEFORM,
    SECONDARY_CAPTURE,
)
from peers import require_tool

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
REAL_ECGS: dict[str, Path] = {
    "ge-muse-mv360": SHARED_DATA / "dicom-ecg" / "ge-muse-mv360" / "ecg.dcm",
    "ge-mac55": SHARED_DATA / "dicom-ecg" / "ge-mac55" / "ecg.dcm",
    "ecgtoolkit-eli250": SHARED_DATA / "dicom-ecg" / "ecgtoolkit-eli250" / "ecg.dcm",
    "pydicom-waveform": Path(examples.get_path("waveform")),
}
#: (sampling frequency, seconds) of each real file's rhythm group (dcmdump).
REAL_GEOMETRY: dict[str, tuple[float, float]] = {
    "ge-muse-mv360": (500.0, 10.0),
    "ge-mac55": (500.0, 10.0),
    "ecgtoolkit-eli250": (500.0, 10.0),
    "pydicom-waveform": (1000.0, 10.0),
}
TRAINING_PAGES = sorted((SHARED_DATA / "ecg-images").glob("*/*.jpg"))
#: The real GE MAC55 recording: the file most variants are made from.
MAC55 = "ge-mac55"


def read_real(name: str) -> Dataset:
    """A fresh copy of one real ECG (tests may modify it)."""
    return pydicom.dcmread(REAL_ECGS[name])


def roundtrip(ds: Dataset) -> Dataset:
    """Write ``ds`` as a Part 10 file in memory and read it back (what a PACS sends)."""
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(BytesIO(buf.getvalue()))


def dcmtk(tool: str, args: list[str], ds: Dataset, tmp_path: Path) -> Dataset:
    """Run a dcmtk converter on ``ds`` and read its output (TCP_NODELAY=1 as always)."""
    exe = require_tool(tool)
    src, dst = tmp_path / f"in-{tool}.dcm", tmp_path / f"out-{tool}.dcm"
    ds.save_as(src, enforce_file_format=True)
    env = {"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([exe, *args, str(src), str(dst)], capture_output=True, env=env,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return pydicom.dcmread(dst)


def training_page(index: int = 0) -> np.ndarray:
    """One training page as RGB uint8."""
    return np.asarray(Image.open(TRAINING_PAGES[index]).convert("RGB"))


def pink_frame(image: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box of the pink chart frame (red clearly above green)."""
    rgb = image.astype(np.int16)
    ys, xs = np.nonzero(rgb[..., 0] - rgb[..., 1] > 30)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def grid_px_per_mm(image: np.ndarray) -> float:
    """Grid period (px per mm) measured by FFT in a trace-free band under the frame top.

    Used on training pages and on our pages alike: the 5 mm dotted lines give
    the strongest peak between 20 and 40 px.
    """
    x0, y0, x1, _ = pink_frame(image)
    band = 255.0 - image[y0 + 5:y0 + 40, x0 + 5:x1 - 5].astype(np.float64).mean(axis=2)
    profile = band.mean(axis=0)
    n = profile.size
    spectrum = np.abs(np.fft.rfft(profile - profile.mean(), n * 16))
    freq = np.fft.rfftfreq(n * 16)
    window = (freq > 1 / 40) & (freq < 1 / 20)
    return float(1.0 / freq[window][np.argmax(spectrum[window])] / 5.0)


def secondary_capture(image: np.ndarray, **attrs: object) -> Dataset:
    """A minimal but valid single-frame RGB Secondary Capture holding ``image``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.ConversionType = "OT", "WSD"
    ds.PatientName, ds.PatientID = "Test^Page", "T1"
    ds.Rows, ds.Columns = int(image.shape[0]), int(image.shape[1])
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def grey_capture(grey: np.ndarray, bits: int = 8, **attrs: object) -> Dataset:
    """A MONOCHROME2 Secondary Capture of ``grey`` (uint8 or uint16)."""
    ds = secondary_capture(np.zeros((1, 1, 3), np.uint8))
    ds.Rows, ds.Columns = int(grey.shape[0]), int(grey.shape[1])
    ds.SamplesPerPixel = 1
    del ds.PlanarConfiguration
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelData = np.ascontiguousarray(grey, dtype=np.uint8 if bits == 8 else "<u2").tobytes()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


# --- waveform objects built from the real files -----------------------------------


def calibrated_reference(ds: Dataset, index: int = 0) -> np.ndarray:
    """pydicom's calibrated values (channels x samples, µV for these files)."""
    return ds.waveform_array(index).T


def raw_reference(ds: Dataset, index: int = 0) -> np.ndarray:
    group = ds.WaveformSequence[index]
    return np.frombuffer(group.WaveformData, "<i2").reshape(-1, group.NumberOfWaveformChannels).T


def recode(ds: Dataset, raw: np.ndarray, interpretation: str, bits: int, *,
           sensitivity_scale: float = 1.0, baseline_uv: float = 0.0, index: int = 0) -> Dataset:
    """Store ``raw`` (channels x samples) in group ``index`` with a new encoding."""
    group = ds.WaveformSequence[index]
    dtype = {"SB": "i1", "UB": "u1", "MB": "u1", "AB": "u1", "SS": "<i2", "US": "<u2",
             "SL": "<i4", "UL": "<u4", "SV": "<i8", "UV": "<u8"}[interpretation]
    group.WaveformBitsAllocated = bits
    group.WaveformSampleInterpretation = interpretation
    group.WaveformData = np.ascontiguousarray(raw.T.astype(dtype)).tobytes()
    for channel in group.ChannelDefinitionSequence:
        channel.ChannelSensitivity = f"{float(channel.ChannelSensitivity) * sensitivity_scale:.10g}"
        channel.ChannelBaseline = f"{baseline_uv:.10g}"
        channel.WaveformBitsStored = bits
    return roundtrip(ds)


def with_rhythm_samples(ds: Dataset, raw: np.ndarray) -> Dataset:
    """``ds`` with its rhythm group's samples replaced (same SS encoding)."""
    group = ds.WaveformSequence[0]
    group.NumberOfWaveformSamples = raw.shape[1]
    group.WaveformData = np.ascontiguousarray(raw.T).astype("<i2").tobytes()
    return roundtrip(ds)


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def general_ecg(leads: tuple[str, ...] = ("I", "II", "III")) -> Dataset:
    """A General ECG object: three limb leads of the real Mortara recording, labels only."""
    ds = read_real("pydicom-waveform")
    del ds.WaveformSequence[1]
    group = ds.WaveformSequence[0]
    keep = [STANDARD_LEADS.index(name) for name in leads]
    raw = raw_reference(ds)[keep]
    group.ChannelDefinitionSequence = Sequence([group.ChannelDefinitionSequence[i] for i in keep])
    for channel in group.ChannelDefinitionSequence:
        channel.ChannelLabel = lead_name(channel)
        del channel.ChannelSourceSequence[0].CodeValue
        channel.ChannelSourceSequence[0].CodeMeaning = "ECG lead"
    group.NumberOfWaveformChannels = len(keep)
    group.WaveformData = np.ascontiguousarray(raw.T).astype("<i2").tobytes()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = GENERAL_ECG
    return roundtrip(ds)


def ambulatory_ecg(seconds: int = 60) -> Dataset:
    """An Ambulatory ECG: 2 channels (II, V5), 8-bit SB at 200 Hz, real beats repeated."""
    ds = read_real("pydicom-waveform")
    del ds.WaveformSequence[1]
    group = ds.WaveformSequence[0]
    raw = raw_reference(ds)[[1, 10], ::5]  # 1000 Hz -> 200 Hz
    raw = np.tile(raw, (1, seconds // 10))
    raw = np.clip(np.round(raw / 32.0), -128, 127)  # 40 µV steps
    channels = group.ChannelDefinitionSequence
    group.ChannelDefinitionSequence = Sequence([channels[i] for i in (1, 10)])
    group.NumberOfWaveformChannels, group.NumberOfWaveformSamples = 2, raw.shape[1]
    group.SamplingFrequency = 200
    group.MultiplexGroupLabel = "HOLTER"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = AMBULATORY_ECG
    return recode(ds, raw, "SB", 8, sensitivity_scale=32)


def hemodynamic(modality: str = "ECG") -> Dataset:
    """A Hemodynamic object: the real leads II and V5 plus an arterial pressure channel."""
    ds = read_real("ge-mac55")
    del ds.WaveformSequence[1]
    group = ds.WaveformSequence[0]
    raw = raw_reference(ds)[[1, 10]]
    pressure = np.round(100 + 20 * np.sin(np.arange(raw.shape[1]) / 80.0)).astype(np.int64)
    ch_pressure = Dataset()
    ch_pressure.update(group.ChannelDefinitionSequence[0])
    ch_pressure.ChannelSourceSequence = Sequence([code_item("2:4106", "MDC", "Arterial pressure")])
    ch_pressure.ChannelLabel = "ART"
    ch_pressure.ChannelSensitivity = "1"
    ch_pressure.ChannelSensitivityUnitsSequence = Sequence([code_item("mm[Hg]", "UCUM", "mmHg")])
    group.ChannelDefinitionSequence = Sequence(
        [group.ChannelDefinitionSequence[1], ch_pressure, group.ChannelDefinitionSequence[10]])
    group.NumberOfWaveformChannels = 3
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = HEMODYNAMIC_WAVEFORM
    ds.Modality = modality
    return recode(ds, np.vstack([raw[0], pressure, raw[1]]), "SS", 16)



# --- PDF ---------------------------------------------------------------------------


def pdf_of(picture: np.ndarray) -> bytes:
    buf = BytesIO()
    Image.fromarray(picture).save(buf, "PDF", resolution=96.0)
    return buf.getvalue()


def encapsulated_pdf(document: bytes) -> Dataset:
    ds = secondary_capture(np.zeros((1, 1, 3), np.uint8), SOPClassUID=ENCAPSULATED_PDF)
    for keyword in ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation",
                    "PlanarConfiguration", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "PixelData"):
        delattr(ds, keyword)
    ds.file_meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF
    ds.Modality = "ECG"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = document + (b"\x00" if len(document) % 2 else b"")
    return roundtrip(ds)
