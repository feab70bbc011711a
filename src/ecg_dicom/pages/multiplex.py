"""One multiplex group of a waveform object, read and converted to microvolts (PS3.3 C.10.9).

A waveform object carries one or more *multiplex groups* in the Waveform
Sequence (5400,0100); each has its own channels, sampling frequency and sample
encoding.  :func:`read_group` decodes a group's samples (:mod:`.samples`) and,
per channel (Channel Definition Sequence item):

* applies its sensitivity (PS3.3 C.10.9.1.4.3): value = raw x Channel
  Sensitivity x Channel Sensitivity Correction Factor + Channel Baseline, in the
  units of the Channel Sensitivity Units Sequence, normalised to microvolts;
* names it from its Channel Source Sequence code (MDC "2:N" or SCP-ECG
  "5.6.3-9-N", PS3.16 CID 3001), then its Code Meaning, then its Channel Label;
  a channel nobody can name keeps its label and is still drawn.

Reading is tolerant (optional attributes may be missing) but anything that
makes the signal meaningless raises :class:`InputError` naming the attribute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from ecg_dicom.errors import InputError, NotInterpretableError
from ecg_dicom.pages.samples import decode_samples, is_little_endian

#: Channel Sensitivity Units (UCUM code values, PS3.16 CID 3082) -> factor to µV.
UNITS_TO_UV: dict[str, float] = {"uV": 1.0, "mV": 1000.0, "V": 1.0e6, "nV": 1.0e-3}

#: Lead numbers shared by MDC (IEEE 11073 "2:N") and SCP-ECG ("5.6.3-9-N").
_LEAD_NUMBERS: dict[int, str] = {
    1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6",
    9: "V7", 10: "V2R", 11: "V3R", 12: "V4R", 13: "V5R", 14: "V6R", 15: "V7R",
    16: "X", 17: "Y", 18: "Z", 61: "III", 62: "aVR", 63: "aVL", 64: "aVF",
    65: "-aVR", 66: "V8", 67: "V9", 68: "V8R", 69: "V9R",
}
_KNOWN_NAMES: dict[str, str] = {n.upper(): n for n in _LEAD_NUMBERS.values()}
_LEAD_CODE = r"(?:MDC:?)?2:(\d+)|5\.6\.3-9-(\d+)"
_MEDIAN_WORDS = ("MEDIAN", "REPRESENTATIVE", "AVERAGE")


class ChannelSensitivity(NamedTuple):
    """How a channel's raw samples become values in its units (PS3.3 C.10.9.1.4.3)."""

    sensitivity: float
    correction_factor: float
    baseline: float


#: The attribute each field of :class:`ChannelSensitivity` is read from (for reasons).
SENSITIVITY_ATTRIBUTES: tuple[str, str, str] = (
    "Channel Sensitivity (003A,0210)",
    "Channel Sensitivity Correction Factor (003A,0212)",
    "Channel Baseline (003A,0213)",
)


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
    #: Each channel's sensitivity, correction factor and baseline, as read.
    sensitivities: tuple[ChannelSensitivity, ...] = ()

    @property
    def is_voltage(self) -> tuple[bool, ...]:
        return tuple(u in UNITS_TO_UV or u == "" for u in self.units)

    @property
    def ecg(self) -> tuple[bool, ...]:
        """Channels that are ECG leads recorded in volts (Hemodynamic selection)."""
        return tuple(a and b for a, b in zip(self.is_lead, self.is_voltage, strict=True))

    @property
    def duration(self) -> float:
        return float(self.data.shape[1]) / self.sampling_frequency

    @property
    def is_median(self) -> bool:
        """A representative-beat group, by label (PS3.3 C.10.9.1.1)."""
        return any(w in self.label.upper() for w in _MEDIAN_WORDS)


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
        match = re.fullmatch(_LEAD_CODE, value)
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


def is_lead(channel: Dataset) -> bool:
    """Whether the channel source names an ECG lead (vs. pressure, respiration...)."""
    item = _code_item(channel)
    if item is not None and re.fullmatch(_LEAD_CODE, str(item.get("CodeValue", ""))):
        return True
    return lead_name(channel) in _KNOWN_NAMES.values()


def units(channel: Dataset) -> str:
    """Channel Sensitivity Units code value; "" when absent.

    Type 1C: absent only when Channel Sensitivity is absent; such channels are
    read as µV, the unit ECG carts record (PS3.3 A.34).
    """
    seq = channel.get("ChannelSensitivityUnitsSequence")
    return str(seq[0].get("CodeValue", "")).strip() if seq else ""


def channel_sensitivity(channel: Dataset) -> ChannelSensitivity:
    """The channel's sensitivity, correction factor and baseline, with the PS3.3 defaults."""
    def number(keyword: str, default: float) -> float:
        try:
            value = channel.get(keyword)
            return default if value is None or value == "" else float(value)
        except (TypeError, ValueError) as exc:  # an invalid DS string
            raise InputError(f"{keyword} of a channel is not a number: {exc}") from exc

    return ChannelSensitivity(
        number("ChannelSensitivity", 1.0),
        number("ChannelSensitivityCorrectionFactor", 1.0),
        number("ChannelBaseline", 0.0),
    )


def in_microvolts(
    raw: np.ndarray, sensitivities: tuple[ChannelSensitivity, ...], unit_codes: tuple[str, ...]
) -> np.ndarray:
    """Raw samples (channels x samples) -> float32 values, voltage channels in µV.

    NaN or infinity (an absurd sensitivity, an overflow) is kept: reporting it is
    :func:`ecg_dicom.pages.quality.check_signal`'s job.
    """
    data = np.empty(raw.shape, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for c, (sensitivity, correction, baseline) in enumerate(sensitivities):
            scale = UNITS_TO_UV.get(unit_codes[c], 1.0)
            data[c] = (raw[c] * (sensitivity * correction) + baseline) * scale
    return data


def read_group(ds: Dataset, index: int) -> MultiplexGroup:
    """Decode multiplex group ``index`` of the Waveform Sequence, in µV."""
    item = ds.WaveformSequence[index]
    where = f"multiplex group {index}"
    for keyword in (
        "NumberOfWaveformChannels", "NumberOfWaveformSamples", "SamplingFrequency",
        "WaveformBitsAllocated", "WaveformSampleInterpretation", "WaveformData",
    ):
        if item.get(keyword) in (None, ""):
            raise InputError(
                f"{keyword} is missing in {where} of the Waveform Sequence (5400,0100)"
            )
        if isinstance(item.get(keyword), MultiValue):
            raise InputError(f"{keyword} has more than one value in {where}")
    channels = int(item.NumberOfWaveformChannels)
    fs = float(item.SamplingFrequency)
    if not np.isfinite(fs) or fs <= 0:
        raise NotInterpretableError(
            f"Sampling Frequency (003A,001A) is {fs} Hz in {where}: the samples have no time scale"
        )
    definitions = list(item.get("ChannelDefinitionSequence") or [])
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
        little_endian=is_little_endian(ds),
    )
    sensitivities = tuple(channel_sensitivity(ch) for ch in definitions)
    unit_codes = tuple(units(ch) for ch in definitions)
    return MultiplexGroup(
        index=index,
        label=str(item.get("MultiplexGroupLabel", "") or "").strip(),
        originality=str(item.get("WaveformOriginality", "") or "").strip().upper(),
        sampling_frequency=fs,
        leads=tuple(lead_name(ch) for ch in definitions),
        is_lead=tuple(is_lead(ch) for ch in definitions),
        units=unit_codes,
        data=in_microvolts(raw, sensitivities, unit_codes),
        sensitivities=sensitivities,
    )


def read_groups(ds: Dataset) -> tuple[MultiplexGroup, ...]:
    """Every multiplex group of the Waveform Sequence, decoded, in µV."""
    seq = ds.get("WaveformSequence")
    if not seq:
        raise InputError("Waveform Sequence (5400,0100) is missing or empty: no waveform")
    return tuple(read_group(ds, i) for i in range(len(seq)))
