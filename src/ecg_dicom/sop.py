"""The SOP classes and transfer syntaxes ecg-dicom accepts (PS3.4 Annex B, PS3.6 Annex A)."""

from __future__ import annotations

from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
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

TWELVE_LEAD_ECG = UID("1.2.840.10008.5.1.4.1.1.9.1.1")
GENERAL_ECG = UID("1.2.840.10008.5.1.4.1.1.9.1.2")
AMBULATORY_ECG = UID("1.2.840.10008.5.1.4.1.1.9.1.3")
HEMODYNAMIC_WAVEFORM = UID("1.2.840.10008.5.1.4.1.1.9.2.1")

SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
MULTIFRAME_SINGLE_BIT_SC = UID("1.2.840.10008.5.1.4.1.1.7.1")
MULTIFRAME_GRAYSCALE_BYTE_SC = UID("1.2.840.10008.5.1.4.1.1.7.2")
MULTIFRAME_GRAYSCALE_WORD_SC = UID("1.2.840.10008.5.1.4.1.1.7.3")
MULTIFRAME_TRUE_COLOR_SC = UID("1.2.840.10008.5.1.4.1.1.7.4")
VL_PHOTOGRAPHIC = UID("1.2.840.10008.5.1.4.1.1.77.1.4")
ENCAPSULATED_PDF = UID("1.2.840.10008.5.1.4.1.1.104.1")

WAVEFORM_SOP_CLASSES: frozenset[UID] = frozenset(
    {TWELVE_LEAD_ECG, GENERAL_ECG, AMBULATORY_ECG, HEMODYNAMIC_WAVEFORM}
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
#: Everything the C-STORE SCP accepts at negotiation.
ACCEPTED_SOP_CLASSES: tuple[UID, ...] = tuple(
    sorted(WAVEFORM_SOP_CLASSES | IMAGE_SOP_CLASSES | DOCUMENT_SOP_CLASSES)
)

#: Uncompressed syntaxes: accepted for every SOP class.
NATIVE_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
)
#: Compressed pixel syntaxes we decode (pydicom + pylibjpeg plug-ins): images only.
COMPRESSED_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)


def transfer_syntaxes_for(sop_class_uid: UID) -> tuple[UID, ...]:
    """The transfer syntaxes we accept for a SOP class at negotiation."""
    if sop_class_uid in IMAGE_SOP_CLASSES:
        return NATIVE_TRANSFER_SYNTAXES + COMPRESSED_TRANSFER_SYNTAXES
    return NATIVE_TRANSFER_SYNTAXES
