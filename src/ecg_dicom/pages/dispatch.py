"""Any accepted input -> the :class:`~ecg_dicom.records.Page` the model reads.

The one dispatch the service and the CLI call.  By SOP Class UID (PS3.4
Annex B): the waveform classes are loaded (:mod:`ecg_dicom.pages.waveform`) and
made the page the model reads (:mod:`ecg_dicom.pages.quality`); a Hemodynamic
Waveform whatever its Modality (0008,0060) (cath-lab systems send ECG, HD or
others), as long as one of its channels is an ECG lead, else
:class:`~ecg_dicom.errors.NotAnEcgError` (the worker skips the job); image
classes and Encapsulated PDF go through :mod:`ecg_dicom.pages.images`.

What is wrong with an input surfaces as :class:`InputError` (or a subclass)
with a message naming what is wrong, so a job fails with that reason and the
next ECG is processed normally.  pydicom converts a value when it is first
read, so a malformed one raises deep inside the readers: the exceptions that
mean that (:data:`MALFORMED_VALUE_ERRORS`) become InputError.  Any other
exception is a bug and propagates as it is: the worker retries the job and
logs its traceback.

Every reader gets the ``limits`` (``limits.*`` settings): what the header
declares is checked before anything is decoded (:mod:`ecg_dicom.pages.limits`).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError

from ecg_dicom.config import LimitsSettings
from ecg_dicom.errors import (
    EcgDicomError,
    InputError,
    NotInterpretableError,
    UnsupportedInputError,
)
from ecg_dicom.pages.images import (
    page_from_image_bytes,
    page_from_image_dataset,
    page_from_pdf_bytes,
    page_from_pdf_dataset,
)
from ecg_dicom.pages.limits import DEFAULT_LIMITS, check_waveform_dataset
from ecg_dicom.pages.quality import interpretable_page
from ecg_dicom.pages.values import check_values
from ecg_dicom.pages.waveform import load_waveform
from ecg_dicom.records import Page
from ecg_dicom.sop import DOCUMENT_SOP_CLASSES, IMAGE_SOP_CLASSES, WAVEFORM_SOP_CLASSES

#: What pydicom (and numpy on its values) raise for a malformed or truncated value
#: read lazily: a string where a number belongs (ValueError, UnicodeDecodeError
#: included), a value too large (OverflowError), fewer items or bytes than the
#: standard says (IndexError, KeyError, struct.error, EOFError, BytesLengthException),
#: a VR that does not exist (NotImplementedError "Unknown Value Representation").
#: Bad input, not bugs.
MALFORMED_VALUE_ERRORS: tuple[type[Exception], ...] = (
    ValueError, OverflowError, IndexError, KeyError, struct.error, EOFError,
    BytesLengthException, NotImplementedError,
)
#: ... and what reading a file adds: an unreadable file, bytes pydicom cannot parse,
#: a Deflated data set that does not inflate (zlib.error).
_UNREADABLE_FILE_ERRORS: tuple[type[Exception], ...] = (
    OSError, InvalidDicomError, zlib.error, *MALFORMED_VALUE_ERRORS,
)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def page_from_waveform_dataset(ds: Dataset, limits: LimitsSettings = DEFAULT_LIMITS) -> Page:
    """A waveform data set -> the rendered 12-lead page the model reads.

    The declared samples are checked first (``limits.max_waveform_samples``) and
    header text is cut to ``limits.max_text_chars``.

    Raises :class:`~ecg_dicom.errors.NotInterpretableError` (with the page to show)
    for a signal the model cannot interpret (see quality.interpretable_page) and
    :class:`~ecg_dicom.errors.NotAnEcgError` for a Hemodynamic Waveform without an
    ECG lead (waveform.require_ecg_lead)."""
    check_waveform_dataset(ds, limits)
    return interpretable_page(load_waveform(ds, max_text_chars=limits.max_text_chars))


def _dispatch(ds: Dataset, limits: LimitsSettings) -> Callable[[Dataset], Page]:
    sop_class = ds.get("SOPClassUID")
    if not sop_class:
        raise InputError("SOP Class UID (0008,0016) is missing: not a composite instance")
    if not isinstance(sop_class, str):
        raise InputError("SOP Class UID (0008,0016) is not one UID")
    if sop_class in WAVEFORM_SOP_CLASSES:  # Hemodynamic included
        return partial(page_from_waveform_dataset, limits=limits)
    if sop_class in IMAGE_SOP_CLASSES:
        return partial(page_from_image_dataset, limits=limits)
    if sop_class in DOCUMENT_SOP_CLASSES:
        return partial(page_from_pdf_dataset, limits=limits)
    name = getattr(sop_class, "name", "")
    raise UnsupportedInputError(
        f"SOP Class UID (0008,0016) {sop_class}{f' ({name})' if name and name != sop_class else ''}"
        " is not an ECG waveform, image or PDF class ecg-dicom reads"
    )


def page_from_dataset(ds: Dataset, limits: LimitsSettings = DEFAULT_LIMITS) -> Page:
    """The page for one received instance, chosen by its SOP Class UID.

    Raises :class:`UnsupportedInputError` for classes we do not read,
    :class:`NotAnEcgError` for a Hemodynamic object without ECG leads and
    :class:`InputError` for anything malformed, a malformed value that pydicom
    only converts when it is read (:data:`MALFORMED_VALUE_ERRORS`) and a deferred
    value whose bytes are truncated (pydicom's OSError without an errno) included.
    Any other exception is a bug: it propagates unchanged, with its traceback.
    """
    try:
        return _dispatch(ds, limits)(ds)
    except EcgDicomError:
        raise
    except MALFORMED_VALUE_ERRORS as exc:  # a malformed attribute deep inside pydicom/numpy
        raise InputError(f"{type(exc).__name__} while reading the instance: {exc}") from exc
    except OSError as exc:
        if exc.errno is not None:  # the disk or the file system: not the object's fault
            raise
        # pydicom's own ("No tag to read at file position ..."): a value read from the
        # file only now (deferred, read_received's defer_size) is truncated or corrupt.
        raise InputError(f"the instance is truncated or corrupt: {exc}") from exc


def read_received(path: Path, *, defer_size: int | None = None) -> Dataset:
    """Read a received instance (a Part 10 file the listener wrote); values larger than
    ``defer_size`` bytes are read from the file only when used (pydicom's deferred read)."""
    try:
        ds = pydicom.dcmread(path, defer_size=defer_size)
    except _UNREADABLE_FILE_ERRORS as exc:  # OSError: pydicom's "No tag to read at ..."
        raise InputError(f"received file cannot be read as DICOM: {exc}") from exc
    except RecursionError as exc:  # pydicom reads nested sequences recursively
        raise InputError(
            "received file cannot be read as DICOM: sequences nested too deeply"
        ) from exc
    check_values(ds)
    return ds


#: The groups a bare data set (no preamble) starts with: File Meta (0002) or the
#: identifying elements (0008), little-endian or (0008 only) big-endian.
_BARE_DATASET_STARTS = (b"\x02\x00", b"\x08\x00", b"\x00\x08")


def _looks_like_dicom(head: bytes) -> bool:
    """A Part 10 preamble ("DICM" at 128), or a data set starting with a plausible tag.

    Without it pydicom's forced read would make "elements" of any bytes (a text
    file's letters become tag (6F6E,2074)) and warn about each.
    """
    return head[128:132] == b"DICM" or head[:2] in _BARE_DATASET_STARTS


def _read_dicom(data_path: Path, head: bytes) -> Dataset:
    """Read a Part 10 file, or a bare data set without preamble (force)."""
    if not _looks_like_dicom(head):
        raise InputError(f"{data_path} is neither DICOM, PNG, JPEG nor PDF")
    try:
        ds = pydicom.dcmread(data_path, force=True)
    except _UNREADABLE_FILE_ERRORS as exc:  # garbage bytes
        raise InputError(
            f"{data_path} is not a readable DICOM file (truncated or corrupt): {exc}"
        ) from exc
    except RecursionError as exc:  # pydicom reads nested sequences recursively
        raise InputError(f"{data_path}: sequences nested too deeply") from exc
    check_values(ds)
    return ds


def page_from_file(path: Path, limits: LimitsSettings = DEFAULT_LIMITS) -> Page:
    """A DICOM file (Part 10 or a bare data set), PNG, JPEG or PDF -> page.

    The kind is sniffed from the first bytes, not the file name.
    """
    try:
        if path.is_file():
            with path.open("rb") as fp:
                head: bytes | None = fp.read(132)
        else:
            head = None
    except OSError as exc:
        raise InputError(f"{path} could not be read: {exc}") from exc
    if head is None:
        raise InputError(f"{path} is not a file")
    if not head:
        raise InputError(f"{path} is empty")
    if head.startswith((_PNG_MAGIC, _JPEG_MAGIC)):
        return page_from_image_bytes(path.read_bytes(), str(path), limits)
    if head.lstrip(b"\x00\r\n\t ").startswith(b"%PDF"):
        try:
            return page_from_pdf_bytes(path.read_bytes(), limits=limits)
        except OSError as exc:
            raise InputError(f"{path}: {exc}") from exc
    ds = _read_dicom(path, head)
    try:
        if "SOPClassUID" not in ds:
            raise InputError("neither DICOM (no SOP Class UID (0008,0016)), PNG, JPEG nor PDF")
        return page_from_dataset(ds, limits)
    except NotInterpretableError:
        raise  # a result, not a failure: its reason, header and page stay as they are
    except EcgDicomError as exc:
        raise type(exc)(f"{path}: {exc}") from exc
    except _UNREADABLE_FILE_ERRORS as exc:  # deferred reads of a truncated file
        raise InputError(f"{path}: {type(exc).__name__}: {exc}") from exc
