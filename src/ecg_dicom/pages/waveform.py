"""DICOM waveform -> calibrated :class:`~ecg_dicom.records.Signals` (PS3.3 C.10.9).

A waveform object (12-lead, General or Ambulatory ECG, Hemodynamic) carries one
or more *multiplex groups* in the Waveform Sequence (5400,0100); each group has
its own channels, sampling frequency and sample encoding.  This module:

* decodes every group's Waveform Data (5400,1010) for every Waveform Sample
  Interpretation of PS3.3 C.10.9.1.5 (SB/UB/MB/AB/SS/US/SL/UL/SV/UV), G.711
  µ-law (MB) and A-law (AB) included, in the byte order of the transfer syntax;
* calibrates each channel (PS3.3 C.10.9.1.4.3): value = raw x Channel
  Sensitivity x Channel Sensitivity Correction Factor + Channel Baseline, in the
  units of the Channel Sensitivity Units Sequence, normalised to microvolts;
* names each channel from its Channel Source Sequence code (MDC "2:N" or
  SCP-ECG "5.6.3-9-N", PS3.16 CID 3001), then its Code Meaning, then its
  Channel Label; a channel nobody can name keeps its label and is still drawn;
* picks the rhythm group (label "RHYTHM", then Waveform Originality ORIGINAL,
  then the longest) and keeps a "MEDIAN BEAT" group for the report;
* collects header lines for the page (waveform_text.py).

Reading is tolerant (optional attributes may be missing) but anything that
makes the signal meaningless raises :class:`InputError` naming the attribute.

A signal that was read but cannot be interpreted raises
:class:`NotInterpretableError` (:func:`check_signal`), which the service reports
as a "Not interpretable" result with the reason, never as Normal or Abnormal:

* an absurd sampling rate: outside [:data:`MIN_SAMPLING_HZ`, :data:`MAX_SAMPLING_HZ`]
  (50 Hz is the lowest rate any ECG IOD allows, the Ambulatory ECG's, PS3.3 A.34;
  20 kHz is far above any cart's, so such a value is a wrong attribute, and the
  recording's duration computed from it is meaningless too);
* values that are not numbers after calibration (NaN or infinity, e.g. a Channel
  Sensitivity (003A,0210) of "NaN"): there is nothing to draw;
* a flat recording: every lead's peak-to-peak below :data:`FLAT_MICROVOLTS`
  (20 µV = 0.2 mm on paper at 10 mm/mV: invisible; any recorded QRS complex is
  well above it in every lead), i.e. nothing was recorded.

Whether the leads and the duration make the 12-lead page the model reads is the
renderer's question (:func:`ecg_dicom.pages.render.interpretable_page`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from ecg_dicom.sop import HEMODYNAMIC_WAVEFORM
from ecg_dicom.errors import InputError, NotInterpretableError, UnsupportedInputError
from ecg_dicom.pages.header_text import header_lines
from ecg_dicom.records import Signals

#: numpy type of each Waveform Sample Interpretation (PS3.3 C.10.9.1.5); its
#: size is the only Waveform Bits Allocated the interpretation allows.
_SAMPLE_DTYPES: dict[str, str] = {
    "SB": "i1", "UB": "u1", "MB": "u1", "AB": "u1", "SS": "i2", "US": "u2",
    "SL": "i4", "UL": "u4", "SV": "i8", "UV": "u8",
}
#: Channel Sensitivity Units (UCUM code values, PS3.16 CID 3082) -> factor to µV.
_UNITS_TO_UV: dict[str, float] = {"uV": 1.0, "mV": 1000.0, "V": 1.0e6, "nV": 1.0e-3}

#: Lead numbers shared by MDC (IEEE 11073 "2:N") and SCP-ECG ("5.6.3-9-N").
_LEAD_NUMBERS: dict[int, str] = {
    1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6",
    9: "V7", 10: "V2R", 11: "V3R", 12: "V4R", 13: "V5R", 14: "V6R", 15: "V7R",
    16: "X", 17: "Y", 18: "Z", 61: "III", 62: "aVR", 63: "aVL", 64: "aVF",
    65: "-aVR", 66: "V8", 67: "V9", 68: "V8R", 69: "V9R",
}
_KNOWN_NAMES: dict[str, str] = {n.upper(): n for n in _LEAD_NUMBERS.values()}

#: Sampling rates outside these bounds are not an ECG's (see the module docstring).
MIN_SAMPLING_HZ = 50.0
MAX_SAMPLING_HZ = 20_000.0
#: A lead whose peak-to-peak stays below this (µV) shows no signal.
FLAT_MICROVOLTS = 20.0
_MEDIAN_WORDS = ("MEDIAN", "REPRESENTATIVE", "AVERAGE")


@dataclass(frozen=True)
class MultiplexGroup:
    """One decoded multiplex group: ``data`` is channels x samples in µV.

    Per channel, ``is_lead`` says whether its source names an ECG lead and
    ``units`` gives its Channel Sensitivity Units code ("" when absent, read
    as µV); ``data`` is in µV only for channels in voltage units.  Hemodynamic
    groups also carry pressure or respiration channels, which are not drawn.
    """

    index: int
    label: str
    originality: str
    sampling_frequency: float
    leads: tuple[str, ...]
    is_lead: tuple[bool, ...]
    units: tuple[str, ...]
    data: np.ndarray
    #: (sensitivity, correction factor, baseline) of each channel, as read.
    calibration: tuple[tuple[float, float, float], ...] = ()

    @property
    def is_voltage(self) -> tuple[bool, ...]:
        return tuple(u in _UNITS_TO_UV or u == "" for u in self.units)

    @property
    def ecg(self) -> tuple[bool, ...]:
        """Channels that are ECG leads recorded in volts (Hemodynamic selection)."""
        return tuple(a and b for a, b in zip(self.is_lead, self.is_voltage))

    @property
    def duration(self) -> float:
        return float(self.data.shape[1]) / self.sampling_frequency

    @property
    def is_median(self) -> bool:
        """A representative-beat group, by label (PS3.3 C.10.9.1.1)."""
        return any(w in self.label.upper() for w in _MEDIAN_WORDS)


def decode_ulaw(codes: np.ndarray) -> np.ndarray:
    """ITU-T G.711 µ-law bytes -> 16-bit linear values (range +-32124)."""
    u = np.invert(codes.astype(np.uint8)).astype(np.int32)
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude)


def decode_alaw(codes: np.ndarray) -> np.ndarray:
    """ITU-T G.711 A-law bytes -> 16-bit linear values (range +-32256)."""
    a = codes.astype(np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(a & 0x80, magnitude, -magnitude)


def decode_samples(
    raw: bytes, *, interpretation: str, bits_allocated: int, channels: int, samples: int,
    little_endian: bool = True,
) -> np.ndarray:
    """Waveform Data bytes -> raw sample values, channels x samples (int64/float64).

    Samples are interleaved C1S1, C2S1 ... CnS1, C1S2 ... (PS3.3 C.10.9.1.5).
    Raises :class:`UnsupportedInputError` for an interpretation or bit depth
    outside PS3.3 C.10.9.1.5 and :class:`InputError` when the data is shorter
    than channels x samples (a truncated object).
    """
    if interpretation not in _SAMPLE_DTYPES:
        raise UnsupportedInputError(
            f"Waveform Sample Interpretation (5400,1006) {interpretation!r} is not one of "
            f"{', '.join(_SAMPLE_DTYPES)}"
        )
    dtype = np.dtype(_SAMPLE_DTYPES[interpretation]).newbyteorder("<" if little_endian else ">")
    if bits_allocated != 8 * dtype.itemsize:
        raise UnsupportedInputError(
            f"Waveform Bits Allocated (5400,1004) is {bits_allocated}, but sample "
            f"interpretation {interpretation} needs {8 * dtype.itemsize}"
        )
    if channels <= 0:
        raise InputError(f"Number of Waveform Channels (003A,0005) is {channels}: no channels")
    if samples <= 0:
        raise InputError(f"Number of Waveform Samples (003A,0010) is {samples}: no samples")
    expected = channels * samples * dtype.itemsize
    if len(raw) < expected:
        raise InputError(
            f"Waveform Data (5400,1010) holds {len(raw)} bytes, but {channels} channels x "
            f"{samples} samples x {dtype.itemsize} bytes need {expected}: truncated"
        )
    values = np.frombuffer(raw, dtype=dtype, count=channels * samples).reshape(samples, channels).T
    if interpretation == "MB":
        return decode_ulaw(values)
    if interpretation == "AB":
        return decode_alaw(values)
    if interpretation in ("UL", "SV", "UV"):
        return values.astype(np.float64)
    return values.astype(np.int64)


def _code_item(channel: Dataset) -> Dataset | None:
    seq = channel.get("ChannelSourceSequence")
    return seq[0] if seq else None


def _name_from_text(text: str) -> str | None:
    """"Lead I (Einthoven)", "lead aVR", "V1" -> the standard lead name, or None."""
    t = re.sub(r"\(.*?\)", " ", text)
    t = re.sub(r"(?i)\blead\b", " ", t)
    t = re.sub(r"[\s_]+", "", t).upper()
    return _KNOWN_NAMES.get(t)


def lead_name(channel: Dataset) -> str:
    """The lead a Channel Definition Sequence item records.

    Code first (MDC "2:N" or SCP-ECG "5.6.3-9-N" in Channel Source Sequence,
    PS3.16 CID 3001), then Code Meaning, then Channel Label (003A,0203).  An
    unrecognised channel keeps its label (or meaning), never an empty name.
    """
    item = _code_item(channel)
    meaning = ""
    if item is not None:
        value = str(item.get("CodeValue", "")).strip()
        match = re.fullmatch(r"(?:MDC:?)?2:(\d+)|5\.6\.3-9-(\d+)", value)
        if match:
            number = int(match.group(1) or match.group(2))
            if number in _LEAD_NUMBERS:
                return _LEAD_NUMBERS[number]
        meaning = str(item.get("CodeMeaning", "")).strip()
        named = _name_from_text(meaning)
        if named:
            return named
    label = str(channel.get("ChannelLabel", "")).strip()
    named = _name_from_text(label)
    if named:
        return named
    return label or meaning or "?"


def _is_lead(channel: Dataset) -> bool:
    """Whether the channel source names an ECG lead (vs. pressure, respiration...)."""
    item = _code_item(channel)
    if item is not None:
        value = str(item.get("CodeValue", ""))
        if re.fullmatch(r"(?:MDC:?)?2:\d+|5\.6\.3-9-\d+", value):
            return True
    return lead_name(channel) in _KNOWN_NAMES.values()


def _units(channel: Dataset) -> str:
    """Channel Sensitivity Units code value; "" when absent.

    Type 1C: absent only when Channel Sensitivity is absent; such channels are
    read as µV, the unit ECG carts record (PS3.3 A.34).
    """
    units = channel.get("ChannelSensitivityUnitsSequence")
    return str(units[0].get("CodeValue", "")).strip() if units else ""


def _calibration(channel: Dataset) -> tuple[float, float, float]:
    """(sensitivity, correction factor, baseline) with the PS3.3 defaults."""
    def number(keyword: str, default: float) -> float:
        try:
            value = channel.get(keyword)
            return default if value is None or value == "" else float(value)
        except (TypeError, ValueError) as exc:  # an invalid DS string
            raise InputError(f"{keyword} of a channel is not a number: {exc}") from exc

    return (
        number("ChannelSensitivity", 1.0),
        number("ChannelSensitivityCorrectionFactor", 1.0),
        number("ChannelBaseline", 0.0),
    )


def read_group(ds: Dataset, index: int) -> MultiplexGroup:
    """Decode and calibrate multiplex group ``index`` of the Waveform Sequence."""
    item = ds.WaveformSequence[index]
    where = f"multiplex group {index}"
    for keyword in (
        "NumberOfWaveformChannels", "NumberOfWaveformSamples", "SamplingFrequency",
        "WaveformBitsAllocated", "WaveformSampleInterpretation", "WaveformData",
    ):
        if item.get(keyword) in (None, ""):
            raise InputError(f"{keyword} is missing in {where} of the Waveform Sequence (5400,0100)")
    channels = int(item.NumberOfWaveformChannels)
    fs = float(item.SamplingFrequency)
    if not np.isfinite(fs) or fs <= 0:
        raise NotInterpretableError(
            f"Sampling Frequency (003A,001A) is {fs} Hz in {where}: the samples have no time scale"
        )
    definitions = item.get("ChannelDefinitionSequence") or []
    if len(definitions) != channels:
        raise InputError(
            f"Channel Definition Sequence (003A,0200) has {len(definitions)} items but Number of "
            f"Waveform Channels (003A,0005) is {channels} in {where}"
        )
    raw = decode_samples(
        bytes(item.WaveformData),
        interpretation=str(item.WaveformSampleInterpretation).strip(),
        bits_allocated=int(item.WaveformBitsAllocated),
        channels=channels,
        samples=int(item.NumberOfWaveformSamples),
        little_endian=_little_endian(ds),
    )
    data = np.empty(raw.shape, dtype=np.float32)
    calibration = tuple(_calibration(channel) for channel in definitions)
    with np.errstate(over="ignore", invalid="ignore"):  # NaN/inf are reported by check_signal
        for c, channel in enumerate(definitions):
            sensitivity, correction, baseline = calibration[c]
            scale = _UNITS_TO_UV.get(_units(channel), 1.0)
            data[c] = (raw[c] * (sensitivity * correction) + baseline) * scale
    return MultiplexGroup(
        index=index,
        label=str(item.get("MultiplexGroupLabel", "") or "").strip(),
        originality=str(item.get("WaveformOriginality", "") or "").strip().upper(),
        sampling_frequency=fs,
        leads=tuple(lead_name(ch) for ch in definitions),
        is_lead=tuple(_is_lead(ch) for ch in definitions),
        units=tuple(_units(ch) for ch in definitions),
        data=data,
        calibration=calibration,
    )


def _little_endian(ds: Dataset) -> bool:
    """Byte order of the Waveform Data as read (Explicit VR Big Endian -> False)."""
    encoding = getattr(ds, "original_encoding", (None, None))
    if encoding[1] is not None:
        return bool(encoding[1])
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return not (syntax is not None and syntax == "1.2.840.10008.1.2.2")


def read_groups(ds: Dataset) -> tuple[MultiplexGroup, ...]:
    """Every multiplex group of the Waveform Sequence, decoded and calibrated."""
    seq = ds.get("WaveformSequence")
    if not seq:
        raise InputError("Waveform Sequence (5400,0100) is missing or empty: no waveform")
    return tuple(read_group(ds, i) for i in range(len(seq)))


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


def choose_rhythm(groups: tuple[MultiplexGroup, ...], *, hemodynamic: bool = False) -> MultiplexGroup:
    """The group to print: label "RHYTHM", then ORIGINAL, then the longest.

    Median-beat groups are never printed as strips when another group
    exists; for a Hemodynamic object only groups with an ECG lead count.
    """
    usable = [g for g in groups if not hemodynamic or any(g.ecg)]
    if not usable:
        raise InputError(
            "no multiplex group of the Waveform Sequence (5400,0100) has an ECG lead channel "
            "(Channel Source Sequence (003A,0208) names no lead in uV/mV)"
        )
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


_CALIBRATION_NAMES = (
    "Channel Sensitivity (003A,0210)",
    "Channel Sensitivity Correction Factor (003A,0212)",
    "Channel Baseline (003A,0213)",
)


def _names(leads: list[str]) -> str:
    return ", ".join(leads) if len(leads) <= 6 else ", ".join(leads[:6]) + f" and {len(leads) - 6} more"


def check_signal(group: MultiplexGroup, keep: list[int], header: tuple[str, ...] = ()) -> None:
    """Raise :class:`NotInterpretableError` when the channels ``keep`` of the rhythm
    group cannot be interpreted (see the module docstring): an absurd sampling rate,
    values that are not numbers after calibration, or a flat recording.
    ``header`` goes with the error, for the page that shows the reason."""
    fs = group.sampling_frequency
    if not MIN_SAMPLING_HZ <= fs <= MAX_SAMPLING_HZ:
        raise NotInterpretableError(
            f"Sampling Frequency (003A,001A) is {fs:g} Hz in multiplex group {group.index}, "
            f"outside the {MIN_SAMPLING_HZ:g} Hz to {MAX_SAMPLING_HZ:g} Hz of an ECG",
            header=header,
        )
    data = group.data[keep]
    not_finite = [i for i, row in zip(keep, data) if not np.isfinite(row).all()]
    if not_finite:
        causes = []
        for i in not_finite:
            factors = group.calibration[i] if group.calibration else ()
            bad = [name for name, v in zip(_CALIBRATION_NAMES, factors) if not np.isfinite(v)]
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


def load_waveform(ds: Dataset) -> Signals:
    """A waveform data set -> the rhythm group as :class:`Signals` (µV), median kept.

    Raises :class:`InputError` when there is no waveform, no channel or no ECG
    lead, :class:`UnsupportedInputError` for an unknown sample encoding
    or a non-voltage ECG channel, and :class:`NotInterpretableError` for a
    signal that cannot be interpreted (:func:`check_signal`).
    """
    hemodynamic = ds.get("SOPClassUID") == HEMODYNAMIC_WAVEFORM
    groups = read_groups(ds)
    rhythm = choose_rhythm(groups, hemodynamic=hemodynamic)
    keep = drawn_channels(rhythm, hemodynamic=hemodynamic)
    median_group = choose_median(groups, rhythm)
    median = None
    if median_group is not None:
        try:
            median = _to_signals(median_group, drawn_channels(median_group, hemodynamic=hemodynamic))
        except UnsupportedInputError:
            median = None  # the report loses its median beats; the page is unaffected
    header = header_lines(ds, rhythm, len(keep))
    check_signal(rhythm, keep, header)
    return _to_signals(rhythm, keep, header, median)
