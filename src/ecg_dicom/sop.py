"""The SOP classes and transfer syntaxes ecg-dicom negotiates (PS3.4 Annex B, PS3.6 Annex A).

Two sets, kept apart on purpose:

* the **ECG inputs** (:data:`ECG_INPUT_SOP_CLASSES`): the waveform, image and
  PDF classes an ECG arrives in.  These are spooled and processed.
* every other **storage** SOP class (:data:`STORAGE_SOP_CLASSES`, pynetdicom's
  list of all storage classes): accepted at association negotiation so that a
  PACS sending a whole study (the ECG beside earlier SR, SC, KO, PR...) gets its
  association and its ECG through (PS3.4 B.2.2: an SCP may accept a class and
  still not keep its instances), then acknowledged and skipped one by one by
  the C-STORE handler (``dicom.non_ecg_objects``), never processed.

docs/conformance.md lists both; tests/dicom/test_conformance.py keeps its tables
equal to these sets (and its SCU table equal to what dicom/negotiation.py proposes).
"""

from __future__ import annotations

from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts

TWELVE_LEAD_ECG = UID("1.2.840.10008.5.1.4.1.1.9.1.1")
GENERAL_ECG = UID("1.2.840.10008.5.1.4.1.1.9.1.2")
AMBULATORY_ECG = UID("1.2.840.10008.5.1.4.1.1.9.1.3")
#: General 32-bit ECG Waveform Storage (PS3.3 A.34.8): SL samples, what newer carts send.
GENERAL_32BIT_ECG = UID("1.2.840.10008.5.1.4.1.1.9.1.4")
#: Hemodynamic Waveform Storage (PS3.3 A.36): accepted whatever its Modality; the
#: worker reads it and skips it when no channel is an ECG lead (pages.py).
HEMODYNAMIC_WAVEFORM = UID("1.2.840.10008.5.1.4.1.1.9.2.1")

SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
MULTIFRAME_SINGLE_BIT_SC = UID("1.2.840.10008.5.1.4.1.1.7.1")
MULTIFRAME_GRAYSCALE_BYTE_SC = UID("1.2.840.10008.5.1.4.1.1.7.2")
MULTIFRAME_GRAYSCALE_WORD_SC = UID("1.2.840.10008.5.1.4.1.1.7.3")
MULTIFRAME_TRUE_COLOR_SC = UID("1.2.840.10008.5.1.4.1.1.7.4")
VL_PHOTOGRAPHIC = UID("1.2.840.10008.5.1.4.1.1.77.1.4")
ENCAPSULATED_PDF = UID("1.2.840.10008.5.1.4.1.1.104.1")

#: Contributing Equipment's Purpose of Reference for an algorithm (IHE AIR):
#: (CodeValue, CodingSchemeDesignator, CodeMeaning).
PROCESSING_ALGORITHM = ("Newcode1", "99IHE", "Processing Algorithm")
#: Modality (0008,0060) of a Structured Report (PS3.3 C.17.1): what tells a result SR
#: from the SC (or any image), e.g. to send the SC first.
SR_MODALITY = "SR"

WAVEFORM_SOP_CLASSES: frozenset[UID] = frozenset(
    {TWELVE_LEAD_ECG, GENERAL_ECG, AMBULATORY_ECG, GENERAL_32BIT_ECG, HEMODYNAMIC_WAVEFORM}
)
IMAGE_SOP_CLASSES: frozenset[UID] = frozenset(
    {
        SECONDARY_CAPTURE,
        MULTIFRAME_SINGLE_BIT_SC,
        MULTIFRAME_GRAYSCALE_BYTE_SC,
        MULTIFRAME_GRAYSCALE_WORD_SC,
        MULTIFRAME_TRUE_COLOR_SC,
        VL_PHOTOGRAPHIC,
    }
)
DOCUMENT_SOP_CLASSES: frozenset[UID] = frozenset({ENCAPSULATED_PDF})
#: The ECG inputs: spooled and processed.
ECG_INPUT_SOP_CLASSES: tuple[UID, ...] = tuple(
    sorted(WAVEFORM_SOP_CLASSES | IMAGE_SOP_CLASSES | DOCUMENT_SOP_CLASSES)
)
#: Former name of :data:`ECG_INPUT_SOP_CLASSES`.
ACCEPTED_SOP_CLASSES = ECG_INPUT_SOP_CLASSES
#: Every storage SOP class accepted at negotiation: the ECG inputs and all the
#: others pynetdicom knows (acknowledged, then skipped or refused, never processed).
STORAGE_SOP_CLASSES: tuple[UID, ...] = tuple(
    sorted(
        {UID(str(cx.abstract_syntax)) for cx in AllStoragePresentationContexts}
        | set(ECG_INPUT_SOP_CLASSES)
    )
)
#: The storage classes that are not ECG inputs.
NON_ECG_SOP_CLASSES: frozenset[UID] = frozenset(STORAGE_SOP_CLASSES) - set(ECG_INPUT_SOP_CLASSES)

#: Uncompressed syntaxes: accepted for every SOP class.
NATIVE_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
)
#: Compressed pixel syntaxes we decode (pydicom + pylibjpeg plug-ins): images only.
#: HTJ2K (PS3.5 A.4.11) is decoded by pylibjpeg-openjpeg (OpenJPEG >= 2.5).
COMPRESSED_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    HTJ2K,
    RLELossless,
)
#: What a class that is not an ECG input may arrive in: anything pynetdicom
#: knows, since its content is never decoded (only its header is read).  The
#: acceptor's order decides among the syntaxes a sender proposes (pynetdicom
#: takes the first of ours the sender offered), so the compressed ones come
#: first: a sender offering its stored syntax beside uncompressed ones is never
#: made to decompress an object we are going to discard.
ANY_TRANSFER_SYNTAX: tuple[UID, ...] = tuple(
    [UID(ts) for ts in ALL_TRANSFER_SYNTAXES if ts not in NATIVE_TRANSFER_SYNTAXES]
    + [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
       ExplicitVRBigEndian]
)


def transfer_syntaxes_for(sop_class_uid: str) -> tuple[UID, ...]:
    """The transfer syntaxes we accept for a SOP class at negotiation."""
    if sop_class_uid in IMAGE_SOP_CLASSES:
        return NATIVE_TRANSFER_SYNTAXES + COMPRESSED_TRANSFER_SYNTAXES
    if sop_class_uid in WAVEFORM_SOP_CLASSES or sop_class_uid in DOCUMENT_SOP_CLASSES:
        return NATIVE_TRANSFER_SYNTAXES
    return ANY_TRANSFER_SYNTAX


#: Storage classes pynetdicom negotiates but pydicom 3.0's UID dictionary does not name.
_MORE_NAMES = {
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.66.8": "Height Map Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.9.100.1": "Waveform Presentation State Storage",
    "1.2.840.10008.5.1.4.1.1.9.100.2": "Waveform Acquisition Presentation State Storage",
}


def sop_class_name(sop_class_uid: str) -> str:
    """The SOP class's name from PS3.6 (e.g. "Comprehensive 3D SR Storage"), else its UID."""
    uid = UID(str(sop_class_uid).strip().rstrip("\x00"))
    name = _MORE_NAMES.get(str(uid)) or uid.name
    return name if name and name != str(uid) else str(uid)
