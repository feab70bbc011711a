"""images.py: pictures of a rendered real ECG, encoded every way a PACS may send them.

The source picture is a page rendered from the real GE MAC55 ECG.  It is put
in Secondary Capture / VL Photographic objects and encoded with dcmtk
(dcmcjpeg, dcmcjpls, dcmcrle, dcmconv) and pydicom's encoders, then decoded by
images.py and compared with the original pixels.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom import examples
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space, pack_bits
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from ecg_dicom.errors import InputError, UnsupportedInputError
from ecg_dicom.pages.images import (
    PDF_WIDTH_PX,
    page_from_image_bytes,
    page_from_image_dataset,
    page_from_pdf_bytes,
    page_from_pdf_dataset,
)
from ecg_dicom.pages.render import render_page
from ecg_dicom.pages.waveform import load_waveform
from ecg_dicom.sop import (
    COMPRESSED_TRANSFER_SYNTAXES,
    MULTIFRAME_GRAYSCALE_WORD_SC,
    MULTIFRAME_SINGLE_BIT_SC,
    MULTIFRAME_TRUE_COLOR_SC,
    VL_PHOTOGRAPHIC,
)
from peers import require_tool
from variants import (
    dcmtk,
    encapsulated_pdf,
    grey_capture,
    pdf_of,
    read_real,
    roundtrip,
    secondary_capture,
)


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    """The top-left part of a page rendered from a real ECG (pulse, grid, leads I/aVR/II)."""
    page = render_page(load_waveform(read_real("ge-mac55"))).image
    return np.ascontiguousarray(page[150:720, :800])


def decode(ds: Dataset) -> np.ndarray:
    page = page_from_image_dataset(roundtrip(ds))
    assert page.source_kind == "image" and page.px_per_mm is None
    assert page.image.dtype == np.uint8 and page.image.ndim == 3 and page.image.shape[2] == 3
    return page.image


def error(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return int(diff.max()), float(diff.mean())


def test_native_rgb_is_exact(picture: np.ndarray) -> None:
    assert np.array_equal(decode(secondary_capture(picture)), picture)


# --- every compressed transfer syntax in sop.py -------------------------------

DCMTK_CASES = [  # tool, options, transfer syntax produced, (max, mean) error allowed
    ("dcmcjpeg", ["+eb"], "1.2.840.10008.1.2.4.50", (80, 2.5)),
    ("dcmcjpeg", ["+ee"], "1.2.840.10008.1.2.4.51", (80, 2.5)),
    ("dcmcjpeg", ["+el"], "1.2.840.10008.1.2.4.57", (0, 0.0)),
    ("dcmcjpeg", ["+e1"], "1.2.840.10008.1.2.4.70", (0, 0.0)),
    ("dcmcjpls", ["+el"], "1.2.840.10008.1.2.4.80", (0, 0.0)),
    ("dcmcjpls", ["+en"], "1.2.840.10008.1.2.4.81", (2, 1.0)),
    ("dcmcrle", [], "1.2.840.10008.1.2.5", (0, 0.0)),
]


@pytest.mark.parametrize(("tool", "options", "syntax", "allowed"), DCMTK_CASES,
                         ids=[f"{c[0]}{''.join(c[1])}" for c in DCMTK_CASES])
def test_dcmtk_encoded_secondary_capture(tool: str, options: list[str], syntax: str,
                                         allowed: tuple[int, float], picture: np.ndarray,
                                         tmp_path: Path) -> None:
    encoded = dcmtk(tool, options, secondary_capture(picture), tmp_path)
    assert encoded.file_meta.TransferSyntaxUID == syntax
    if syntax in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"):
        assert encoded.PhotometricInterpretation == "YBR_FULL_422"  # the YBR path
    worst, mean = error(decode(encoded), picture)
    assert worst <= allowed[0] and mean <= allowed[1]


PYDICOM_CASES = [
    (JPEG2000Lossless, {}, (0, 0.0)),
    (JPEG2000, {"j2k_cr": [20]}, (120, 8.0)),
    (JPEGLSLossless, {}, (0, 0.0)),
    (JPEGLSNearLossless, {"jls_error": 3}, (3, 1.5)),
    (RLELossless, {}, (0, 0.0)),
]


@pytest.mark.parametrize(("syntax", "options", "allowed"), PYDICOM_CASES,
                         ids=[c[0].name for c in PYDICOM_CASES])
def test_pydicom_encoded_secondary_capture(syntax: UID, options: dict, allowed: tuple[int, float],  # type: ignore[type-arg]
                                           picture: np.ndarray) -> None:
    ds = secondary_capture(picture)
    ds.compress(syntax, **options)
    worst, mean = error(decode(ds), picture)
    assert worst <= allowed[0] and mean <= allowed[1]


OPENJPH_CASES = [  # ojph_compress options, syntax, photometric, (max, mean) error allowed
    (["-reversible", "true", "-prog_order", "LRCP"], HTJ2KLossless, "YBR_RCT", (0, 0.0)),
    (["-reversible", "true", "-prog_order", "RPCL"], HTJ2KLosslessRPCL, "YBR_RCT", (0, 0.0)),
    (["-reversible", "false"], HTJ2K, "YBR_ICT", (24, 1.0)),
]


@pytest.mark.parametrize(("options", "syntax", "photometric", "allowed"), OPENJPH_CASES,
                         ids=[c[1].name for c in OPENJPH_CASES])
def test_openjph_encoded_secondary_capture(options: list[str], syntax: UID, photometric: str,
                                           allowed: tuple[int, float], picture: np.ndarray,
                                           tmp_path: Path) -> None:
    """HTJ2K (PS3.5 A.4.11), encoded by OpenJPH's ojph_compress (Debian openjph-tools),
    decoded by pylibjpeg-openjpeg.  OpenJPH 0.9 writes no TLM marker, which the RPCL
    syntax asks of an encoder; a decoder does not need it."""
    cv2.imwrite(str(tmp_path / "page.ppm"), picture[:, :, ::-1])
    done = subprocess.run([require_tool("ojph_compress"), "-i", str(tmp_path / "page.ppm"),
                           "-o", str(tmp_path / "page.j2c"), *options],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    ds = secondary_capture(picture, PhotometricInterpretation=photometric)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([(tmp_path / "page.j2c").read_bytes()])
    ds["PixelData"].VR = "OB"
    worst, mean = error(decode(ds), picture)
    assert worst <= allowed[0] and mean <= allowed[1]


def test_every_listed_compressed_syntax_is_covered() -> None:
    covered = ({c[2] for c in DCMTK_CASES} | {str(c[0]) for c in PYDICOM_CASES}
               | {str(c[1]) for c in OPENJPH_CASES})
    assert {str(uid) for uid in COMPRESSED_TRANSFER_SYNTAXES} <= covered


@pytest.mark.parametrize("option", ["+tb", "+td", "+ti"])
def test_native_byte_orders_by_dcmconv(option: str, picture: np.ndarray, tmp_path: Path) -> None:
    grey = picture.mean(axis=2)
    words = np.round(grey * 16).astype(np.uint16)  # 12 bits stored in 16
    ds = grey_capture(words, bits=16, BitsStored=12, HighBit=11)
    converted = dcmtk("dcmconv", [option], ds, tmp_path)
    image = page_from_image_dataset(converted).image
    expected = np.round((words - words.min()) * (255.0 / (words.max() - words.min())))
    assert error(image[..., 0], expected)[0] <= 1


# --- photometric interpretations, bit depths, windowing ------------------------


def test_monochrome2_and_monochrome1(picture: np.ndarray) -> None:
    grey = np.round(picture.mean(axis=2)).astype(np.uint8)
    assert np.array_equal(decode(grey_capture(grey))[..., 1], grey)
    inverted = grey_capture(255 - grey, PhotometricInterpretation="MONOCHROME1")
    assert np.array_equal(decode(inverted)[..., 2], grey)  # ink stays dark


def test_sixteen_bit_window_and_rescale(picture: np.ndarray) -> None:
    grey = np.round(picture.mean(axis=2))
    stored = (grey * 8 + 1000).astype(np.uint16)  # 1000..3040
    ds = grey_capture(stored, bits=16, RescaleSlope="0.5", RescaleIntercept="-500",
                      WindowCenter="510", WindowWidth="1021")
    # rescaled: 0..1020 for grey 0..255; the window maps it back onto 0..255
    assert error(decode(ds)[..., 0], grey)[0] <= 1
    sigmoid = grey_capture(stored, bits=16, RescaleSlope="0.5", RescaleIntercept="-500",
                           WindowCenter="510", WindowWidth="1021", VOILUTFunction="SIGMOID")
    out = decode(sigmoid)[..., 0].astype(np.float64)
    expected = 255.0 / (1.0 + np.exp(-4.0 * (grey * 4 - 510) / 1021))  # PS3.3 C.11.2.1.3.1
    assert np.max(np.abs(out - expected)) <= 1.0
    assert np.corrcoef(out.ravel(), grey.ravel())[0, 1] > 0.95


def test_ybr_full_native(picture: np.ndarray) -> None:
    ybr = convert_color_space(picture, "RGB", "YBR_FULL")
    ds = secondary_capture(ybr, PhotometricInterpretation="YBR_FULL")
    assert error(decode(ds), picture)[0] <= 2


def test_multiframe_true_colour_gives_the_first_frame(picture: np.ndarray) -> None:
    frames = np.stack([picture, 255 - picture])
    ds = secondary_capture(picture, SOPClassUID=MULTIFRAME_TRUE_COLOR_SC, NumberOfFrames=2)
    ds.PixelData = frames.tobytes()
    assert np.array_equal(decode(ds), picture)


def test_multiframe_single_bit(picture: np.ndarray) -> None:
    ink = picture.mean(axis=2) < 128
    ds = grey_capture(np.zeros((1, 1), np.uint8), SOPClassUID=MULTIFRAME_SINGLE_BIT_SC,
                      NumberOfFrames=2, Rows=ink.shape[0], Columns=ink.shape[1])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 1, 0
    ds.PixelData = pack_bits(np.stack([ink, ~ink]).astype(np.uint8))
    assert np.array_equal(decode(ds)[..., 0], np.where(ink, 255, 0))


def test_multiframe_grey_word_with_dcmtk_rle(picture: np.ndarray, tmp_path: Path) -> None:
    grey = np.round(picture.mean(axis=2) * 4).astype(np.uint16)
    ds = grey_capture(grey, bits=16, SOPClassUID=MULTIFRAME_GRAYSCALE_WORD_SC, NumberOfFrames=2,
                      WindowCenter="511.5", WindowWidth="1024", BitsStored=10, HighBit=9)
    ds.PixelData = np.stack([grey, 1023 - grey]).astype("<u2").tobytes()
    encoded = dcmtk("dcmcrle", [], ds, tmp_path)
    assert encoded.file_meta.TransferSyntaxUID == RLELossless
    assert error(page_from_image_dataset(encoded).image[..., 0], picture.mean(axis=2))[0] <= 2


def test_vl_photographic_jpeg(picture: np.ndarray, tmp_path: Path) -> None:
    ds = secondary_capture(picture, SOPClassUID=VL_PHOTOGRAPHIC, Modality="XC")
    ds.file_meta.MediaStorageSOPClassUID = VL_PHOTOGRAPHIC
    encoded = dcmtk("dcmcjpeg", ["+eb"], ds, tmp_path)
    assert error(page_from_image_dataset(encoded).image, picture)[1] <= 2.5


# --- malformed pictures ------------------------------------------------------


def test_truncated_native_pixel_data(picture: np.ndarray) -> None:
    ds = secondary_capture(picture)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    with pytest.raises(InputError, match=r"Pixel Data \(7FE0,0010\) could not be decoded"):
        page_from_image_dataset(ds)


def test_corrupt_jpeg_stream(picture: np.ndarray, tmp_path: Path) -> None:
    encoded = dcmtk("dcmcjpeg", ["+eb"], secondary_capture(picture), tmp_path)
    encoded.PixelData = encapsulate([b"\xff\xd8\xff\xdb" + bytes(range(256)) * 8])
    with pytest.raises(InputError, match=r"Pixel Data \(7FE0,0010\) could not be decoded"):
        page_from_image_dataset(encoded)


@pytest.mark.parametrize(("change", "kind", "words"), [
    ({"PixelData": None}, InputError, r"Pixel Data \(7FE0,0010\) is missing"),
    ({"BitsAllocated": 32}, UnsupportedInputError, r"Bits Allocated \(0028,0100\) is 32"),
    ({"PhotometricInterpretation": "HSV"}, UnsupportedInputError, "Photometric Interpretation"),
    ({"Rows": 0}, InputError, "Rows is missing or zero"),
])
def test_unusable_image_attributes(
    change: dict, kind: type, words: str, picture: np.ndarray  # type: ignore[type-arg]
) -> None:
    ds = secondary_capture(picture)
    for key, value in change.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    with pytest.raises(kind, match=words):
        page_from_image_dataset(ds)


def test_unlisted_transfer_syntax_is_unsupported(picture: np.ndarray) -> None:
    ds = secondary_capture(picture)
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2 video: not read
    with pytest.raises(UnsupportedInputError, match=r"Transfer Syntax UID \(0002,0010\)"):
        page_from_image_dataset(ds)


# --- PDF and plain image files ------------------------------------------------


def test_encapsulated_pdf_renders_its_page(picture: np.ndarray) -> None:
    page = page_from_pdf_dataset(encapsulated_pdf(pdf_of(picture)))
    assert page.source_kind == "pdf" and page.image.shape[1] == PDF_WIDTH_PX
    assert page.image.shape[0] == pytest.approx(PDF_WIDTH_PX * 570 / 800, abs=2)
    small = cv2.resize(page.image, (800, 570), interpolation=cv2.INTER_AREA)
    assert error(small, picture)[1] < 8.0
    assert np.corrcoef(small.mean(axis=2).ravel(), picture.mean(axis=2).ravel())[0, 1] > 0.95


def test_broken_pdfs(picture: np.ndarray) -> None:
    document = pdf_of(picture)
    with pytest.raises(InputError, match="could not be rendered"):
        page_from_pdf_bytes(document[: len(document) // 3])
    with pytest.raises(InputError, match="does not start with %PDF"):
        page_from_pdf_bytes(b"GIF89a" + document)
    ds = encapsulated_pdf(document)
    ds.MIMETypeOfEncapsulatedDocument = "text/xml"
    with pytest.raises(UnsupportedInputError, match="MIME Type"):
        page_from_pdf_dataset(ds)


@pytest.mark.parametrize("extension", [".png", ".jpg"])
def test_png_and_jpeg_bytes(extension: str, picture: np.ndarray) -> None:
    ok, data = cv2.imencode(extension, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    assert ok
    page = page_from_image_bytes(data.tobytes())
    worst, mean = error(page.image, picture)
    assert (worst == 0) if extension == ".png" else (mean < 3.0)
    with pytest.raises(InputError, match="could not be decoded as PNG or JPEG"):
        page_from_image_bytes(data.tobytes()[:200])


def test_palette_colour_goes_through_its_lut() -> None:
    ds = examples.palette_color  # pydicom's own PALETTE COLOR image (16-bit LUT entries)
    lut = np.stack([np.frombuffer(ds[f"{c}PaletteColorLookupTableData"].value, "<u2")
                    for c in ("Red", "Green", "Blue")], axis=1)
    expected = (lut[ds.pixel_array] >> 8).astype(np.uint8)
    assert np.array_equal(page_from_image_dataset(ds).image, expected)


def test_voi_lut_sequence(picture: np.ndarray) -> None:
    grey = np.round(picture.mean(axis=2)).astype(np.uint16) * 16  # 0..4080, 12 bits
    ds = grey_capture(grey, bits=16, BitsStored=12, HighBit=11)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 10]
    item.LUTData = [1023 - v // 4 for v in range(4096)]  # an inverting LUT to 10 bits
    item["LUTData"].VR = "US"
    ds.VOILUTSequence = [item]
    expected = np.round((1023 - grey // 4) * (255.0 / 1023))  # LUT output range 0..2^10-1
    assert error(decode(ds)[..., 0], expected)[0] <= 1
