"""samples.py: every Waveform Sample Interpretation and byte order decodes to the real signal.

References are computed independently: pydicom's own ``waveform_array`` for
values in µV, a numpy G.711 encoder (ITU-T G.711 segment search, not the table
decoder under test) for µ-law/A-law, dcmtk ``dcmconv`` for byte orders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecg_dicom.errors import UnsupportedInputError
from ecg_dicom.pages.samples import decode_samples
from ecg_dicom.pages.waveform import load_waveform
from variants import (
    MAC55,
    calibrated_reference,
    dcmtk,
    raw_reference,
    read_real,
    recode,
)


def ulaw_encode(x: np.ndarray) -> np.ndarray:
    """ITU-T G.711 µ-law encoder (segment search on biased magnitude)."""
    x = x.astype(np.int64)
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int64) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(((x < 0) << 7) | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def alaw_encode(x: np.ndarray) -> np.ndarray:
    """ITU-T G.711 A-law encoder (as in the reference g711.c)."""
    v = x.astype(np.int64) >> 3
    negative = v < 0
    mask = np.where(negative, 0x55, 0xD5)
    v = np.where(negative, -v - 1, v)
    segment = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), v)
    low = np.where(segment < 2, (v >> 1) & 0xF, (v >> np.maximum(segment, 1)) & 0xF)
    value = np.where(segment >= 8, 0x7F, (np.minimum(segment, 7) << 4) | low)
    return (value ^ mask).astype(np.uint8)


@pytest.mark.parametrize(
    ("interpretation", "bits", "factor", "offset"),
    [("SL", 32, 4, 0), ("UL", 32, 4, 2**31), ("SV", 64, 8, 0), ("UV", 64, 8, 2**32),
     ("US", 16, 1, 32768)],
)
def test_wide_and_unsigned_samples_give_the_same_microvolts(
    interpretation: str, bits: int, factor: int, offset: int
) -> None:
    ds = read_real(MAC55)  # 5 µV per unit
    reference = calibrated_reference(ds)
    raw = raw_reference(ds).astype(np.int64) * factor + offset
    sensitivity = 5.0 / factor
    ds = recode(ds, raw, interpretation, bits, sensitivity_scale=1 / factor,
                baseline_uv=-offset * sensitivity)
    np.testing.assert_allclose(load_waveform(ds).data, reference, atol=0.05)


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the ELI250 file's own UIDs
@pytest.mark.parametrize(("interpretation", "offset"), [("SB", 0), ("UB", 128)])
def test_eight_bit_samples(interpretation: str, offset: int) -> None:
    ds = read_real("ecgtoolkit-eli250")  # 2.5 µV per unit, peaks within +-8 mV
    reference = calibrated_reference(ds)
    raw = np.clip(np.round(raw_reference(ds) / 32.0), -128, 127).astype(np.int64) + offset
    ds = recode(ds, raw, interpretation, 8, sensitivity_scale=32, baseline_uv=-offset * 80.0)
    # quantised to 80 µV steps: within half a step of pydicom's values
    assert np.max(np.abs(load_waveform(ds).data - reference)) <= 40.0 + 1e-3


@pytest.mark.parametrize(("interpretation", "encode"), [("MB", ulaw_encode), ("AB", alaw_encode)])
def test_g711_companded_samples_decode_to_the_real_signal(interpretation: str, encode) -> None:  # type: ignore[no-untyped-def]
    ds = read_real(MAC55)
    reference = calibrated_reference(ds)
    linear = raw_reference(ds).astype(np.int64) * 8  # use the 16-bit range of G.711
    ds = recode(ds, encode(linear), interpretation, 8, sensitivity_scale=1 / 8)
    decoded = load_waveform(ds).data
    # G.711 keeps 4 mantissa bits: error within 1/32 of the value (+ one step near 0)
    bound = np.abs(reference) / 32.0 + 16 * 0.625
    assert np.all(np.abs(decoded - reference) <= bound)
    assert np.corrcoef(decoded[1], reference[1])[0, 1] > 0.999


@pytest.mark.parametrize(("option", "syntax"), [("+tb", "1.2.840.10008.1.2.2"),
                                                  ("+td", "1.2.840.10008.1.2.1.99"),
                                                  ("+ti", "1.2.840.10008.1.2")])
def test_transfer_syntaxes_written_by_dcmtk(option: str, syntax: str, tmp_path: Path) -> None:
    ds = read_real(MAC55)
    reference = calibrated_reference(ds)
    converted = dcmtk("dcmconv", [option], ds, tmp_path)
    assert converted.file_meta.TransferSyntaxUID == syntax
    np.testing.assert_allclose(load_waveform(converted).data, reference, atol=1e-2)


@pytest.mark.parametrize(("bits", "interpretation", "words"), [
    (12, "SS", "Waveform Bits Allocated (5400,1004) is 12"),
    (16, "SB", "Waveform Bits Allocated (5400,1004) is 16"),
    (16, "XX", "Waveform Sample Interpretation (5400,1006) 'XX'"),
])
def test_unsupported_sample_encodings(bits: int, interpretation: str, words: str) -> None:
    ds = read_real(MAC55)
    ds.WaveformSequence[0].WaveformBitsAllocated = bits
    ds.WaveformSequence[0].WaveformSampleInterpretation = interpretation
    with pytest.raises(UnsupportedInputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_waveform(ds)


def test_decode_samples_big_endian_matches_little_endian() -> None:
    values = np.array([[1, -2, 300], [-32768, 32767, 0]], dtype=np.int16)
    interleaved = np.ascontiguousarray(values.T)
    little = decode_samples(interleaved.astype("<i2").tobytes(), interpretation="SS",
                            bits_allocated=16, channels=2, samples=3)
    big = decode_samples(interleaved.astype(">i2").tobytes(), interpretation="SS",
                         bits_allocated=16, channels=2, samples=3, little_endian=False)
    np.testing.assert_array_equal(little, values)
    np.testing.assert_array_equal(big, values)
