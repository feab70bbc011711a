"""Synthetic ECGs that calibrate int8 (model.synthetic): seeded, 12-lead, ECG-like,
rendered as the service renders."""

from __future__ import annotations

import numpy as np

from ecg_dicom.model.synthetic import int8_calibration_pages, synthetic_signals
from ecg_dicom.pages import render_page
from ecg_dicom.records import STANDARD_LEADS


def test_synthetic_signals_are_seeded_and_differ_between_seeds() -> None:
    a, b, c = synthetic_signals(1), synthetic_signals(1), synthetic_signals(2)
    assert a.leads == STANDARD_LEADS and a.data.shape == (12, 5000)
    assert a.sampling_frequency == 500.0
    assert np.array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)


def test_synthetic_signals_look_like_an_ecg() -> None:
    for seed in range(10):
        s = synthetic_signals(seed)
        lead = dict(zip(s.leads, s.data, strict=True))
        # QRS peaks of a few hundred µV to a few mV, not a flat line nor a rail.
        span = np.ptp(s.data, axis=1)
        assert (span > 150).all() and (span < 6000).all(), span
        # Einthoven: III = II - I and aVR = -(I + II) / 2, up to the per-lead noise.
        assert np.abs(lead["III"] - (lead["II"] - lead["I"])).mean() < 40
        assert np.abs(lead["aVR"] + (lead["I"] + lead["II"]) / 2).mean() < 40
        # Rate between 45 and 120 per minute: the first autocorrelation peak of the
        # QRS energy (sum of |slope| over the leads) lies 0.5-1.33 s away.
        energy = np.abs(np.diff(s.data, axis=1)).sum(axis=0)
        energy = energy - energy.mean()
        ac = np.correlate(energy, energy, mode="full")[energy.size - 1 :]
        lags = np.arange(ac.size) / s.sampling_frequency
        window = (lags > 0.4) & (lags < 1.5)
        rr = lags[window][np.argmax(ac[window])]
        assert 0.49 <= rr <= 1.34, rr


def test_int8_calibration_pages_are_rendered_pages_white_outside_the_frame() -> None:
    pages = list(int8_calibration_pages(3, seed=4))
    assert len(pages) == 3
    frame = render_page(synthetic_signals(4 * 100_003)).frame
    assert frame is not None
    for image in pages:
        assert image.shape == (1137, 1600, 3) and image.dtype == np.uint8
        assert (image[: int(frame[1]) - 1] == 255).all()  # header area blanked
        inside = image[int(frame[1]) + 5 : int(frame[3]) - 5, int(frame[0]) + 5 : int(frame[2]) - 5]
        assert (inside.min(axis=2) < 80).mean() > 0.002  # dark traces inside
    assert not np.array_equal(pages[0], pages[1])
