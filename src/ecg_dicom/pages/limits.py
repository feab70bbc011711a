"""Bounds on the work one object may cost, checked from its header before decoding.

Each check reads only what the header declares (PS3.3 C.7.6.3 Image Pixel:
Rows, Columns, Number of Frames; C.10.9 Waveform: Number of Waveform Channels x
Number of Waveform Samples; a PNG/JPEG header; a PDF page's size) and raises
:class:`~ecg_dicom.errors.LimitError` naming the setting (``limits.*``) before
a byte is decoded.  The same checks run at C-STORE (``dicom.ingest``: the object
is refused) and before a page is made (``dispatch``: the job fails, permanently,
as every :class:`~ecg_dicom.errors.InputError` does).

Text drawn on a page is cut to ``limits.max_text_chars`` with an ellipsis
(:func:`clip_text`); at C-STORE a value of the identity attributes the results
copy (:data:`COPIED_TEXT`) over that length refuses the object, so an SR never
carries one.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable

import cv2
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from ecg_dicom.config import LimitsSettings
from ecg_dicom.errors import InputError, LimitError

#: The limits used where no settings are given (the defaults of ``limits.*``).
DEFAULT_LIMITS = LimitsSettings()

#: Top-level text attributes that are drawn on the pages or copied into the results.
COPIED_TEXT: tuple[str, ...] = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "PatientAge", "StudyDescription", "AccessionNumber", "StudyID", "ReferringPhysicianName",
    "StudyDate", "StudyTime", "AcquisitionDateTime", "InstitutionName", "Manufacturer",
    "ManufacturerModelName", "SpecificCharacterSet",
)


def clip_text(text: str, limit: int = DEFAULT_LIMITS.max_text_chars) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_image_geometry(
    rows: int, columns: int, frames: int, limits: LimitsSettings = DEFAULT_LIMITS
) -> None:
    """Raise :class:`LimitError` when a frame has more than ``limits.max_pixels``
    pixels or the object more than ``limits.max_frames`` frames."""
    if rows * columns > limits.max_pixels:
        raise LimitError(
            f"over limits.max_pixels ({limits.max_pixels:,}): {rows} x {columns} pixels "
            "per frame declared"
        )
    if frames > limits.max_frames:
        raise LimitError(
            f"over limits.max_frames ({limits.max_frames}): {frames:,} frames declared"
        )


def _int(value: object, default: int = 0) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return default


def check_image_dataset(ds: Dataset, limits: LimitsSettings = DEFAULT_LIMITS) -> None:
    """The declared geometry of an image data set (Rows, Columns, Number of Frames)."""
    check_image_geometry(
        _int(ds.get("Rows")), _int(ds.get("Columns")),
        max(1, _int(ds.get("NumberOfFrames"), 1)), limits,
    )


def waveform_samples(items: Iterable[Dataset]) -> int:
    """Declared samples of a Waveform Sequence: channels x samples, summed over its groups."""
    return sum(
        max(0, _int(item.get("NumberOfWaveformChannels")))
        * max(0, _int(item.get("NumberOfWaveformSamples")))
        for item in items
    )


def check_waveform_dataset(ds: Dataset, limits: LimitsSettings = DEFAULT_LIMITS) -> None:
    """Raise :class:`LimitError` when the multiplex groups declare more than
    ``limits.max_waveform_samples`` samples in all."""
    total = waveform_samples(ds.get("WaveformSequence") or [])
    if total > limits.max_waveform_samples:
        raise LimitError(
            f"over limits.max_waveform_samples ({limits.max_waveform_samples:,}): {total:,} "
            "samples declared (channels x samples, all multiplex groups)"
        )


def check_text_values(values: dict[str, str], limits: LimitsSettings = DEFAULT_LIMITS) -> None:
    """Raise :class:`LimitError` for a value longer than ``limits.max_text_chars``
    (``values``: attribute keyword -> its text)."""
    for keyword, text in values.items():
        if len(text) > limits.max_text_chars:
            raise LimitError(
                f"over limits.max_text_chars ({limits.max_text_chars}): {keyword} has "
                f"{len(text):,} characters"
            )


def picture_size(data: bytes, name: str, limits: LimitsSettings = DEFAULT_LIMITS) -> None:
    """Check a PNG/JPEG's dimensions from its header (Pillow's lazy open: no decoding)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise LimitError(f"over limits.max_pixels ({limits.max_pixels:,}): {name}: {exc}") from exc
    except (OSError, ValueError, SyntaxError):
        return  # not for Pillow to judge: the decoder says what is wrong
    if width * height > limits.max_pixels:
        raise LimitError(
            f"over limits.max_pixels ({limits.max_pixels:,}): {name} is {width} x {height} "
            "pixels"
        )


def pdf_scale(
    width_pt: float, height_pt: float, width_px: int, limits: LimitsSettings = DEFAULT_LIMITS
) -> float:
    """The render scale of a PDF page: ``width_px`` wide, or less so that the bitmap
    has at most ``limits.max_pixels`` pixels (a very tall page is drawn smaller)."""
    if not (math.isfinite(width_pt) and math.isfinite(height_pt)) or min(width_pt, height_pt) <= 0:
        raise InputError(f"the PDF page is {width_pt} x {height_pt} pt: no page to render")
    scale = min(width_px / width_pt, math.sqrt(limits.max_pixels / (width_pt * height_pt)))
    while math.ceil(width_pt * scale) * math.ceil(height_pt * scale) > limits.max_pixels:
        scale *= 0.99  # pdfium rounds the bitmap's sides up
    return scale


def within_page_pixels(image: np.ndarray, limits: LimitsSettings = DEFAULT_LIMITS) -> np.ndarray:
    """A decoded picture, scaled down (area interpolation) to at most
    ``limits.max_page_pixels`` pixels; as it is when it has no more."""
    height, width = image.shape[:2]
    if height * width <= limits.max_page_pixels:
        return image
    factor = math.sqrt(limits.max_page_pixels / (height * width))
    size = (max(1, int(width * factor)), max(1, int(height * factor)))
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
