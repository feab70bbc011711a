"""The SC's transfer syntax, and the lossy history it carries from an image source.

* Transfer syntax: JPEG-LS Lossless (PS3.5 A.4.3, ISO 14495-1,
  :data:`SC_TRANSFER_SYNTAX`), built so by highdicom.  Measured on the four real
  ECGs rendered and annotated (1600 x 1347 RGB, 6.5 MB native): 0.64-0.69 MB.
  Deflated Explicit VR Little Endian is smaller still on rendered pages
  (~0.15-0.19 MB; the dotted grid defeats JPEG-LS's predictor), but dicom3tools'
  dciodvfy, this project's proof of validity, cannot read it, and fewer archives
  accept it; the SCU offers it as the next choice and uncompressed last
  (:func:`sc_for_transfer_syntax` makes those copies).  A decoded JPEG photograph
  of an ECG stays large losslessly: ~2.9 MB (Deflate ~2.0 MB), never
  re-compressed lossily.
* Lossy compression of an image source is carried (General Image module, PS3.3
  C.7.6.1.1.5): once an image has been lossy compressed, every image derived
  from it says so, with the ratio and method of that compression
  (:func:`lossy_history`, :func:`set_lossy_compression`).  A page rendered from a
  waveform says "00".
"""

from __future__ import annotations

import copy

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import generate_fragmented_frames
from pydicom.multival import MultiValue
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from ecg_dicom.records import Page

#: The transfer syntax every SC is built in (lossless; see the module docstring).
SC_TRANSFER_SYNTAX = JPEGLSLossless
#: What :func:`sc_for_transfer_syntax` can give: never a lossy one.
UNCOMPRESSED_SYNTAXES = (
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian
)
LOSSLESS_COMPRESSED_SYNTAXES = (JPEGLSLossless, RLELossless, JPEG2000Lossless)
#: Lossy Image Compression Method (0028,2114) defined terms (PS3.3 C.7.6.1.1.5.1)
#: of the transfer syntaxes that are lossy whenever Lossy Image Compression does
#: not say otherwise.
LOSSY_METHODS: dict[str, str] = {
    JPEGBaseline8Bit: "ISO_10918_1",
    JPEGExtended12Bit: "ISO_10918_1",
    JPEGLSNearLossless: "ISO_14495_1",
    JPEG2000: "ISO_15444_1",
    HTJ2K: "ISO_15444_15",
}


def set_lossy_compression(sc: Dataset, source: Dataset, page: Page) -> None:
    """Lossy Image Compression (0028,2110) of the SC (PS3.3 C.7.6.1.1.5): "00" for a
    page rendered from a waveform (never lossy); for an image source "01" with the
    source's ratios and methods when it was lossy compressed, "00" when the source
    says it was not; nothing when unknown (a PDF's page may hold a JPEG)."""
    if page.source_kind == "waveform":
        sc.LossyImageCompression = "00"
        return
    if page.source_kind != "image":
        return
    lossy = lossy_history(source)
    if lossy is None:
        if str(source.get("LossyImageCompression", "")).strip() == "00":
            sc.LossyImageCompression = "00"
        return
    sc.LossyImageCompression = "01"
    ratios, methods = lossy
    if methods:
        sc.LossyImageCompressionMethod = methods
    if ratios and len(ratios) == len(methods):
        sc.LossyImageCompressionRatio = ratios


def lossy_history(source: Dataset) -> tuple[list[str], list[str]] | None:
    """(ratios, methods) of the lossy compression an image source went through,
    or None when it was not lossy compressed (PS3.3 C.7.6.1.1.5).

    Lossy Image Compression (0028,2110) "01" says so, with its Ratio and Method
    when the sender gave them.  Without the attribute, a transfer syntax that is
    lossy (JPEG baseline/extended, JPEG-LS near-lossless, JPEG 2000 / HTJ2K that
    may be irreversible) says so, with its method and the ratio of the native
    size to the encoded size.  "00" (lossless) is believed.
    """
    flag = str(source.get("LossyImageCompression", "") or "").strip()
    if flag == "00":
        return None
    ratios = [str(v) for v in _values(source.get("LossyImageCompressionRatio"))]
    methods = [str(v) for v in _values(source.get("LossyImageCompressionMethod"))]
    if flag == "01":
        return ratios, methods
    syntax = syntax_of(source)
    if syntax not in LOSSY_METHODS:
        return None
    ratio = _encoded_ratio(source)
    return ([ratio] if ratio else []), [LOSSY_METHODS[syntax]]


def _values(value: object) -> list[object]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]


def syntax_of(ds: Dataset) -> UID:
    """The transfer syntax a built or read object is encoded in (Explicit VR Little
    Endian when it has no File Meta Information yet)."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(syntax) if syntax else ExplicitVRLittleEndian


def _encoded_ratio(source: Dataset) -> str | None:
    """Native size / encoded size of the source's pixel data, as DS text."""
    try:
        frames = int(source.get("NumberOfFrames", 1) or 1)
        native = (
            int(source.Rows) * int(source.Columns) * int(source.get("SamplesPerPixel", 1))
            * int(source.BitsAllocated) // 8 * frames
        )
        encoded = sum(
            len(fragment)
            for frame in generate_fragmented_frames(source.PixelData, number_of_frames=frames)
            for fragment in frame
        )
    except (AttributeError, ValueError, TypeError, KeyError):
        return None
    return f"{native / encoded:.2f}"[:16] if encoded > 0 else None


def sc_for_transfer_syntax(ds: Dataset, transfer_syntax: str) -> Dataset:
    """A copy of the SC ``ds`` in another lossless ``transfer_syntax``, for a peer
    that did not accept the syntax it was built in.

    Uncompressed targets (Explicit / Implicit VR Little Endian, Deflated) get the
    native pixels (decompressed if needed); JPEG-LS Lossless, RLE Lossless and
    JPEG 2000 Lossless re-encode them.  A lossless change of transfer syntax
    keeps the SOP Instance UID (PS3.5 10; PS3.4 B.4.1: the same instance).
    Lossy syntaxes are refused: the annotated image must not lose what is drawn.
    """
    target = UID(transfer_syntax)
    if target not in UNCOMPRESSED_SYNTAXES + LOSSLESS_COMPRESSED_SYNTAXES:
        raise ValueError(
            f"the SC is only sent in a lossless transfer syntax, not {target} ({target.name})"
        )
    own = syntax_of(ds)
    out = copy.deepcopy(ds)
    if getattr(out, "file_meta", None) is None:
        out.file_meta = FileMetaDataset()
    if own == target:
        return out
    if own.is_compressed:
        out.decompress(generate_instance_uid=False)
    if target.is_compressed:
        out.compress(target, generate_instance_uid=False)
    else:
        out.file_meta.TransferSyntaxUID = target
    return out
