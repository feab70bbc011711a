"""multiplex.py: channels named by code, meaning or label; sensitivity, correction
factor, baseline and units applied; malformed groups refused naming the attribute.

Reference values: pydicom's own ``waveform_array``.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from ecg_dicom.errors import InputError, NotInterpretableError, UnsupportedInputError
from ecg_dicom.pages.multiplex import lead_name
from ecg_dicom.pages.waveform import load_waveform
from ecg_dicom.records import STANDARD_LEADS as STANDARD
from variants import (
    MAC55,
    calibrated_reference,
    code_item,
    raw_reference,
    read_real,
    roundtrip,
)


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
    channels = ds.WaveformSequence[0].ChannelDefinitionSequence
    for lead, channel in zip(STANDARD, channels, strict=True):
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
        group.ChannelDefinitionSequence[0][tag] = RawDataElement(
            tag, "DS", 4, b"abc ", 0, False, True)
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
def test_malformed_waveforms_raise_input_error_naming_the_attribute(
    change: str, words: str
) -> None:
    ds = _mutate(change)
    with pytest.raises(InputError) as caught:
        load_waveform(ds)
    assert words in str(caught.value)
    assert not isinstance(caught.value, UnsupportedInputError)


def test_zero_sampling_rate_is_not_interpretable() -> None:
    with pytest.raises(NotInterpretableError, match="samples have no time scale"):
        load_waveform(_mutate("sampling frequency"))
