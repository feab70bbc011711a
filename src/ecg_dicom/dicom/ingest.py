"""What a received object is: a well-formed ECG input, or an AI result to decline.

Every storage SOP class is accepted at negotiation (a PACS sending a whole study
gets its ECG through); then, per object:

* :func:`check_dataset`: the header matches the C-STORE's SOP class (a waveform
  has Waveform Sequence, an image Pixel Data, a PDF Encapsulated Document), read
  by the fast top-level element scan (:mod:`ecg_dicom.dicom.scan`), never decoding
  pixels or waveforms;
* :func:`result_origin`: an image that is our own result is declined always (its
  Contributing Equipment (0018,A001) has a Processing Algorithm item (Newcode1,
  99IHE, IHE AIR) whose Manufacturer is ``output.manufacturer``, or its SOP
  Instance UID is under ``output.uid_root``: alone when the root is the site's
  own, together with Manufacturer (0008,0070) = ``output.manufacturer`` when it is
  pydicom's shared default root, which other software also generates UIDs under);
  with ``dicom.skip_ai_results`` (default), an image another AI burned its result
  into: Burned In Annotation (0028,0301) YES and a Processing Algorithm item in
  Contributing Equipment.

Only an image whose header has Contributing Equipment is read further, with
pydicom, stopping before the pixels.

:func:`check_limits` (``limits.*``, :mod:`ecg_dicom.pages.limits`): what the
header declares, before anything is decoded: a Deflated data set's inflated
size (streamed, nothing kept), an identity text value's length (the values the
scan reads anyway), an image's Rows x Columns and Number of Frames (pydicom,
stopping before the pixels), a waveform's channels x samples (read only from a
file large enough to hold more samples than the limit: a smaller one cannot,
and a header that declares more than its data holds fails as truncated before
a sample is decoded).  An object over a limit is refused with 0xC002.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.charset import python_encoding
from pydicom.errors import BytesLengthException
from pydicom.filereader import read_file_meta_info
from pydicom.uid import PYDICOM_ROOT_UID, DeflatedExplicitVRLittleEndian

from ecg_dicom.config import LimitsSettings, Settings
from ecg_dicom.dicom.scan import Header, HeaderError, read_header
from ecg_dicom.errors import DatasetMismatchError, LimitError, UnreadableDatasetError
from ecg_dicom.jobs import Arrival
from ecg_dicom.pages import (
    COPIED_TEXT,
    check_image_dataset,
    check_text_values,
    check_waveform_dataset,
)
from ecg_dicom.sop import (
    DOCUMENT_SOP_CLASSES,
    IMAGE_SOP_CLASSES,
    PROCESSING_ALGORITHM,
    WAVEFORM_SOP_CLASSES,
)

#: The short string elements read from a received data set (PatientID: for the audit
#: trail too; COPIED_TEXT: their lengths are checked against limits.max_text_chars).
HEADER_VALUES = tuple(dict.fromkeys((
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Modality",
    "BurnedInAnnotation", "Manufacturer", "PatientID", *COPIED_TEXT,
)))
#: Bytes inflated at a time while measuring a Deflated data set.
_INFLATE_CHUNK = 1 << 20
#: What reading the header of hostile bytes raises besides HeaderError: sequences
#: nested deeper than Python's recursion limit, a VR pydicom does not know
#: (NotImplementedError), a value whose bytes do not fit its VR.
_UNPARSEABLE: tuple[type[Exception], ...] = (
    HeaderError, OSError, RecursionError, NotImplementedError, ValueError, struct.error,
    BytesLengthException,
)


def _short(value: object, limit: int = 64) -> str:
    """A value from the data set as a reason quotes it: at most ``limit`` characters
    (a mangled element can swallow what follows it, names included)."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def max_inflated_bytes(limits: LimitsSettings) -> int:
    """The largest inflated Deflated data set accepted: one 16-bit RGB frame of
    ``limits.max_pixels``, or ``limits.max_waveform_samples`` 4-byte samples, and
    16 MiB of other attributes."""
    return max(6 * limits.max_pixels, 4 * limits.max_waveform_samples) + (16 << 20)


def check_inflated_size(path: Path, limits: LimitsSettings) -> None:
    """Refuse a Deflated Explicit VR Little Endian data set (PS3.5 A.5) that inflates
    to more than :func:`max_inflated_bytes`, before anything reads it whole."""
    try:
        meta = read_file_meta_info(path)
    except Exception:  # no or broken meta: the header scan names what is wrong
        return
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return
    # preamble, "DICM", then the group length element (12 bytes) and the group
    start = 132 + 12 + int(meta.get("FileMetaInformationGroupLength", 0))
    bound = max_inflated_bytes(limits)
    inflater, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
    with path.open("rb") as fh:
        fh.seek(start)
        while chunk := fh.read(_INFLATE_CHUNK):
            while chunk and not inflater.eof:
                try:
                    total += len(inflater.decompress(chunk, _INFLATE_CHUNK))
                except zlib.error as exc:
                    raise UnreadableDatasetError(
                        f"the Deflated data set cannot be inflated: {exc}"
                    ) from exc
                chunk = inflater.unconsumed_tail
                if total > bound:
                    raise LimitError(
                        f"over limits.max_pixels/max_waveform_samples: the Deflated "
                        f"data set inflates past {bound:,} bytes"
                    )
            if inflater.eof:
                return


def check_limits(path: Path, sop_class_uid: str, header: Header, limits: LimitsSettings) -> None:
    """What the header of a checked ECG input declares, against ``limits.*``
    (see the module docstring).  Raises :class:`~ecg_dicom.errors.LimitError`."""
    check_text_values({keyword: header.get(keyword) for keyword in COPIED_TEXT}, limits)
    try:
        if sop_class_uid in IMAGE_SOP_CLASSES:
            check_image_dataset(dcmread(
                path, stop_before_pixels=True,
                specific_tags=["Rows", "Columns", "NumberOfFrames"],
            ), limits)
        elif (
            sop_class_uid in WAVEFORM_SOP_CLASSES
            and path.stat().st_size > limits.max_waveform_samples
        ):
            check_waveform_dataset(
                dcmread(path, specific_tags=["WaveformSequence"], defer_size=1024), limits
            )
    except LimitError:
        raise
    except Exception as exc:  # pydicom raises many types on a malformed header
        raise UnreadableDatasetError(f"data set cannot be parsed: {_short(exc)}") from exc


def check_dataset(path: Path, sop_class_uid: str) -> Header:
    """Scan the header of a received file and check it matches its SOP class.

    Only top-level element headers are walked (see scan.py); pixel and
    waveform data are skipped by their lengths, never decoded.  Returns the
    header.  Raises UnreadableDatasetError or DatasetMismatchError.
    """
    try:
        header = read_header(path, HEADER_VALUES)
    except _UNPARSEABLE as exc:
        raise UnreadableDatasetError(f"data set cannot be parsed: {_short(exc)}") from exc
    found = header.get("SOPClassUID")
    if found and found != sop_class_uid:
        raise DatasetMismatchError(
            f"SOP Class UID in data set ({_short(found)}) differs from the C-STORE's "
            f"({sop_class_uid})"
        )
    if not header.get("SOPInstanceUID"):
        raise DatasetMismatchError("SOP Instance UID (0008,0018) is missing")
    if sop_class_uid in WAVEFORM_SOP_CLASSES and not header.has("WaveformSequence"):
        raise DatasetMismatchError("a waveform object without Waveform Sequence (5400,0100)")
    if sop_class_uid in IMAGE_SOP_CLASSES and not (
        header.has("PixelData") or header.has("FloatPixelData")
    ):
        raise DatasetMismatchError("an image object without Pixel Data (7FE0,0010)")
    if sop_class_uid in DOCUMENT_SOP_CLASSES and not header.has("EncapsulatedDocument"):
        raise DatasetMismatchError("an encapsulated PDF without Encapsulated Document (0042,0011)")
    return header


def study_of(path: Path) -> str:
    """The Study Instance UID of a received file, "" when its header cannot be read
    (for the ledger row of a declined object only)."""
    try:
        return read_header(path, ("StudyInstanceUID",)).get("StudyInstanceUID")[:64]
    except _UNPARSEABLE:
        return ""


def with_identity(arrival: Arrival, header: Header) -> Arrival:
    """``arrival`` with the patient and study of a checked ECG input (for the viewer's
    list): the values the header scan read, decoded by the Specific Character Set
    when it is one without code extensions (else as read)."""
    terms = [t.strip() for t in header.get("SpecificCharacterSet").split("\\")]
    codec = python_encoding.get(terms[0])

    def text(keyword: str) -> str:
        read = header.get(keyword)  # read as latin-1: the bytes as they came
        raw = read.encode("latin-1", errors="replace")
        return read if codec is None or b"\x1b" in raw else raw.decode(codec, errors="replace")

    return replace(arrival, patient_name=text("PatientName"), patient_id=text("PatientID"),
                   study_date=text("StudyDate"), study_description=text("StudyDescription"))


def _is_processing_algorithm(item: Dataset) -> bool:
    """Whether a Contributing Equipment item's Purpose of Reference is IHE AIR's
    (Newcode1, 99IHE, "Processing Algorithm")."""
    for code in item.get("PurposeOfReferenceCodeSequence") or []:
        value = str(code.get("CodeValue", "")).strip()
        scheme = str(code.get("CodingSchemeDesignator", "")).strip()
        meaning = str(code.get("CodeMeaning", "")).strip()
        if (value, scheme) == PROCESSING_ALGORITHM[:2] or meaning.lower() == "processing algorithm":
            return True
    return False


def _equipment_name(item: Dataset) -> str:
    parts = [str(item.get(k, "") or "").strip() for k in ("Manufacturer", "ManufacturerModelName")]
    return " / ".join(p for p in parts if p) or "an unnamed algorithm"


def result_origin(path: Path, header: Header, settings: Settings) -> tuple[str, str] | None:
    """Whether a received image is an AI result: ``(kind, why)`` or None.

    ``kind`` is "own_result" (an ecg-dicom result: always declined) or
    "ai_result" (another AI's burned-in result: declined when
    ``dicom.skip_ai_results``).  See the module docstring for the rules.  Reads
    nothing more than the header scan unless the image has Contributing
    Equipment; then only its header, with pydicom.
    """
    root = settings.output.uid_root
    ours = settings.output.manufacturer.strip()
    under_root = header.get("SOPInstanceUID").startswith(root)
    if under_root and root != PYDICOM_ROOT_UID:
        return "own_result", f"an ecg-dicom result (SOP Instance UID under output.uid_root {root})"
    if under_root and ours and header.get("Manufacturer") == ours:
        return "own_result", f"an ecg-dicom result (UID root {root}, Manufacturer {ours!r})"
    if not header.has("ContributingEquipmentSequence"):
        return None
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["ContributingEquipmentSequence"])
        items = list(ds.get("ContributingEquipmentSequence") or [])
    except Exception as exc:  # pydicom raises many types on a malformed sequence
        raise UnreadableDatasetError(
            f"Contributing Equipment Sequence (0018,A001) cannot be parsed: {_short(exc)}"
        ) from exc
    algorithms = [item for item in items if _is_processing_algorithm(item)]
    for item in algorithms:
        if ours and str(item.get("Manufacturer", "") or "").strip() == ours:
            return "own_result", (
                f"an ecg-dicom result (Contributing Equipment names {_equipment_name(item)} "
                "as its processing algorithm)"
            )
    if settings.dicom.skip_ai_results and algorithms and header.get("BurnedInAnnotation") == "YES":
        return "ai_result", f"burned-in AI result of {_equipment_name(algorithms[0])}"
    return None
