"""Build the annotated Secondary Capture: the picture of the AI result a person looks at.

The SC Image IOD (PS3.3 A.8.1) is built with highdicom's :class:`~highdicom.sc.SCImage`
from the source ECG, then completed with what highdicom leaves to the caller:

* Patient and General Study attributes are copied from the source (PS3.3 C.7.1.1,
  C.7.2.1), so the result lands in the ECG's study; the series is new (C.7.3.1).
* Image Type ``DERIVED\\SECONDARY`` (C.7.6.1.1.2) and Conversion Type ``WSD``
  ("Workstation", C.8.6.1): the image is made by software, not digitised.
* Burned In Annotation ``YES`` (General Image module, PS3.3 C.7.6.1): the result
  is drawn into the pixels, and a de-identifying or display system must know.
* Series Description and Image Comments say it is an AI result, not for
  diagnostic use (as the IHE AI Results profile and MONAI Deploy do).
* Contributing Equipment (SOP Common module, PS3.3 C.12.1) names the algorithm with
  Purpose of Reference (Newcode1, 99IHE, "Processing Algorithm") as the IHE AIR
  profile and MONAI Deploy do; highdicom refuses codes outside its DCM list, so
  this item is written with pydicom.  The items highdicom adds are kept before
  it (highdicom itself as Processing Equipment; the sender's acquisition
  equipment when highdicom can describe it, i.e. for image sources).
* Patient Orientation (C.7.6.1, type 2C) is present and empty: a page of an
  ECG has no anatomical orientation (highdicom requires one for the PATIENT
  coordinate system, so a placeholder is given and then emptied).  Laterality
  (C.7.3.1, type 2C) is absent: Body Part Examined is HEART (PS3.16 Annex L),
  not a paired structure, so the condition is unsatisfied; dciodvfy reports a
  missing Laterality when the body part is not given, and warns when it is
  present but empty for an unpaired part.
* Source Instance Sequence (General Reference module, C.12.4) points back at
  the ECG the page was made from.
* Identity and order context (Issuer of Patient ID, Other Patient IDs, Accession
  Number issuer, Request Attributes, Timezone Offset, Specific Character Set...)
  is completed by :func:`ecg_dicom.results.context.copy_context`.
* Pixel Spacing (0028,0030), for rendered waveforms only (:func:`pixel_spacing`):
  the SC Image module (C.8.6.2) includes the Basic Pixel Spacing Calibration
  Macro (PS3.3 Table 10-10), so a viewer's calipers measure millimetres of ECG
  paper, which the page's fixed scale turns into time and voltage: 25 mm/s, so
  1 mm = 40 ms; 10 mm/mV, so 1 mm = 0.1 mV = 100 uV (render.py).  Nominal
  Scanned Pixel Spacing (0018,2010), "physical distance on the media being
  digitized", says the same of the page; Pixel Spacing Calibration Type
  FIDUCIAL with its description names the grid as the object of known size.
  A picture of unknown scale (a received image, a PDF) gets none of these: no
  spacing is better than a wrong one.
* Transfer syntax: JPEG-LS Lossless (PS3.5 A.4.3, ISO 14495-1), built so by
  highdicom.  Measured on the four real ECGs rendered and annotated (1600 x 1347
  RGB, 6.5 MB native): 0.64-0.69 MB.  Deflated Explicit VR Little Endian is
  smaller still on rendered pages (~0.15-0.19 MB; the dotted grid defeats JPEG-LS's
  predictor), but dicom3tools' dciodvfy, this project's proof of validity, cannot
  read it, and fewer archives accept it; the SCU offers it as the next choice and
  uncompressed last (:func:`sc_for_transfer_syntax` makes those copies).  A
  decoded JPEG photograph of an ECG stays large losslessly: ~2.9 MB (Deflate
  ~2.0 MB), never re-compressed lossily.
* Lossy compression of an image source is carried (General Image module, PS3.3
  C.7.6.1.1.5): once an image has been lossy compressed, every image derived
  from it says so, with the ratio and method of that compression
  (:func:`lossy_history`).  A page rendered from a waveform says "00".

Pixel coordinates: the image is :func:`ecg_dicom.results.annotate.draw_result` of the
page; the page sits at :func:`ecg_dicom.results.annotate.layout_for` ``(page).offset``.
"""

from __future__ import annotations

import copy
import warnings

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import generate_fragmented_frames
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
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

from ecg_dicom.config import Settings
from ecg_dicom.records import Classification, Page
from ecg_dicom.results.annotate import draw_result, identity_line, short_version
from ecg_dicom.results.context import character_set_for, copy_context
from ecg_dicom.results.equipment import set_source_equipment
from ecg_dicom.results.uids import ResultUIDs, content_key, result_uids

#: Series Description of every annotated SC (LO: at most 64 characters).
SC_SERIES_DESCRIPTION = "AI result - annotated ECG - not for diagnostic use"
#: (Newcode1, 99IHE, "Processing Algorithm"): IHE AIR's purpose of reference
#: for the algorithm in Contributing Equipment.
PROCESSING_ALGORITHM = ("Newcode1", "99IHE", "Processing Algorithm")
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
#: Pixel Spacing Calibration Description (0028,0A04) of a rendered page (LO, <= 64).
SPACING_DESCRIPTION = "ECG grid: 25 mm/s (1 mm = 40 ms), 10 mm/mV (1 mm = 0.1 mV)"


def algorithm_equipment(result: Classification, settings: Settings) -> Dataset:
    """The Contributing Equipment item naming the algorithm (PS3.3 C.7.5.1)."""
    item = Dataset()
    item.Manufacturer = settings.output.manufacturer
    item.ManufacturerModelName = result.model_name[:64]
    item.SoftwareVersions = [short_version(result.model_version)]
    if settings.output.institution_name:
        item.InstitutionName = settings.output.institution_name[:64]
    item.ContributionDescription = (
        f"AI result of {result.model_name}, weights {result.model_version}"
    )[:1024]
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = PROCESSING_ALGORITHM
    item.PurposeOfReferenceCodeSequence = DicomSequence([purpose])
    return item


def add_contributing_equipment(ds: Dataset, item: Dataset) -> None:
    """Append ``item`` to the Contributing Equipment Sequence (0018,A001) of ``ds``
    (SOP Common module, PS3.3 C.12.1), keeping the items already there."""
    items = list(ds.get("ContributingEquipmentSequence", []))
    ds["ContributingEquipmentSequence"] = DataElement(
        0x0018A001, "SQ", DicomSequence([*items, item])
    )


def _source_reference(source: Dataset) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return ref


def _sc_image(
    source: Dataset, pixels: np.ndarray, series_uid: str, sop_uid: str, settings: Settings,
    series_number: int,
) -> hd.sc.SCImage:
    return hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=pixels,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=settings.output.manufacturer,
        patient_orientation=("L", "F"),  # placeholder, emptied by build_sc (no orientation)
        transfer_syntax_uid=SC_TRANSFER_SYNTAX,
        specific_character_set=character_set_for(source),
    )


def build_sc(
    source: Dataset,
    page: Page,
    result: Classification,
    settings: Settings,
    *,
    uids: ResultUIDs | None = None,
    series_number: int | None = None,
) -> Dataset:
    """The annotated Secondary Capture for one page of one source instance.

    Pure: the same inputs give the same object, UIDs included (see identity.py);
    only Content Date/Time, set by highdicom, differ between calls.
    """
    if uids is None:  # built alone (tests): the UIDs build.build_outputs would give
        key = content_key(source, page, result, settings)
        uids = result_uids(source.SOPInstanceUID, key, settings.output.uid_root)
    if series_number is None:
        series_number = settings.output.series_number_sc
    pixels = np.ascontiguousarray(draw_result(page, result, identity_line(source)))
    with warnings.catch_warnings():
        # Single-component patient names are legal, if old-fashioned (PS3.5 6.2.1.2);
        # they come from the sender and are copied unchanged.
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person")
        sc = _sc_image(
            source, pixels, uids.sc_series, uids.sc_sop, settings, series_number
        )

    sc.PatientOrientation = []
    sc.BodyPartExamined = "HEART"
    if "Laterality" in sc:
        del sc.Laterality
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.ConversionType = "WSD"
    sc.BurnedInAnnotation = "YES"
    sc.SeriesDescription = SC_SERIES_DESCRIPTION
    sc.ImageComments = (
        f"AI result - not for diagnostic use. {result.model_name} "
        f"version {result.model_version}"
    )[:10240]
    sc.DerivationDescription = (
        "ECG page annotated with the boxes, classes and confidences found by "
        f"{result.model_name}"
    )[:1024]
    sc.SourceInstanceSequence = DicomSequence([_source_reference(source)])
    add_contributing_equipment(sc, algorithm_equipment(result, settings))
    set_source_equipment(sc, source)  # the cart as Acquisition Equipment (equipment.py)
    if settings.output.institution_name:
        sc.InstitutionName = settings.output.institution_name[:64]
    spacing = pixel_spacing(page)
    if spacing is not None:
        sc.PixelSpacing = [spacing, spacing]
        sc.NominalScannedPixelSpacing = [spacing, spacing]
        sc.PixelSpacingCalibrationType = "FIDUCIAL"
        sc.PixelSpacingCalibrationDescription = SPACING_DESCRIPTION
    _set_lossy_compression(sc, source, page)
    copy_context(source, sc)
    if sc.file_meta.TransferSyntaxUID.is_encapsulated:
        # Encapsulated Pixel Data has undefined length (PS3.5 A.4); highdicom leaves the
        # element's flag unset, and dcmtk refuses an explicit length on the wire.
        sc["PixelData"].is_undefined_length = True
    return sc


def pixel_spacing(page: Page) -> str | None:
    """Pixel Spacing of the annotated SC in mm (DS text), or None for an unknown scale.

    A rendered page is drawn at ``page.px_per_mm`` pixels per millimetre of ECG
    paper (render.PX_PER_MM); the annotated image adds bands above and below the
    page without scaling it, so the spacing holds for the whole image.  At 25 mm/s
    and 10 mm/mV one millimetre across is 40 ms and one millimetre up is 0.1 mV.
    """
    if not page.px_per_mm or page.source_kind != "waveform":
        return None
    return f"{1.0 / float(page.px_per_mm):.10g}"[:16]


def _set_lossy_compression(sc: Dataset, source: Dataset, page: Page) -> None:
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
    syntax = _syntax_of(source)
    if syntax not in LOSSY_METHODS:
        return None
    ratio = _encoded_ratio(source)
    return ([ratio] if ratio else []), [LOSSY_METHODS[syntax]]


def _values(value: object) -> list[object]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]


def _syntax_of(ds: Dataset) -> UID:
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
    own = _syntax_of(ds)
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
