"""Synthetic ECG pages to calibrate int8 quantisation, made by the service itself.

Post-training int8 quantisation (``model.runtime: openvino-int8``) needs a few
dozen representative network inputs to measure activation ranges.  Shipping ECG
pages is not an option (patient data, licences), so the calibration pages are the
service's own renderings (:func:`ecg_dicom.pages.render_page`, the same page a
DICOM waveform becomes) of **synthetic** 12-lead ECGs: a seeded dipole model of the
heart's electrical axis (P, QRS and T waves as Gaussian pulses of a 3-D vector,
projected on the 12 standard lead axes) with varied rate, axis, amplitudes, ST
shifts, T-wave inversion, baseline wander and noise.  The pages therefore show
what the detector sees — the grid, the 3 x 4 + rhythm layout, thin traces of
plausible shape — without any real patient.  Whether int8 then agrees with f32 is
judged on real pages (``ecg-dicom evaluate`` / ``bench/bench_inference.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ecg_dicom.model.preprocess import blank_outside_frame
from ecg_dicom.pages import render_page
from ecg_dicom.records import STANDARD_LEADS, Signals

SAMPLING_HZ = 500.0
SECONDS = 10.0

#: (name, time after the R peak in s, width in s, amplitude in µV, direction in the
#: frontal (x: left, y: down) and horizontal (z: back) planes).
_WAVES = (
    ("P", -0.17, 0.025, 150.0, (0.6, 0.8, 0.0)),
    ("Q", -0.03, 0.008, 120.0, (-0.4, -0.2, -0.6)),
    ("R", 0.0, 0.012, 1300.0, (0.5, 0.7, 0.5)),
    ("S", 0.03, 0.010, 400.0, (-0.3, 0.2, -0.9)),
    ("T", 0.28, 0.055, 300.0, (0.6, 0.6, 0.3)),
)
#: Precordial lead axes in the horizontal plane (angle from the left arm axis).
_PRECORDIAL_DEG = (-100.0, -80.0, -60.0, -35.0, -10.0, 10.0)


def _lead_vectors() -> np.ndarray:
    """12 x 3 projection of the heart vector on each lead."""
    i = np.array([1.0, 0.0, 0.0])
    ii = np.array([0.5, np.sqrt(3) / 2, 0.0])
    iii = ii - i
    rows = [i, ii, iii, -(i + ii) / 2, i - ii / 2, ii - i / 2]
    for deg in _PRECORDIAL_DEG:
        a = np.deg2rad(deg)
        rows.append(np.array([np.cos(a), 0.15, -np.sin(a)]))
    return np.vstack(rows)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A small random rotation of the electrical axis (±25° about each axis)."""
    out = np.eye(3)
    for axis in range(3):
        angle = np.deg2rad(rng.uniform(-25, 25))
        c, s = np.cos(angle), np.sin(angle)
        r = np.eye(3)
        j, k = [a for a in range(3) if a != axis]
        r[j, j], r[j, k], r[k, j], r[k, k] = c, -s, s, c
        out = out @ r
    return out


def synthetic_signals(seed: int) -> Signals:
    """One synthetic 10 s, 500 Hz, 12-lead ECG (µV), different for every seed."""
    rng = np.random.default_rng(seed)
    n = int(SAMPLING_HZ * SECONDS)
    t = np.arange(n) / SAMPLING_HZ
    rate = rng.uniform(45, 120)
    rr = 60.0 / rate
    peaks = np.arange(rng.uniform(0.2, 0.2 + rr), SECONDS, rr)
    peaks = peaks + rng.normal(0.0, 0.02 * rr, peaks.size)  # some rhythm variability
    rot = _rotation(rng)
    scale = rng.uniform(0.6, 1.5)
    t_sign = -1.0 if rng.random() < 0.25 else 1.0  # inverted T waves in some
    st_shift = rng.normal(0.0, 60.0, 3)  # ST elevation/depression along a random axis
    qrs_width = rng.uniform(0.8, 1.8)  # narrow to bundle-branch-block-like QRS
    dipole = np.zeros((3, n))
    for name, offset, width, amplitude, direction in _WAVES:
        vec = rot @ np.asarray(direction) * amplitude * scale * rng.uniform(0.7, 1.3)
        if name == "T":
            vec = vec * t_sign
        w = width * (qrs_width if name in ("Q", "R", "S") else 1.0)
        pulse = np.zeros(n)
        for peak in peaks:
            pulse += np.exp(-0.5 * ((t - peak - offset * (rr / 0.8) ** 0.3) / w) ** 2)
        dipole += vec[:, None] * pulse[None, :]
    st = np.zeros(n)
    for peak in peaks:
        st += ((t > peak + 0.05) & (t < peak + 0.22)).astype(float)
    dipole += st_shift[:, None] * st[None, :]
    # Baseline wander (breathing) moves the whole vector, so the limb leads keep
    # Einthoven's relations; electrode noise is independent per lead.
    breath = np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6))
    dipole += rng.normal(0.0, 40.0, 3)[:, None] * breath[None, :]
    leads = _lead_vectors() @ dipole
    noise = rng.normal(0.0, rng.uniform(3, 15), leads.shape)
    data = (leads + noise).astype(np.float32)
    return Signals(
        leads=STANDARD_LEADS,
        data=data,
        sampling_frequency=SAMPLING_HZ,
        group_label="SYNTHETIC",
        header=(f"Synthetic calibration ECG {seed}", f"{rate:.0f} bpm"),
    )


def int8_calibration_pages(count: int = 32, seed: int = 0) -> Iterator[np.ndarray]:
    """``count`` RGB pages as the detector receives them (white outside the frame)."""
    for k in range(count):
        page = render_page(synthetic_signals(seed * 100_003 + k))
        yield blank_outside_frame(page.image, page.frame)
