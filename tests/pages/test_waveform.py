"""waveform.py: real DICOM ECGs and variants made from them -> Signals in µV: the
rhythm and median groups, the channels drawn (General, Ambulatory, Hemodynamic).

Reference values: pydicom's own ``waveform_array``.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.sequence import Sequence

from ecg_dicom.errors import NotAnEcgError, UnsupportedInputError
from ecg_dicom.pages.waveform import load_waveform
from ecg_dicom.records import STANDARD_LEADS as STANDARD
from variants import (
    MAC55,
    REAL_ECGS,
    REAL_GEOMETRY,
    ambulatory_ecg,
    calibrated_reference,
    code_item,
    general_ecg,
    hemodynamic,
    read_real,
    roundtrip,
)


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


def test_general_ecg_with_labels_only() -> None:
    ds = general_ecg()
    signals = load_waveform(ds)
    assert signals.leads == ("I", "II", "III")
    reference = calibrated_reference(read_real("pydicom-waveform"))
    np.testing.assert_allclose(signals.data, reference[:3], atol=1e-2)


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
    not_an_ecg = r"Modality ECG\) has no ECG lead among its channels \(ART\): not an ECG"
    with pytest.raises(NotAnEcgError, match=not_an_ecg):
        load_waveform(ds)
