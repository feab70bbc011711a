"""DICOM waveform object -> :class:`~ecg_dicom.records.Signals` in µV (PS3.3 C.10.9).

:func:`load_waveform` reads every multiplex group (:mod:`ecg_dicom.pages.multiplex`),
then:

* picks the rhythm group (label "RHYTHM", then Waveform Originality ORIGINAL,
  then the longest) and keeps a "MEDIAN BEAT" group for the report;
* picks the channels that go on the page: every channel of an ECG IOD
  (PS3.3 A.34), only the ECG leads of a Hemodynamic Waveform (PS3.3 A.36), which
  is not an ECG at all (:class:`NotAnEcgError`) when none of its channels is one;
* collects header lines for the page (:mod:`ecg_dicom.pages.header_text`);
* refuses a signal that cannot be interpreted (:func:`ecg_dicom.pages.quality.check_signal`).

Reading is tolerant (optional attributes may be missing) but anything that
makes the signal meaningless raises :class:`InputError` naming the attribute.
Whether the leads and the duration make the 12-lead page the model reads is
:func:`ecg_dicom.pages.quality.interpretable_page`'s question.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from ecg_dicom.errors import NotAnEcgError, UnsupportedInputError
from ecg_dicom.pages.header_text import header_lines
from ecg_dicom.pages.limits import DEFAULT_LIMITS
from ecg_dicom.pages.multiplex import MultiplexGroup, read_groups
from ecg_dicom.pages.quality import check_signal
from ecg_dicom.records import Signals
from ecg_dicom.sop import HEMODYNAMIC_WAVEFORM


def is_hemodynamic(ds: Dataset) -> bool:
    """A Hemodynamic Waveform (PS3.3 A.36): ECG leads mixed with pressures and others."""
    return bool(ds.get("SOPClassUID") == HEMODYNAMIC_WAVEFORM)


def require_ecg_lead(ds: Dataset, groups: tuple[MultiplexGroup, ...]) -> None:
    """Raise :class:`NotAnEcgError` when no channel of any group is an ECG lead in volts.

    For a Hemodynamic Waveform (only pressures, respiration...): its Modality is
    not a criterion (cath-lab systems write ECG, HD or others), its channels
    are.  Nothing is wrong with such an object: it is not an ECG.
    """
    if any(any(group.ecg) for group in groups):
        return
    channels = ", ".join(dict.fromkeys(lead for g in groups for lead in g.leads)) or "none"
    modality = str(ds.get("Modality", "") or "").strip() or "absent"
    raise NotAnEcgError(
        f"Hemodynamic Waveform (Modality {modality}) has no ECG lead among its channels "
        f"({channels}): not an ECG"
    )


def drawn_channels(group: MultiplexGroup, *, hemodynamic: bool) -> list[int]:
    """Channels of ``group`` that go on the page.

    Hemodynamic objects (PS3.3 A.36) mix ECG with pressure and other channels:
    only channels naming an ECG lead in volts are drawn.  In the ECG IODs
    (PS3.3 A.34) every channel is an ECG channel and is drawn, unknown leads
    with their label; a channel not in volts there is refused, not dropped.
    """
    if hemodynamic:
        return [i for i, flag in enumerate(group.ecg) if flag]
    for i, ok in enumerate(group.is_voltage):
        if not ok:
            raise UnsupportedInputError(
                f"Channel Sensitivity Units Sequence (003A,0211) of channel {i + 1} "
                f"({group.leads[i]}) in multiplex group {group.index} is {group.units[i]!r}, "
                "not a voltage (uV, mV, V)"
            )
    return list(range(len(group.leads)))


def choose_rhythm(
    groups: tuple[MultiplexGroup, ...], *, hemodynamic: bool = False
) -> MultiplexGroup:
    """The group to print: label "RHYTHM", then ORIGINAL, then the longest.

    Median-beat groups are never printed as strips when another group
    exists; for a Hemodynamic object only groups with an ECG lead count
    (:func:`require_ecg_lead` has made sure there is one).
    """
    usable = [g for g in groups if not hemodynamic or any(g.ecg)]
    strips = [g for g in usable if not g.is_median] or usable
    return max(
        strips,
        key=lambda g: ("RHYTHM" in g.label.upper(), g.originality == "ORIGINAL", g.duration),
    )


def choose_median(
    groups: tuple[MultiplexGroup, ...], rhythm: MultiplexGroup
) -> MultiplexGroup | None:
    """The representative-beat group: by label, else an unlabelled DERIVED group of <= 2 s."""
    others = [g for g in groups if g.index != rhythm.index]
    for g in others:
        if g.is_median:
            return g
    for g in others:
        if not g.label and g.originality == "DERIVED" and g.duration <= 2.0:
            return g
    return None


def _to_signals(
    group: MultiplexGroup, keep: list[int], header: tuple[str, ...] = (),
    median: Signals | None = None,
) -> Signals:
    return Signals(
        leads=tuple(group.leads[i] for i in keep),
        data=np.ascontiguousarray(group.data[keep]),
        sampling_frequency=group.sampling_frequency,
        group_label=group.label,
        median=median,
        header=header,
        group_index=group.index,
    )


def load_waveform(ds: Dataset, *, max_text_chars: int = DEFAULT_LIMITS.max_text_chars) -> Signals:
    """A waveform data set -> the rhythm group as :class:`Signals` (µV), median kept.

    Raises :class:`InputError` when there is no waveform or no channel,
    :class:`NotAnEcgError` for a Hemodynamic Waveform without an ECG lead,
    :class:`UnsupportedInputError` for an unknown sample encoding
    or a non-voltage ECG channel, and :class:`NotInterpretableError` for a
    signal that cannot be interpreted (:func:`~ecg_dicom.pages.quality.check_signal`).
    """
    hemodynamic = is_hemodynamic(ds)
    groups = read_groups(ds)
    if hemodynamic:
        require_ecg_lead(ds, groups)
    rhythm = choose_rhythm(groups, hemodynamic=hemodynamic)
    keep = drawn_channels(rhythm, hemodynamic=hemodynamic)
    median_group = choose_median(groups, rhythm)
    median = None
    if median_group is not None:
        try:
            median_keep = drawn_channels(median_group, hemodynamic=hemodynamic)
            median = _to_signals(median_group, median_keep)
        except UnsupportedInputError:
            median = None  # the report loses its median beats; the page is unaffected
    header = header_lines(
        ds, rhythm, len(keep), hemodynamic=hemodynamic, max_chars=max_text_chars
    )
    check_signal(rhythm, keep, header)
    return _to_signals(rhythm, keep, header, median)
