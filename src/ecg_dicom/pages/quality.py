"""Whether a waveform makes the page the model reads: every "Not interpretable" rule.

A signal that was read but cannot be interpreted raises
:class:`~ecg_dicom.errors.NotInterpretableError`, which the service reports as a
"Not interpretable" result with the reason, never as Normal or Abnormal.

The signal itself (:func:`check_signal`, on the rhythm group before drawing):

* an absurd sampling rate: outside [:data:`MIN_SAMPLING_HZ`, :data:`MAX_SAMPLING_HZ`]
  (50 Hz is the lowest rate any ECG IOD allows, the Ambulatory ECG's, PS3.3 A.34;
  20 kHz is far above any cart's, so such a value is a wrong attribute, and the
  recording's duration computed from it is meaningless too);
* values that are not numbers once the channel sensitivity is applied (NaN or
  infinity, e.g. a Channel Sensitivity (003A,0210) of "NaN"; the reason says "not a
  number after calibration"): there is nothing to draw;
* a flat recording: every lead's peak-to-peak below :data:`FLAT_MICROVOLTS`
  (20 µV = 0.2 mm on paper at 10 mm/mV: invisible; any recorded QRS complex is
  well above it in every lead), i.e. nothing was recorded.

The page (:func:`interpretable_page`, the page the service uses): the detector
was trained on 12-lead pages only (3 x 4 columns of 2.5 s and a 10 s rhythm
strip), so a recording is interpreted only when its page is one:

* the 12 standard leads are present; a recording of I, II and V1-V6 (the 8
  independent leads many carts store) gets III, aVR, aVL and aVF derived by
  Einthoven's and Goldberger's relations (III = II - I, aVR = -(I + II)/2,
  aVL = I - II/2, aVF = II - I/2), as the carts themselves print them.  Anything
  else -- a 2- or 3-lead Holter, a cath-lab recording of II and V5 -- is drawn
  (one strip per lead, for the people reading the SC) but is *not interpretable*:
  a stacked-strip page is not what the model has ever seen, and a call on it
  would be a guess;
* the recording lasts at least :data:`MIN_TWELVE_LEAD_SECONDS` (9.5 s): the
  last column (V4-V6) shows 7.5-10 s, and every lead must fill at least 2 s of
  its 2.5 s column (two beats at 60 bpm, one at 30 bpm); a shorter recording
  leaves columns empty;
* no lead is flat where it is drawn (peak-to-peak below :data:`FLAT_MICROVOLTS`:
  an electrode off, a lead not recorded): the page would lack that lead.

Otherwise the error carries the reason and the page drawn so far;
:func:`ecg_dicom.pages.blank.blank_page` is the page for a signal that cannot be
drawn at all (flat, not a number, absurd sampling rate).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ecg_dicom.errors import NotInterpretableError
from ecg_dicom.pages.layout import COLUMN_SECONDS, first_channels
from ecg_dicom.pages.multiplex import SENSITIVITY_ATTRIBUTES, MultiplexGroup
from ecg_dicom.pages.render import render_page
from ecg_dicom.records import STANDARD_LEADS, Page, Signals

#: Sampling rates outside these bounds are not an ECG's (see the module docstring).
MIN_SAMPLING_HZ = 50.0
MAX_SAMPLING_HZ = 20_000.0
#: A lead whose peak-to-peak stays below this (µV) shows no signal.
FLAT_MICROVOLTS = 20.0
#: The shortest recording whose 12-lead page the model can read (module docstring).
MIN_TWELVE_LEAD_SECONDS = 3 * COLUMN_SECONDS + 2.0
_DERIVED_LIMB_LEADS = ("III", "aVR", "aVL", "aVF")


def _names(leads: list[str]) -> str:
    if len(leads) <= 6:
        return ", ".join(leads)
    return ", ".join(leads[:6]) + f" and {len(leads) - 6} more"


def check_signal(group: MultiplexGroup, keep: list[int], header: tuple[str, ...] = ()) -> None:
    """Raise :class:`NotInterpretableError` when the channels ``keep`` of the rhythm
    group cannot be interpreted (see the module docstring): an absurd sampling rate,
    values that are not numbers once the channel sensitivity is applied, or a flat recording.
    ``header`` goes with the error, for the page that shows the reason."""
    fs = group.sampling_frequency
    if not MIN_SAMPLING_HZ <= fs <= MAX_SAMPLING_HZ:
        raise NotInterpretableError(
            f"Sampling Frequency (003A,001A) is {fs:g} Hz in multiplex group {group.index}, "
            f"outside the {MIN_SAMPLING_HZ:g} Hz to {MAX_SAMPLING_HZ:g} Hz of an ECG",
            header=header,
        )
    data = group.data[keep]
    not_finite = [i for i, row in zip(keep, data, strict=True) if not np.isfinite(row).all()]
    if not_finite:
        causes = []
        for i in not_finite:
            factors = group.sensitivities[i] if group.sensitivities else ()
            bad = [name for name, v in zip(SENSITIVITY_ATTRIBUTES, factors, strict=False)
                   if not np.isfinite(v)]
            causes.append(bad[0] if bad else "calibration overflow")
        cause = "; ".join(sorted(set(causes)))
        raise NotInterpretableError(
            f"the signal of lead(s) {_names([group.leads[i] for i in not_finite])} is not a "
            f"number after calibration (NaN or infinite: {cause}), so no trace can be drawn",
            header=header,
        )
    if data.shape[1] and bool((np.ptp(data, axis=1) < FLAT_MICROVOLTS).all()):
        raise NotInterpretableError(
            f"the recording is flat: every lead's peak-to-peak is below {FLAT_MICROVOLTS:g} uV, "
            "so no ECG signal was recorded",
            header=header,
        )


def with_limb_leads(signals: Signals) -> Signals:
    """``signals`` with III, aVR, aVL and aVF derived from I and II where they are
    missing and V1-V6 are present (the 8 independent leads of a 12-lead ECG)."""
    first = first_channels(signals.leads)
    missing = [n for n in _DERIVED_LIMB_LEADS if n not in first]
    if not missing or "I" not in first or "II" not in first:
        return signals
    if any(f"V{k}" not in first for k in range(1, 7)):
        return signals
    lead_i = signals.data[first["I"]].astype(np.float32)
    lead_ii = signals.data[first["II"]].astype(np.float32)
    derived = {
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2,
        "aVL": lead_i - lead_ii / 2,
        "aVF": lead_ii - lead_i / 2,
    }
    return replace(
        signals,
        leads=(*signals.leads, *missing),
        data=np.vstack([signals.data, *(derived[n][None, :] for n in missing)]),
    )


def _not_interpretable(signals: Signals, reason: str) -> NotInterpretableError:
    """The error for ``reason``, carrying the page drawn with the reason on top."""
    page = render_page(replace(signals, header=(f"NOT INTERPRETABLE: {reason}", *signals.header)))
    return NotInterpretableError(reason, header=signals.header, page=page)


def interpretable_page(signals: Signals) -> Page:
    """The 12-lead page of ``signals`` that the model reads, or
    :class:`NotInterpretableError` with the reason and the page drawn anyway
    (see the module docstring for the rules)."""
    signals = with_limb_leads(signals)
    present = set(signals.leads)
    missing = [n for n in STANDARD_LEADS if n not in present]
    if missing:
        shown = ", ".join(signals.leads[:8]) + (" ..." if len(signals.leads) > 8 else "")
        lacking = f", missing {', '.join(missing)}" if len(missing) <= 3 else ""
        raise _not_interpretable(signals, (
            f"not a 12-lead ECG ({len(signals.leads)} lead(s): {shown}{lacking}); "
            "the model reads 12-lead pages only"
        ))
    if signals.duration < MIN_TWELVE_LEAD_SECONDS:
        raise _not_interpretable(signals, (
            f"the recording lasts {signals.duration:.2f} s; a 12-lead page needs at least "
            f"{MIN_TWELVE_LEAD_SECONDS:g} s (its last column shows 7.5-10 s)"
        ))
    page = render_page(signals)
    flat = _flat_leads(signals, page)
    if flat:
        raise _not_interpretable(signals, (
            f"lead(s) {', '.join(flat)} show no signal on the page (peak-to-peak below "
            f"{FLAT_MICROVOLTS:g} uV: an electrode off or a lead not recorded); the model "
            "reads complete 12-lead pages"
        ))
    return page


def _flat_leads(signals: Signals, page: Page) -> list[str]:
    """Standard leads drawn flat in at least one of their segments on ``page``."""
    first = first_channels(signals.leads)
    fs = float(signals.sampling_frequency)
    flat: list[str] = []
    for region in page.regions:
        if region.lead not in STANDARD_LEADS or region.lead in flat:
            continue
        i0, i1 = round(region.t0 * fs), max(round(region.t1 * fs), round(region.t0 * fs) + 1)
        if float(np.ptp(signals.data[first[region.lead], i0:i1])) < FLAT_MICROVOLTS:
            flat.append(region.lead)
    return [n for n in STANDARD_LEADS if n in flat]
