"""waveform.py: real DICOM ECGs and variants made from them -> calibrated Signals, and
the signals that cannot be interpreted (waveform.check_signal, render.interpretable_page).

References are computed independently: pydicom's own ``waveform_array`` for
calibrated values, a numpy G.711 encoder (ITU-T G.711 segment search, not the
table decoder under test) for µ-law/A-law, dcmtk ``dcmconv`` for byte orders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from ecg_dicom.errors import InputError, NotInterpretableError, UnsupportedInputError
from ecg_dicom.pages.dispatch import page_from_dataset
from ecg_dicom.pages.render import blank_page, not_interpretable_page, with_limb_leads
from ecg_dicom.pages.waveform import decode_samples, lead_name, load_waveform
from ecg_dicom.records import Page
from variants import (
    REAL_ECGS,
    REAL_GEOMETRY,
    STANDARD,
    ambulatory_ecg,
    calibrated_reference,
    code_item,
    dcmtk,
    general_ecg,
    hemodynamic,
    raw_reference,
    read_real,
    recode,
    roundtrip,
)

MAC55 = "ge-mac55"


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


# --- the real files ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REAL_ECGS))
def test_real_file_gives_twelve_standard_leads_in_microvolts(name: str) -> None:
    ds = read_real(name)
    signals = load_waveform(ds)
    fs, seconds = REAL_GEOMETRY[name]
    assert signals.leads == STANDARD
    assert signals.sampling_frequency == fs
    assert signals.duration == pytest.approx(seconds)
    assert signals.group_index == 0 and signals.data.dtype == np.float32
    np.testing.assert_allclose(signals.data, calibrated_reference(ds), atol=1e-2)
    # plausible ECG amplitudes: QRS complexes of 0.4..4 mV peak to peak in every lead
    ptp = np.ptp(signals.data, axis=1)
    assert np.all((ptp > 400) & (ptp < 4000)), ptp


@pytest.mark.parametrize("name", sorted(REAL_ECGS))
def test_real_file_keeps_its_median_beats(name: str) -> None:
    ds = read_real(name)
    signals = load_waveform(ds)
    assert signals.median is not None  # MV360's median group is unlabelled, DERIVED, 1.2 s
    assert signals.median.leads == STANDARD
    assert signals.median.group_index == 1
    np.testing.assert_allclose(signals.median.data, calibrated_reference(ds, 1), atol=1e-2)


def test_rhythm_group_found_after_the_median_group() -> None:
    ds = read_real("pydicom-waveform")
    ds.WaveformSequence = Sequence([ds.WaveformSequence[1], ds.WaveformSequence[0]])
    signals = load_waveform(roundtrip(ds))
    assert signals.group_index == 1 and signals.duration == pytest.approx(10.0)
    assert signals.median is not None and signals.median.group_index == 0


def test_unlabelled_groups_rhythm_is_the_original_one() -> None:
    ds = read_real("ge-muse-mv360")
    ds.WaveformSequence = Sequence([ds.WaveformSequence[1], ds.WaveformSequence[0]])
    assert load_waveform(ds).group_index == 1


def test_header_has_patient_settings_measurements_and_statements() -> None:
    header = load_waveform(read_real(MAC55)).header
    text = "\n".join(header)
    assert "ID: 66954" in header[0] and "GE MAC55" in header[1]
    assert "25 mm/s" in header[2] and "10 mm/mV" in header[2] and "0.05-150 Hz" in header[2]
    assert "QRS Duration 92 ms" in text and "Ventricular Heart Rate 81 bpm" in text
    assert "ATRIAL FIBRILLATION" in header
    example = "\n".join(load_waveform(read_real("pydicom-waveform")).header)
    assert "ECG NORMALE" in example and "RITMO SINUSALE" in example
    assert "QT Interval 368 ms" in example
    assert "Onset" not in example  # fiducial points are not header material
    assert "Galliera" in example and "Born: 1971-01-23" in example


# --- lead identity -----------------------------------------------------------


def test_channels_in_any_order_are_named_by_their_codes() -> None:
    ds = read_real(MAC55)
    reference = calibrated_reference(ds)
    group = ds.WaveformSequence[0]
    order = np.random.default_rng(5).permutation(12)
    raw = raw_reference(ds)[order]
    group.ChannelDefinitionSequence = Sequence([group.ChannelDefinitionSequence[i] for i in order])
    group.WaveformData = np.ascontiguousarray(raw.T).astype("<i2").tobytes()
    signals = load_waveform(roundtrip(ds))
    assert signals.leads == tuple(STANDARD[i] for i in order)
    np.testing.assert_allclose(signals.data, reference[order], atol=1e-2)


MDC = {"I": "2:1", "II": "2:2", "III": "2:61", "aVR": "2:62", "aVL": "2:63", "aVF": "2:64",
       "V1": "2:3", "V2": "2:4", "V3": "2:5", "V4": "2:6", "V5": "2:7", "V6": "2:8"}


@pytest.mark.parametrize("how", ["mdc", "meaning", "label"])
def test_leads_named_by_mdc_code_then_meaning_then_label(how: str) -> None:
    ds = read_real("pydicom-waveform")
    for lead, channel in zip(STANDARD, ds.WaveformSequence[0].ChannelDefinitionSequence):
        if how == "mdc":  # meaning deliberately wrong: the code wins
            channel.ChannelSourceSequence = Sequence([code_item(MDC[lead], "MDC", "lead")])
        elif how == "meaning":
            channel.ChannelSourceSequence = Sequence([code_item("X", "99LOCAL", f"Lead {lead}")])
        else:
            channel.ChannelSourceSequence = Sequence([code_item("X", "99LOCAL", "Unknown")])
            channel.ChannelLabel = lead
    assert load_waveform(roundtrip(ds)).leads == STANDARD


def test_unknown_channel_keeps_its_label() -> None:
    channel = Dataset()
    channel.ChannelSourceSequence = Sequence([code_item("X", "99LOCAL", "Body surface")])
    channel.ChannelLabel = "Nehb D"
    assert lead_name(channel) == "Nehb D"
    channel.ChannelLabel = "Lead V4R"
    assert lead_name(channel) == "V4R"


# --- sample interpretations, units and calibration ----------------------------


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


def test_millivolt_units_and_correction_factor() -> None:
    ds = read_real(MAC55)
    reference = calibrated_reference(ds)
    for channel in ds.WaveformSequence[0].ChannelDefinitionSequence:
        channel.ChannelSensitivity = "0.01"  # mV per unit, x 0.5 correction = 5 µV
        channel.ChannelSensitivityCorrectionFactor = "0.5"
        channel.ChannelSensitivityUnitsSequence[0].CodeValue = "mV"
        channel.ChannelSensitivityUnitsSequence[0].CodeMeaning = "millivolt"
        channel.ChannelBaseline = "0.2"  # mV
    signals = load_waveform(roundtrip(ds))
    np.testing.assert_allclose(signals.data, reference + 200.0, atol=0.05)


@pytest.mark.parametrize(("option", "syntax"), [("+tb", "1.2.840.10008.1.2.2"),
                                                  ("+td", "1.2.840.10008.1.2.1.99"),
                                                  ("+ti", "1.2.840.10008.1.2")])
def test_transfer_syntaxes_written_by_dcmtk(option: str, syntax: str, tmp_path: Path) -> None:
    ds = read_real(MAC55)
    reference = calibrated_reference(ds)
    converted = dcmtk("dcmconv", [option], ds, tmp_path)
    assert converted.file_meta.TransferSyntaxUID == syntax
    np.testing.assert_allclose(load_waveform(converted).data, reference, atol=1e-2)


# --- General, Ambulatory and Hemodynamic objects ------------------------------


def test_general_ecg_with_labels_only() -> None:
    ds = general_ecg()
    signals = load_waveform(ds)
    assert signals.leads == ("I", "II", "III")
    np.testing.assert_allclose(signals.data, calibrated_reference(read_real("pydicom-waveform"))[:3],
                               atol=1e-2)


def test_ambulatory_ecg_two_channels_one_minute() -> None:
    signals = load_waveform(ambulatory_ecg())
    assert signals.leads == ("II", "V5") and signals.sampling_frequency == 200.0
    assert signals.duration == pytest.approx(60.0) and signals.group_label == "HOLTER"
    reference = calibrated_reference(read_real("pydicom-waveform"))[1, ::5]
    assert np.max(np.abs(signals.data[0, :2000] - reference)) <= 20.0 + 1e-3


def test_hemodynamic_draws_only_its_ecg_channels() -> None:
    signals = load_waveform(hemodynamic())
    assert signals.leads == ("II", "V5")
    np.testing.assert_allclose(signals.data, calibrated_reference(read_real(MAC55))[[1, 10]],
                               atol=1e-2)


# --- malformed input ---------------------------------------------------------


def _mutate(change: str) -> Dataset:
    ds = read_real(MAC55)
    group = ds.WaveformSequence[0]
    if change == "no waveform":
        del ds.WaveformSequence
    elif change == "empty sequence":
        ds.WaveformSequence = Sequence([])
    elif change == "zero channels":
        group.NumberOfWaveformChannels = 0
    elif change == "zero samples":
        group.NumberOfWaveformSamples = 0
    elif change == "truncated":
        group.WaveformData = group.WaveformData[: len(group.WaveformData) // 3]
    elif change == "no data":
        del group.WaveformData
    elif change == "sampling frequency":
        group.SamplingFrequency = 0
    elif change == "definitions":
        del group.ChannelDefinitionSequence[3]
    elif change == "sensitivity":
        tag = Tag(0x003A, 0x0210)  # Channel Sensitivity, as a PACS could send it
        group.ChannelDefinitionSequence[0][tag] = RawDataElement(tag, "DS", 4, b"abc ", 0, False, True)
    return ds


@pytest.mark.parametrize(("change", "words"), [
    ("no waveform", "Waveform Sequence (5400,0100)"),
    ("empty sequence", "Waveform Sequence (5400,0100)"),
    ("zero channels", "Number of Waveform Channels (003A,0005) is 0"),
    ("zero samples", "Number of Waveform Samples (003A,0010) is 0"),
    ("truncated", "Waveform Data (5400,1010) holds 40000 bytes"),
    ("no data", "WaveformData is missing"),
    ("sampling frequency", "Sampling Frequency (003A,001A)"),
    ("definitions", "Channel Definition Sequence (003A,0200) has 11 items"),
    ("sensitivity", "ChannelSensitivity of a channel is not a number"),
])
def test_malformed_waveforms_raise_input_error_naming_the_attribute(change: str, words: str) -> None:
    ds = _mutate(change)
    with pytest.raises(InputError) as caught:
        load_waveform(ds)
    assert words in str(caught.value)
    assert not isinstance(caught.value, UnsupportedInputError)


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


def test_non_voltage_ecg_channel_is_refused_not_dropped() -> None:
    ds = read_real(MAC55)
    units = ds.WaveformSequence[0].ChannelDefinitionSequence[4].ChannelSensitivityUnitsSequence[0]
    units.CodeValue = "mm[Hg]"
    with pytest.raises(UnsupportedInputError, match=r"channel 5 \(aVL\).*'mm\[Hg\]'"):
        load_waveform(ds)


def test_hemodynamic_without_ecg_channels() -> None:
    ds = hemodynamic()
    group = ds.WaveformSequence[0]
    for channel in group.ChannelDefinitionSequence:
        channel.ChannelSourceSequence = Sequence([code_item("2:4106", "MDC", "Arterial pressure")])
        channel.ChannelLabel = "ART"
        channel.ChannelSensitivityUnitsSequence = Sequence([code_item("mm[Hg]", "UCUM", "mmHg")])
    with pytest.raises(InputError, match="names no lead"):
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


def test_unreadable_annotation_is_left_out_of_the_header() -> None:
    ds = read_real(MAC55)
    tag = Tag(0x0040, 0xA30A)  # Numeric Value of "QRS Duration 92 ms", as a PACS could send it
    item = next(i for i in ds.WaveformAnnotationSequence if i.get("NumericValue") == 92)
    item[tag] = RawDataElement(tag, "DS", 4, b"9?2 ", 0, False, True)
    header = "\n".join(load_waveform(ds).header)
    assert "QRS Duration" not in header and "QT Interval 378 ms" in header


# --- signals that cannot be interpreted (NotInterpretableError, a result) ------------
# Real cart ECGs (GE MAC55) modified as a broken cart or a careless conversion would
# send them.  They are read, but must come back "Not interpretable" with the reason,
# never as a Normal or Abnormal call (issue 10, item 6).


def _with_raw(ds: Dataset, raw: np.ndarray) -> Dataset:
    """``ds`` with its rhythm group's samples replaced (same SS encoding)."""
    group = ds.WaveformSequence[0]
    group.NumberOfWaveformSamples = raw.shape[1]
    group.WaveformData = np.ascontiguousarray(raw.T).astype("<i2").tobytes()
    return roundtrip(ds)


def _not_interpretable(ds: Dataset) -> NotInterpretableError:
    with pytest.raises(NotInterpretableError) as caught:
        page_from_dataset(ds)
    return caught.value


def test_flat_line_copy_is_not_interpretable_and_gets_a_blank_page() -> None:
    ds = read_real(MAC55)
    ds = _with_raw(ds, np.zeros_like(raw_reference(ds)))
    with pytest.raises(NotInterpretableError, match="the recording is flat") as caught:
        load_waveform(ds)
    exc = caught.value
    assert "below 20 uV" in exc.reason and exc.page is None
    assert "GE MAC55" in exc.header[1]  # the cart's header still heads the page
    page = not_interpretable_page(exc)
    assert np.array_equal(page.image, not_interpretable_page(exc).image)  # pure
    assert page.image.shape == (1137, 1600, 3) and page.regions == () and page.header == exc.header
    # No trace: inside the frame, below the written reason, the page is the empty grid.
    x0, y0, x1, y1 = (round(v) for v in page.frame)
    empty = blank_page(exc.header, "").image
    assert np.array_equal(page.image[y0 + 300:y1, x0:x1], empty[y0 + 300:y1, x0:x1])
    assert page.image[y0 + 300:y1, x0 + 3:x1 - 3].min() >= 150  # grid dots only, no ink
    # ... and the reason is written: another reason gives other pixels there.
    other = blank_page(exc.header, "another reason").image
    assert not np.array_equal(page.image[y0:y0 + 300], other[y0:y0 + 300])
    assert np.array_equal(page.image[:y0 - 2], other[:y0 - 2])  # same header


def test_nan_channel_sensitivity_is_not_interpretable() -> None:
    ds = read_real(MAC55)
    tag = Tag(0x003A, 0x0210)  # Channel Sensitivity "NaN", as a broken converter writes it
    for channel in ds.WaveformSequence[0].ChannelDefinitionSequence:
        channel[tag] = RawDataElement(tag, "DS", 4, b"NaN ", 0, False, True)
    exc = _not_interpretable(ds)
    assert "is not a number after calibration" in exc.reason
    assert "Channel Sensitivity (003A,0210)" in exc.reason
    assert "lead(s) I, II, III, aVR, aVL, aVF and 6 more" in exc.reason


def test_one_nan_lead_is_named() -> None:
    ds = read_real(MAC55)
    tag = Tag(0x003A, 0x0212)
    channel = ds.WaveformSequence[0].ChannelDefinitionSequence[8]  # V3
    channel[tag] = RawDataElement(tag, "DS", 4, b"inf ", 0, False, True)
    exc = _not_interpretable(ds)
    assert "lead(s) V3 is not a number" in exc.reason
    assert "Channel Sensitivity Correction Factor (003A,0212)" in exc.reason


def test_calibration_overflowing_to_infinity_is_not_interpretable() -> None:
    ds = read_real(MAC55)
    for channel in ds.WaveformSequence[0].ChannelDefinitionSequence:
        channel.ChannelSensitivity = "1e308"  # finite, but x samples overflows
    exc = _not_interpretable(roundtrip(ds))
    assert "NaN or infinite: calibration overflow" in exc.reason


@pytest.mark.parametrize(("hz", "words"), [
    (5, "Sampling Frequency (003A,001A) is 5 Hz"),
    (49.9, "Sampling Frequency (003A,001A) is 49.9 Hz"),
    (25000, "Sampling Frequency (003A,001A) is 25000 Hz"),
])
def test_absurd_sampling_rate_is_not_interpretable(hz: float, words: str) -> None:
    ds = read_real(MAC55)
    ds.WaveformSequence[0].SamplingFrequency = hz
    exc = _not_interpretable(roundtrip(ds))
    assert words in exc.reason and "outside the 50 Hz to 20000 Hz of an ECG" in exc.reason
    assert exc.header  # the header is known: the blank page shows it


def test_zero_sampling_rate_is_not_interpretable() -> None:
    with pytest.raises(NotInterpretableError, match="samples have no time scale"):
        load_waveform(_mutate("sampling frequency"))


@pytest.mark.parametrize(("samples", "interpretable"), [
    (1250, False), (2000, False), (4700, False), (4750, True), (5000, True)])
def test_a_twelve_lead_page_needs_nine_and_a_half_seconds(samples: int, interpretable: bool) -> None:
    ds = read_real(MAC55)  # 500 Hz: 4750 samples are 9.5 s
    ds = _with_raw(ds, raw_reference(ds)[:, :samples])
    assert load_waveform(ds).duration == pytest.approx(samples / 500)  # the signal is fine
    if interpretable:
        assert {r.lead for r in page_from_dataset(ds).regions} == set(STANDARD)
        return
    exc = _not_interpretable(ds)
    assert f"the recording lasts {samples / 500:.2f} s" in exc.reason
    assert "needs at least 9.5 s" in exc.reason
    assert isinstance(exc.page, Page) and exc.page.regions  # the traces are still shown
    assert exc.page.header[0].startswith("NOT INTERPRETABLE: the recording lasts")


def test_one_flat_lead_on_the_page_is_not_interpretable() -> None:
    ds = read_real(MAC55)
    raw = raw_reference(ds).copy()
    raw[7] = 0  # V2: electrode off
    exc = _not_interpretable(_with_raw(ds, raw))
    assert exc.reason.startswith("lead(s) V2 show no signal on the page")


def test_fewer_than_twelve_leads_are_drawn_but_not_interpretable() -> None:
    exc = _not_interpretable(ambulatory_ecg())  # a 2-channel Holter: II and V5
    assert exc.reason == (
        "not a 12-lead ECG (2 lead(s): II, V5); the model reads 12-lead pages only")
    assert isinstance(exc.page, Page)
    assert [r.lead for r in exc.page.regions] == ["II", "V5"]  # one strip per lead
    assert not_interpretable_page(exc) is exc.page


def test_eight_independent_leads_get_the_limb_leads_derived() -> None:
    ds = read_real(MAC55)
    reference = calibrated_reference(ds)
    keep = [0, 1, 6, 7, 8, 9, 10, 11]  # I, II, V1-V6: what many carts store
    raw = raw_reference(ds)[keep]
    group = ds.WaveformSequence[0]
    group.ChannelDefinitionSequence = Sequence([group.ChannelDefinitionSequence[i] for i in keep])
    group.NumberOfWaveformChannels = len(keep)
    ds = _with_raw(ds, raw)
    signals = with_limb_leads(load_waveform(ds))
    assert signals.leads == tuple(STANDARD[i] for i in keep) + ("III", "aVR", "aVL", "aVF")
    # The cart's own III, aVR, aVL, aVF (5 uV steps, each rounded): within 2 steps.
    np.testing.assert_allclose(signals.data[8:], reference[2:6], atol=10.0)
    page = page_from_dataset(ds)
    assert {r.lead for r in page.regions} == set(STANDARD)
