"""Waveform Data bytes -> raw sample values (PS3.3 C.10.9.1.5).

Every Waveform Sample Interpretation (SB/UB/MB/AB/SS/US/SL/UL/SV/UV) is read,
G.711 µ-law (MB) and A-law (AB) expanded to linear values, in the byte order of
the transfer syntax.  Turning the raw values into microvolts is the channel
sensitivity's job (:mod:`ecg_dicom.pages.multiplex`).
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian

from ecg_dicom.errors import InputError, UnsupportedInputError

#: numpy type of each Waveform Sample Interpretation (PS3.3 C.10.9.1.5); its
#: size is the only Waveform Bits Allocated the interpretation allows.
SAMPLE_DTYPES: dict[str, str] = {
    "SB": "i1", "UB": "u1", "MB": "u1", "AB": "u1", "SS": "i2", "US": "u2",
    "SL": "i4", "UL": "u4", "SV": "i8", "UV": "u8",
}


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
    if interpretation not in SAMPLE_DTYPES:
        raise UnsupportedInputError(
            f"Waveform Sample Interpretation (5400,1006) {interpretation!r} is not one of "
            f"{', '.join(SAMPLE_DTYPES)}"
        )
    dtype = np.dtype(SAMPLE_DTYPES[interpretation]).newbyteorder("<" if little_endian else ">")
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


def is_little_endian(ds: Dataset) -> bool:
    """Byte order of the Waveform Data as read (Explicit VR Big Endian -> False)."""
    encoding = getattr(ds, "original_encoding", (None, None))
    if encoding[1] is not None:
        return bool(encoding[1])
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return not (syntax is not None and syntax == ExplicitVRBigEndian)
