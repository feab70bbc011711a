"""Any accepted input -> the :class:`~ecg_dicom.records.Page` the model reads.

The one dispatch the service and the CLI call.  By SOP Class UID (PS3.4
Annex B): the waveform classes are loaded (:mod:`ecg_dicom.pages.waveform`) and
rendered (:mod:`ecg_dicom.pages.render`); a Hemodynamic Waveform whatever its Modality
(0008,0060) (cath-lab systems send ECG, HD or others), as long as one of its
channels is an ECG lead, else :class:`~ecg_dicom.errors.NotAnEcgError` (the
worker skips the job); image classes and Encapsulated PDF go through
:mod:`ecg_dicom.pages.images`.

Whatever goes wrong with an input surfaces as :class:`InputError` (or its
subclass :class:`UnsupportedInputError`) with a message naming what is
wrong, never as a pydicom/numpy exception, so a job can fail with that reason
and the next ECG is processed normally.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from ecg_dicom.sop import (
    DOCUMENT_SOP_CLASSES,
    HEMODYNAMIC_WAVEFORM,
    IMAGE_SOP_CLASSES,
    WAVEFORM_SOP_CLASSES,
)
from ecg_dicom.errors import (
    EcgDicomError,
    InputError,
    NotAnEcgError,
    NotInterpretableError,
    UnsupportedInputError,
)
from ecg_dicom.pages.images import (
    page_from_image_bytes,
    page_from_image_dataset,
    page_from_pdf_bytes,
    page_from_pdf_dataset,
)
from ecg_dicom.pages.render import interpretable_page
from ecg_dicom.pages.waveform import load_waveform, read_groups
from ecg_dicom.records import Page

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def page_from_waveform_dataset(ds: Dataset) -> Page:
    """A waveform data set -> the rendered 12-lead page the model reads.

    Raises :class:`~ecg_dicom.errors.NotInterpretableError` (with the page to show)
    for a signal the model cannot interpret (see render.interpretable_page)."""
    return interpretable_page(load_waveform(ds))


def page_from_hemodynamic_dataset(ds: Dataset) -> Page:
    """A Hemodynamic Waveform (PS3.3 A.36) -> the page of its ECG leads.

    Its Modality is not a criterion (cath-lab systems write ECG, HD or others):
    its channels are.  When no channel of any multiplex group is an ECG lead in
    volts (only pressures, respiration...), :class:`NotAnEcgError` says so: the
    object is not an ECG, nothing is wrong with it.
    """
    groups = read_groups(ds)
    if not any(any(group.ecg) for group in groups):
        channels = ", ".join(dict.fromkeys(lead for g in groups for lead in g.leads)) or "none"
        modality = str(ds.get("Modality", "") or "").strip() or "absent"
        raise NotAnEcgError(
            f"Hemodynamic Waveform (Modality {modality}) has no ECG lead among its channels "
            f"({channels}): not an ECG"
        )
    return page_from_waveform_dataset(ds)


def _dispatch(ds: Dataset) -> Callable[[Dataset], Page]:
    sop_class = ds.get("SOPClassUID")
    if not sop_class:
        raise InputError("SOP Class UID (0008,0016) is missing: not a composite instance")
    if sop_class == HEMODYNAMIC_WAVEFORM:
        return page_from_hemodynamic_dataset
    if sop_class in WAVEFORM_SOP_CLASSES:
        return page_from_waveform_dataset
    if sop_class in IMAGE_SOP_CLASSES:
        return page_from_image_dataset
    if sop_class in DOCUMENT_SOP_CLASSES:
        return page_from_pdf_dataset
    name = getattr(sop_class, "name", "")
    raise UnsupportedInputError(
        f"SOP Class UID (0008,0016) {sop_class}{f' ({name})' if name and name != sop_class else ''}"
        " is not an ECG waveform, image or PDF class ecg-dicom reads"
    )


def page_from_dataset(ds: Dataset) -> Page:
    """The page for one received instance, chosen by its SOP Class UID.

    Raises :class:`UnsupportedInputError` for classes we do not read,
    :class:`NotAnEcgError` for a Hemodynamic object without ECG leads and
    :class:`InputError` for anything malformed; every other exception is
    wrapped into InputError.
    """
    try:
        return _dispatch(ds)(ds)
    except EcgDicomError:
        raise
    except Exception as exc:  # a malformed attribute deep inside pydicom/numpy
        raise InputError(f"{type(exc).__name__} while reading the instance: {exc}") from exc


def _read_dicom(data_path: Path) -> Dataset:
    """Read a Part 10 file, or a bare data set without preamble (force)."""
    try:
        return pydicom.dcmread(data_path, force=True)
    except Exception as exc:  # pydicom's parser raises many types on garbage
        raise InputError(
            f"{data_path} is not a readable DICOM file (truncated or corrupt): {exc}"
        ) from exc


def page_from_file(path: Path) -> Page:
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
        return page_from_image_bytes(path.read_bytes(), str(path))
    if head.lstrip(b"\x00\r\n\t ").startswith(b"%PDF"):
        try:
            return page_from_pdf_bytes(path.read_bytes())
        except EcgDicomError:
            raise
        except Exception as exc:
            raise InputError(f"{path}: {exc}") from exc
    ds = _read_dicom(path)
    try:
        if "SOPClassUID" not in ds:
            raise InputError("neither DICOM (no SOP Class UID (0008,0016)), PNG, JPEG nor PDF")
        return page_from_dataset(ds)
    except NotInterpretableError:
        raise  # a result, not a failure: its reason, header and page stay as they are
    except EcgDicomError as exc:
        raise type(exc)(f"{path}: {exc}") from exc
    except Exception as exc:  # deferred reads of a truncated file
        raise InputError(f"{path}: {type(exc).__name__}: {exc}") from exc
