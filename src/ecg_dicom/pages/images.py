"""Pictures of ECGs -> :class:`~ecg_dicom.records.Page` (RGB uint8).

Image SOP classes (PS3.3 A.8 Secondary Capture, single and multi-frame; A.32.4
VL Photographic) are decoded through pydicom's pixel pipeline with its
pylibjpeg / Pillow plug-ins, so every transfer syntax in :mod:`ecg_dicom.sop`
(native, deflated, big endian, JPEG baseline/extended/lossless, JPEG-LS,
JPEG 2000, RLE) is read the same way.  Then, following PS3.3 C.11:

* Modality LUT / Rescale (C.11.1), then the VOI transform (C.11.2: Window
  Center/Width with LINEAR, LINEAR_EXACT or SIGMOID, or a VOI LUT Sequence);
  without any, 8-bit data is used as is and deeper data is stretched from its
  minimum to its maximum;
* MONOCHROME1 is inverted so that ink is dark, MONOCHROME2 kept, PALETTE COLOR
  expanded through its LUT, YBR_* converted to RGB by pydicom (``as_rgb``);
* a multi-frame object gives its **first** frame (a printed ECG is one page;
  ``Page.source_index`` records the frame).

Encapsulated PDF (PS3.3 A.45.1) is rendered with pypdfium2: the first page at
1600 px wide, the width of the training pages (narrower when that would make more
than ``limits.max_pixels`` pixels).  Plain PNG/JPEG files are read with OpenCV.
Pages from pictures have no known scale (``px_per_mm`` None).

Before anything is decoded the declared size is checked (:mod:`.limits`): the
DICOM header's Rows x Columns and Number of Frames, the first compressed frame's
own header where Pillow can read it (a JPEG stream larger than the header says),
a PNG/JPEG file's header.  A decoded page over ``limits.max_page_pixels`` is
scaled down to it, so detect and build (in the worker) stay bounded.
"""

from __future__ import annotations

import cv2
import numpy as np
import pypdfium2 as pdfium
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.uid import UID

from ecg_dicom.config import LimitsSettings
from ecg_dicom.errors import InputError, UnsupportedInputError
from ecg_dicom.pages.limits import (
    DEFAULT_LIMITS,
    check_image_dataset,
    pdf_scale,
    picture_size,
    within_page_pixels,
)
from ecg_dicom.records import Page
from ecg_dicom.sop import COMPRESSED_TRANSFER_SYNTAXES, NATIVE_TRANSFER_SYNTAXES

#: Width of a rendered PDF page, px (the training pages' width).
PDF_WIDTH_PX = 1600
_PHOTOMETRIC = {
    "MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR",
    "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT",
}


def _transfer_syntax(ds: Dataset) -> UID | None:
    meta = getattr(ds, "file_meta", None)
    return meta.get("TransferSyntaxUID") if meta is not None else None


def _check_image_attributes(ds: Dataset) -> None:
    """Refuse what the pixel pipeline cannot turn into a page, naming the attribute."""
    if "PixelData" not in ds:
        raise InputError("Pixel Data (7FE0,0010) is missing: no image")
    syntax = _transfer_syntax(ds)
    if syntax is not None and syntax not in NATIVE_TRANSFER_SYNTAXES + COMPRESSED_TRANSFER_SYNTAXES:
        raise UnsupportedInputError(
            f"Transfer Syntax UID (0002,0010) {syntax} ({getattr(syntax, 'name', '?')}) is not "
            "one ecg-dicom decodes"
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in _PHOTOMETRIC:
        raise UnsupportedInputError(
            f"Photometric Interpretation (0028,0004) {photometric!r} is not supported"
        )
    bits = int(ds.get("BitsAllocated", 0) or 0)
    if bits not in (1, 8, 16):
        raise UnsupportedInputError(
            f"Bits Allocated (0028,0100) is {bits}; pages must be 1, 8 or 16 bit"
        )
    for keyword in ("Rows", "Columns", "SamplesPerPixel"):
        if not ds.get(keyword):
            raise InputError(f"{keyword} is missing or zero: no image geometry")


def _window(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """Grey values after Modality and VOI transforms, scaled to 0..255 (PS3.3 C.11)."""
    data = apply_modality_lut(values, ds).astype(np.float64)
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None:
        c = float(center[0] if not isinstance(center, (int, float)) else center)
        w = float(width[0] if not isinstance(width, (int, float)) else width)
        function = str(ds.get("VOILUTFunction", "LINEAR")).strip().upper()
        if w <= 0 or (function == "LINEAR" and w < 1):
            raise InputError(f"Window Width (0028,1051) {w} is not valid for {function}")
        if function == "SIGMOID":
            out = 1.0 / (1.0 + np.exp(-4.0 * (data - c) / w))
        elif function == "LINEAR_EXACT":
            out = (data - (c - w / 2.0)) / w
        else:
            out = (data - (c - 0.5)) / (w - 1.0) + 0.5
        return np.clip(out * 255.0, 0, 255)
    if ds.get("VOILUTSequence"):
        # the LUT's output range is 0 .. 2^n - 1, n = LUT Descriptor[2] (PS3.3 C.11.2.1.1)
        descriptor = ds.VOILUTSequence[0].get("LUTDescriptor")
        if descriptor is None or len(descriptor) != 3:
            raise InputError("LUT Descriptor (0028,3002) of the VOI LUT Sequence is not 3 values")
        bits = int(descriptor[2])
        data = apply_voi_lut(values, ds).astype(np.float64)
        return np.clip(data * (255.0 / ((1 << bits) - 1)), 0, 255)
    if int(ds.get("BitsStored", 8)) <= 8 and data.min() >= 0:
        return np.clip(data, 0, 255)
    low, high = float(data.min()), float(data.max())
    if high <= low:
        return np.zeros_like(data)
    return (data - low) * (255.0 / (high - low))


def rgb_from_pixels(values: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    """One decoded frame -> H x W x 3 uint8 RGB.

    ``photometric`` is the interpretation of ``values`` (pydicom turns YBR
    into RGB while decoding, so it may differ from the data set's).
    """
    single = int(ds.get("BitsAllocated", 8)) == 1 or photometric.startswith("MONOCHROME")
    if (single or photometric == "PALETTE COLOR") and values.ndim != 2:
        raise InputError(f"Samples per Pixel (0028,0002) is {str(ds.get('SamplesPerPixel'))[:8]}"
                         f" for {photometric[:16]}: one sample per pixel expected")
    if int(ds.get("BitsAllocated", 8)) == 1:
        bits = values.astype(np.uint8) * 255
        if photometric == "MONOCHROME1":
            bits = 255 - bits
        return np.repeat(bits[..., None], 3, axis=2)
    if photometric.startswith("MONOCHROME"):
        grey = _window(values, ds)
        if photometric == "MONOCHROME1":
            grey = 255.0 - grey
        return np.repeat(np.round(grey).astype(np.uint8)[..., None], 3, axis=2)
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(values, ds)
        depth = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return (rgb >> (depth - 8)).astype(np.uint8) if depth > 8 else rgb.astype(np.uint8)
    if values.ndim != 3 or values.shape[2] != 3:
        raise InputError(
            f"Samples per Pixel (0028,0002) is {ds.get('SamplesPerPixel')} for {photometric}"
        )
    if values.dtype != np.uint8:
        high = (1 << int(ds.get("BitsStored", 16))) - 1
        values = np.round(values.astype(np.float64) * (255.0 / high))
    return np.ascontiguousarray(values.astype(np.uint8))


def _syntax_name(ds: Dataset) -> str:
    syntax = _transfer_syntax(ds)
    return f"{syntax.name}" if syntax is not None else "no transfer syntax"


def _check_first_frame(ds: Dataset, frames: int, limits: LimitsSettings) -> None:
    """The size the first compressed frame's own header declares (JPEG, JPEG 2000),
    which the decoder follows whatever Rows and Columns say."""
    syntax = _transfer_syntax(ds)
    if syntax is None or not syntax.is_encapsulated:
        return
    try:
        first = next(generate_frames(ds.PixelData, number_of_frames=frames))
    except Exception:  # malformed encapsulation: the decoder names it
        return
    picture_size(first, "the first frame of Pixel Data (7FE0,0010)", limits)


def page_from_image_dataset(ds: Dataset, limits: LimitsSettings = DEFAULT_LIMITS) -> Page:
    """An SC / multi-frame SC / VL Photographic data set -> a page (first frame).

    Raises :class:`InputError` for missing or corrupt pixel data,
    :class:`UnsupportedInputError` for encodings outside PS3.3 C.7.6.3 that a
    page cannot come from and :class:`~ecg_dicom.errors.LimitError` for
    an image over ``limits.max_pixels`` or ``limits.max_frames``.
    """
    _check_image_attributes(ds)
    check_image_dataset(ds, limits)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    _check_first_frame(ds, frames, limits)
    try:
        values = pixel_array(ds, index=0 if frames > 1 else None, as_rgb=True)
    except Exception as exc:  # pydicom and its plug-in decoders raise many types
        raise InputError(
            f"Pixel Data (7FE0,0010) could not be decoded ({_syntax_name(ds)}): {exc}"
        ) from exc
    photometric = str(ds.PhotometricInterpretation).strip()
    if photometric.startswith("YBR"):
        photometric = "RGB"  # pydicom converted it (as_rgb, PS3.3 C.7.6.3.1.2)
    image = within_page_pixels(rgb_from_pixels(values, ds, photometric), limits)
    return Page(image=image, source_kind="image", source_index=0)


def page_from_pdf_bytes(
    data: bytes, *, source_index: int = 0, limits: LimitsSettings = DEFAULT_LIMITS
) -> Page:
    """The first page of a PDF, rendered at :data:`PDF_WIDTH_PX` wide (at most
    ``limits.max_pixels`` pixels), as RGB."""
    if not data.lstrip(b"\x00\r\n\t ").startswith(b"%PDF"):
        raise InputError("Encapsulated Document (0042,0011) does not start with %PDF: not a PDF")
    try:
        pdf = pdfium.PdfDocument(data)
        try:
            if len(pdf) == 0:
                raise InputError("the PDF has no pages")
            first = pdf[0]
            width_pt, height_pt = first.get_size()
            scale = pdf_scale(width_pt, height_pt, PDF_WIDTH_PX, limits)
            bitmap = first.render(scale=scale, rev_byteorder=True)
            image = np.array(bitmap.to_numpy()[..., :3], dtype=np.uint8, copy=True)
        finally:
            pdf.close()
    except pdfium.PdfiumError as exc:
        raise InputError(f"the PDF could not be rendered: {exc}") from exc
    return Page(image=within_page_pixels(image, limits), source_kind="pdf",
                source_index=source_index)


def page_from_pdf_dataset(ds: Dataset, limits: LimitsSettings = DEFAULT_LIMITS) -> Page:
    """An Encapsulated PDF data set (PS3.3 A.45.1) -> its first page."""
    mime = str(ds.get("MIMETypeOfEncapsulatedDocument", "")).strip()
    if mime and mime != "application/pdf":
        raise UnsupportedInputError(
            f"MIME Type of Encapsulated Document (0042,0012) is {mime!r}, not application/pdf"
        )
    document = ds.get("EncapsulatedDocument")
    if not document:
        raise InputError("Encapsulated Document (0042,0011) is missing or empty")
    if not isinstance(document, bytes | bytearray):
        raise InputError("Encapsulated Document (0042,0011) does not hold bytes")
    return page_from_pdf_bytes(bytes(document), limits=limits)


def page_from_image_bytes(
    data: bytes, name: str = "image", limits: LimitsSettings = DEFAULT_LIMITS
) -> Page:
    """A PNG or JPEG file's bytes -> RGB page (alpha dropped, grey expanded); its
    size is checked from its header first (``limits.max_pixels``)."""
    picture_size(data, name, limits)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{name} could not be decoded as PNG or JPEG (corrupt or truncated)")
    rgb = within_page_pixels(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), limits)
    return Page(image=rgb, source_kind="image")
