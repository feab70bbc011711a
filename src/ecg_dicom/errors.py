"""One exception hierarchy for ecg-dicom, and one table from exception to DIMSE status.

C-STORE statuses follow PS3.4 Annex B.2.3 (Storage Service Class, status codes)
and PS3.7 Annex C.  Handlers never raise: they map what went wrong through
:func:`store_status_for` and answer with that status.
"""

from __future__ import annotations

from enum import IntEnum


class StoreStatus(IntEnum):
    """The C-STORE statuses ecg-dicom answers (PS3.4 B.2.3, PS3.7 C)."""

    SUCCESS = 0x0000
    #: Refused: out of resources (we could not store the bytes durably).
    OUT_OF_RESOURCES = 0xA700
    #: Error: data set does not match SOP class.
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    #: Error: cannot understand (the data set could not be parsed).
    CANNOT_UNDERSTAND = 0xC000
    #: Error (``dicom.non_ecg_objects: refuse``): an image of an ECG input class that
    #: is an AI result, ours or another's; in the "cannot understand" range, since
    #: the SOP class itself is supported.
    NOT_AN_ECG = 0xC001
    #: Error: the object is over one of this node's ``limits.*`` (pixels, frames,
    #: samples, text length, inflated size), seen from its header; in the
    #: "cannot understand" range (PS3.4 B.2.3: a permanent failure the sender must
    #: not retry, unlike 0xA7xx), the limit named in Error Comment.
    OVER_LIMIT = 0xC002
    #: Refused: SOP class not supported (PS3.7 C.5.20).
    SOP_CLASS_NOT_SUPPORTED = 0x0122


class EcgDicomError(Exception):
    """Base of every error ecg-dicom raises on purpose."""


class ConfigError(EcgDicomError):
    """The configuration is invalid; the message names the setting and the fix."""


class StorageError(EcgDicomError):
    """A received instance could not be stored durably (disk full, permissions)."""


class DatasetMismatchError(EcgDicomError):
    """The data set does not match its SOP class (e.g. an ECG without waveform)."""


class UnreadableDatasetError(EcgDicomError):
    """The bytes are not a parseable DICOM data set."""


class InputError(EcgDicomError):
    """An input could not be turned into a page: it names what is wrong."""


class UnsupportedInputError(InputError):
    """The input is of a kind ecg-dicom does not handle (SOP class, encoding)."""


class LimitError(InputError):
    """The object is over one of ``limits.*`` (the message names the setting): refused
    at C-STORE (0xC002) when its header shows it, else its job fails at once."""


class NotInterpretableError(InputError):
    """The input was read, but its signal cannot be interpreted by the model.

    A flat recording, values that are not numbers after calibration, an absurd
    sampling rate, a recording too short to fill a 12-lead page, or leads that do
    not make a 12-lead page.  Unlike other input errors this is a *result*: the
    worker answers it with a "Not interpretable" SR and SC carrying ``reason``
    (never with a Normal or Abnormal call), drawn on ``page`` when the error
    carries one (the traces that could be drawn), else on
    ``pages.blank_page(header, reason)`` (see ``pages.not_interpretable_page``).
    """

    def __init__(
        self, reason: str, *, header: tuple[str, ...] = (), page: object | None = None
    ) -> None:
        super().__init__(reason)
        #: Why, in words for the people reading the result (no trailing period).
        self.reason = reason
        #: The header lines of the page (patient, cart, settings), when known.
        self.header = header
        #: The :class:`~ecg_dicom.records.Page` to show, when one could be drawn.
        self.page = page


class ModelError(EcgDicomError):
    """The model weights are missing, corrupt, or do not match their checksum."""


class NotAnEcgError(InputError):
    """The object was accepted (its SOP class can hold an ECG) but holds no ECG.

    A Hemodynamic Waveform whose channels include no ECG lead (only pressures,
    respiration...): nothing is wrong with it and there is nothing to classify.
    The worker ends such a job as ``skipped`` (JobState.SKIPPED) with
    ``"skipped: " + str(exc)`` as the reason, builds and sends nothing, and does
    not count it as a failure (metrics.SKIPPED kind "not_an_ecg").
    """


class DeliveryError(EcgDicomError):
    """Results could not be delivered.  ``transient`` says whether a retry can help."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


_STORE_STATUS: tuple[tuple[type[BaseException], StoreStatus], ...] = (
    (StorageError, StoreStatus.OUT_OF_RESOURCES),
    (OSError, StoreStatus.OUT_OF_RESOURCES),
    (MemoryError, StoreStatus.OUT_OF_RESOURCES),
    (DatasetMismatchError, StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS),
    (LimitError, StoreStatus.OVER_LIMIT),
    (UnreadableDatasetError, StoreStatus.CANNOT_UNDERSTAND),
)


def store_status_for(exc: BaseException) -> StoreStatus:
    """The C-STORE status to answer for an exception raised while storing."""
    for kind, status in _STORE_STATUS:
        if isinstance(exc, kind):
            return status
    return StoreStatus.CANNOT_UNDERSTAND


def is_transient_status(status: int) -> bool:
    """Whether a C-STORE failure status from a peer is worth retrying.

    0xA7xx (out of resources) is transient; 0xA9xx (data set does not match SOP
    class), 0xCxxx (cannot understand) and 0x01xx refusals are permanent.
    """
    return (status & 0xFF00) == 0xA700
