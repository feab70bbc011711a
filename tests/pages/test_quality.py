"""quality.py: signals that cannot be interpreted (check_signal) and pages the model
cannot read (interpretable_page) come back NotInterpretableError with the reason.

Real cart ECGs (GE MAC55) modified as a broken cart or a careless conversion would
send them.  They are read, but must come back "Not interpretable" with the reason,
never as a Normal or Abnormal call (issue 10, item 6).
"""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from ecg_dicom.errors import NotInterpretableError
from ecg_dicom.pages.blank import not_interpretable_page
from ecg_dicom.pages.dispatch import page_from_dataset
from ecg_dicom.pages.quality import with_limb_leads
from ecg_dicom.pages.waveform import load_waveform
from ecg_dicom.records import STANDARD_LEADS as STANDARD
from ecg_dicom.records import Page
from variants import (
    MAC55,
    ambulatory_ecg,
    calibrated_reference,
    raw_reference,
    read_real,
    roundtrip,
    with_rhythm_samples,
)


def _not_interpretable(ds: Dataset) -> NotInterpretableError:
    with pytest.raises(NotInterpretableError) as caught:
        page_from_dataset(ds)
    return caught.value


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


@pytest.mark.parametrize(("samples", "interpretable"), [
    (1250, False), (2000, False), (4700, False), (4750, True), (5000, True)])
def test_a_twelve_lead_page_needs_nine_and_a_half_seconds(
    samples: int, interpretable: bool
) -> None:
    ds = read_real(MAC55)  # 500 Hz: 4750 samples are 9.5 s
    ds = with_rhythm_samples(ds, raw_reference(ds)[:, :samples])
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
    exc = _not_interpretable(with_rhythm_samples(ds, raw))
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
    ds = with_rhythm_samples(ds, raw)
    signals = with_limb_leads(load_waveform(ds))
    assert signals.leads == tuple(STANDARD[i] for i in keep) + ("III", "aVR", "aVL", "aVF")
    # The cart's own III, aVR, aVL, aVF (5 uV steps, each rounded): within 2 steps.
    np.testing.assert_allclose(signals.data[8:], reference[2:6], atol=10.0)
    page = page_from_dataset(ds)
    assert {r.lead for r in page.regions} == set(STANDARD)
