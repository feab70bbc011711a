"""Deterministic mutants of the real ECGs: hostile or broken files, the way a broken
cart, a buggy PACS or an attacker writes them.

Sources are the real data (tests/realdata.py): the three carts' waveform ECGs and
pydicom's waveform example, and pages made from the real training pictures (a
Secondary Capture with the JPEG as it is, an uncompressed RGB one, an encapsulated
PDF).  :func:`mutant` ``(seed, index)`` always gives the same bytes: a failing mutant
is reproduced from its name alone (``scripts/fuzz.py --only NAME``).

A :class:`Mutant` is a Part 10 file whose File Meta says what a sender announces in
its C-STORE (SOP class, instance, transfer syntax): the data set after it is what goes
on the wire, so a body that contradicts its meta is sent as it is.  The few mutants
that break the File Meta itself are for the CLI only (``listener=False``).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import random
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from ecg_dicom.sop import (
    AMBULATORY_ECG,
    ENCAPSULATED_PDF,
    GENERAL_ECG,
    HEMODYNAMIC_WAVEFORM,
    SECONDARY_CAPTURE,
    TWELVE_LEAD_ECG,
)
from realdata import ECG_IMAGES_DIR, real_ecg_paths

CT_IMAGE = UID("1.2.840.10008.5.1.4.1.1.2")
BOGUS_UID = UID("1.2.3.4.5.6.7.8.9")


@dataclass(frozen=True)
class Mutant:
    """One mutated object: ``name`` is ``"<mutator>/<source>/<seed>.<index>"``."""

    name: str
    mutator: str
    source: str
    data: bytes = field(repr=False)
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    #: Whether it can go through the listener (its File Meta is readable).
    listener: bool = True

    def write(self, folder: Path) -> Path:
        path = folder / (self.name.replace("/", "_") + ".dcm")
        path.write_bytes(self.data)
        return path


# --- the sources --------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    name: str
    kind: str  # "waveform" | "image" | "pdf"
    data: bytes = field(repr=False)  # Part 10, explicit VR little endian unless noted

    def dataset(self) -> Dataset:
        return pydicom.dcmread(io.BytesIO(self.data))


def encode(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    """``ds`` as a Part 10 file in ``syntax`` (native syntaxes only)."""
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True,
               implicit_vr=UID(syntax).is_implicit_VR,
               little_endian=UID(syntax).is_little_endian)
    return buf.getvalue()


def split(data: bytes) -> tuple[bytes, bytes]:
    """(preamble + File Meta, data set) of a Part 10 file."""
    group_length = int.from_bytes(data[140:144], "little")
    end = 144 + group_length
    return data[:end], data[end:]


def assemble(body: bytes, sop_class: str, sop_instance: str, syntax: str) -> bytes:
    """A Part 10 file: a correct File Meta announcing these, then ``body`` as it is."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.8.498.1")
    buf = io.BytesIO()
    buf.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=True)  # type: ignore[arg-type]
    return buf.getvalue() + body


def _secondary_capture(pixels: np.ndarray) -> Dataset:
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = UID("2.25.1")
    ds.StudyInstanceUID, ds.SeriesInstanceUID = UID("2.25.2"), UID("2.25.3")
    ds.Modality, ds.ConversionType = "ECG", "WSD"
    ds.PatientName, ds.PatientID, ds.PatientSex = "Fuzz^Page", "FUZZ1", "O"
    ds.StudyDate, ds.StudyTime = "20240101", "120000"
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(pixels, np.uint8).tobytes()
    return ds


@functools.cache
def sources() -> tuple[Source, ...]:
    """The real files mutants are made from (read once per process)."""
    found: list[Source] = []
    for path in real_ecg_paths():
        ds: Dataset = pydicom.dcmread(path)
        name = path.parent.name if path.name == "ecg.dcm" else "pydicom-waveform"
        found.append(Source(name, "waveform", encode(ds)))
    pages = sorted(ECG_IMAGES_DIR.glob("*/*.jpg"))
    if not pages:
        raise FileNotFoundError(f"no training pages under {ECG_IMAGES_DIR}")
    jpeg = pages[0].read_bytes()
    picture = Image.open(io.BytesIO(jpeg)).convert("RGB")
    ds = _secondary_capture(np.asarray(picture.resize((800, 568))))
    found.append(Source("page-rgb", "image", encode(ds)))
    ds = _secondary_capture(np.asarray(picture))
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PixelData = pydicom.encaps.encapsulate([jpeg])
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.SOPClassUID = SECONDARY_CAPTURE
    found.append(Source("page-jpeg", "image", _encode_encapsulated(ds)))
    pdf = io.BytesIO()
    picture.save(pdf, "PDF", resolution=150.0)
    found.append(Source("page-pdf", "pdf", encode(_pdf_dataset(pdf.getvalue()))))
    return tuple(found)


def _encode_encapsulated(ds: Dataset) -> bytes:
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = io.BytesIO()
    ds["PixelData"].VR = "OB"
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _pdf_dataset(document: bytes) -> Dataset:
    ds = _secondary_capture(np.zeros((1, 1, 3), np.uint8))
    for keyword in ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation",
                    "PlanarConfiguration", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "PixelData", "ConversionType"):
        delattr(ds, keyword)
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.DocumentTitle = "ECG"
    ds.EncapsulatedDocument = document + (b"\0" if len(document) % 2 else b"")
    return ds


# --- a walker over explicit VR little endian bytes ----------------------------------

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
             b"UT", b"UV"}
_UNDEFINED = 0xFFFFFFFF


@dataclass(frozen=True)
class Element:
    """Where one element (or item/delimiter) header sits in a data set's bytes."""

    offset: int
    tag: tuple[int, int]
    vr: bytes  # b"" for items and delimiters
    length_at: int
    length_size: int
    length: int
    end: int  # end of its value (== value start for SQ/items stepped into)
    top: bool  # at the top level of the data set


def walk(body: bytes) -> list[Element]:
    """Every element, item and delimiter header of an explicit VR LE data set, in order.

    Sequences and items are stepped into; encapsulated fragments are skipped.  Stops
    quietly where the bytes stop making sense (a mutant need not be parseable)."""
    found: list[Element] = []
    pos, depth, fragments = 0, 0, False
    while pos + 8 <= len(body):
        group, elem = struct.unpack_from("<HH", body, pos)
        if group == 0xFFFE:
            length = struct.unpack_from("<I", body, pos + 4)[0]
            skip = fragments and elem == 0xE000 and length != _UNDEFINED
            end = pos + 8 + (length if skip else 0)
            found.append(Element(pos, (group, elem), b"", pos + 4, 4, length, end, depth == 0))
            if elem == 0xE0DD:
                fragments = False
                depth = max(0, depth - 1)
            elif elem == 0xE000 and not skip:
                depth += 1
            elif elem == 0xE00D:
                depth = max(0, depth - 1)
            pos = end
            continue
        vr = body[pos + 4:pos + 6]
        if not vr.isalpha() or not vr.isupper():
            break
        if vr in _LONG_VRS:
            if pos + 12 > len(body):
                break
            length_at, size, header = pos + 8, 4, 12
            length = struct.unpack_from("<I", body, length_at)[0]
        else:
            length_at, size, header = pos + 6, 2, 8
            length = struct.unpack_from("<H", body, length_at)[0]
        step_in = vr == b"SQ" or length == _UNDEFINED
        end = pos + header + (0 if step_in else length)
        if end > len(body):
            break
        found.append(Element(pos, (group, elem), vr, length_at, size, length, end, depth == 0))
        if step_in:
            depth += 1
            fragments = vr != b"SQ"
        pos = end
    return found


def _bulk_ranges(body: bytes, elements: list[Element]) -> list[tuple[int, int]]:
    return [(e.length_at + e.length_size, e.end) for e in elements
            if e.vr in (b"OB", b"OW") and e.length > 4096 and e.length != _UNDEFINED]


# --- mutators -----------------------------------------------------------------------
# Each takes (rng, source, uid) and returns (body or Part 10 file, overrides).


@dataclass
class Made:
    """What a mutator made: a data set's bytes and what the File Meta announces."""

    body: bytes
    sop_class: str
    syntax: str = ExplicitVRLittleEndian
    #: A whole Part 10 file (File Meta included, possibly broken): CLI only.
    whole_file: bool = False


Mutator = Callable[[random.Random, Source, str], Made]


def _base(src: Source, uid: str) -> Dataset:
    ds = src.dataset()
    ds.SOPInstanceUID = UID(uid)
    return ds


def _body(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    """The data set alone, encoded in ``syntax`` (whatever its elements say)."""
    uid = UID(syntax)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        uid = ExplicitVRLittleEndian
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = uid.is_little_endian, uid.is_implicit_VR
    ds = copy.copy(ds)
    del ds.file_meta
    write_dataset(fp, ds)
    return fp.getvalue()


def raw(where: Dataset, keyword: str, value: str | bytes, vr: str | None = None) -> None:
    """Set ``keyword`` to exactly these bytes (padded to even length), however invalid."""
    data = value.encode("latin-1") if isinstance(value, str) else value
    if len(data) % 2:
        data += b" "
    tag = pydicom.datadict.tag_for_keyword(keyword)
    assert tag is not None, keyword
    vr = vr or pydicom.datadict.dictionary_VR(tag)
    where[tag] = RawDataElement(BaseTag(tag), vr, len(data), data, 0, False, True)


@functools.cache
def _source_body(src: Source) -> tuple[bytes, Dataset]:
    """The source's data set bytes and its header (no bulk data), read once."""
    return split(src.data)[1], pydicom.dcmread(io.BytesIO(src.data), stop_before_pixels=True)


def _native(src: Source, uid: str) -> tuple[Dataset, bytes]:
    """The source as it is, its SOP Instance UID replaced in its bytes (no re-encoding)."""
    body, header = _source_body(src)
    element = next(e for e in walk(body[:4096]) if e.tag == (0x0008, 0x0018))
    value = uid.encode() + (b"\0" if len(uid) % 2 else b"")
    new = body[:element.offset] + struct.pack("<HH", 0x0008, 0x0018) + b"UI" + struct.pack(
        "<H", len(value)) + value + body[element.end:]
    return header, new


def bit_flips(rng: random.Random, src: Source, uid: str) -> Made:
    """1..16 bits flipped, in the element structure (not in the sample/pixel values)."""
    ds, body = _native(src, uid)
    data = bytearray(body)
    bulk = _bulk_ranges(body, walk(body))
    for _ in range(rng.randint(1, 16)):
        while True:
            at = rng.randrange(len(data))
            if not any(lo <= at < hi for lo, hi in bulk):
                break
        data[at] ^= 1 << rng.randrange(8)
    return Made(bytes(data), ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)


def bit_flips_anywhere(rng: random.Random, src: Source, uid: str) -> Made:
    """Bits flipped anywhere, sample and pixel values included (often still an ECG)."""
    ds, body = _native(src, uid)
    data = bytearray(body)
    for _ in range(rng.randint(1, 64)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return Made(bytes(data), ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)


def random_bytes(rng: random.Random, src: Source, uid: str) -> Made:
    """A run of 1..64 random bytes written over an element header."""
    ds, body = _native(src, uid)
    elements = walk(body)
    at = rng.choice(elements).offset if elements else 0
    run = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    data = body[:at] + run + body[at + len(run):]
    return Made(data, ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)


def truncation(rng: random.Random, src: Source, uid: str) -> Made:
    """The data set cut short: inside the header, an element, or its last bytes."""
    ds, body = _native(src, uid)
    where = rng.choice(("anywhere", "header", "tail"))
    if where == "header":
        cut = rng.randrange(1, min(len(body), 2048))
    elif where == "tail":
        cut = len(body) - rng.randint(1, 64)
    else:
        cut = rng.randrange(1, len(body))
    return Made(body[:cut], ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)


def wrong_length(rng: random.Random, src: Source, uid: str) -> Made:
    """One element's length field made wrong: 0, odd, +-1, +-2, huge, undefined."""
    ds, body = _native(src, uid)
    elements = [e for e in walk(body) if e.vr]
    e = rng.choice(elements)
    limit = 0xFFFF if e.length_size == 2 else 0xFFFFFFFF
    new = rng.choice([0, 1, e.length + 1, max(0, e.length - 1), e.length + 2,
                      max(0, e.length - 2), limit - 1, limit, len(body), len(body) * 2,
                      rng.randrange(limit)])
    new = min(new, limit)
    fmt = "<H" if e.length_size == 2 else "<I"
    data = body[:e.length_at] + struct.pack(fmt, new) + body[e.length_at + e.length_size:]
    return Made(data, ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)


_VRS = [b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
        b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST",
        b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV", b"ZZ", b"\0\0",
        b"\xff\xff"]


def vr_change(rng: random.Random, src: Source, uid: str) -> Made:
    """One element's VR replaced by another (or by a VR that does not exist)."""
    ds, body = _native(src, uid)
    e = rng.choice([e for e in walk(body) if e.vr])
    vr = rng.choice([v for v in _VRS if v != e.vr])
    data = body[:e.offset + 4] + vr + body[e.offset + 6:]
    return Made(data, ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)


def duplicate_element(rng: random.Random, src: Source, uid: str) -> Made:
    """A top-level element written twice (the copy right after it, or with another
    value), or two neighbours swapped out of tag order."""
    ds, body = _native(src, uid)
    top = [e for e in walk(body) if e.top and e.vr and e.vr != b"SQ" and e.length < 65536]
    i = rng.randrange(len(top) - 1)
    e, nxt = top[i], top[i + 1]
    piece = body[e.offset:e.end]
    if rng.random() < 0.5:
        data = body[:e.end] + piece + body[e.end:]
    else:  # swap with the next element: tags out of order
        data = body[:e.offset] + body[nxt.offset:nxt.end] + piece + body[nxt.end:]
    return Made(data, ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)


_REQUIRED = {
    "waveform": ["SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID",
                 "WaveformSequence", "PatientID", "Modality", "SpecificCharacterSet",
                 "group:WaveformData", "group:ChannelDefinitionSequence",
                 "group:SamplingFrequency", "group:NumberOfWaveformChannels",
                 "group:NumberOfWaveformSamples", "group:WaveformBitsAllocated",
                 "group:WaveformSampleInterpretation", "channel:ChannelSensitivity",
                 "channel:ChannelSourceSequence", "channel:ChannelLabel"],
    "image": ["SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID",
              "PixelData", "Rows", "Columns", "BitsAllocated", "SamplesPerPixel",
              "PhotometricInterpretation", "BitsStored", "PixelRepresentation"],
    "pdf": ["SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "EncapsulatedDocument",
            "MIMETypeOfEncapsulatedDocument"],
}


#: Elements without which an object cannot be processed (the quick mix's choice).
_NEEDED = {kind: [k for k in keys if k.split(":")[-1] not in
                  ("PatientID", "Modality", "SpecificCharacterSet", "ChannelLabel",
                   "ChannelSourceSequence", "MIMETypeOfEncapsulatedDocument")]
           for kind, keys in _REQUIRED.items()}


def missing_element(rng: random.Random, src: Source, uid: str) -> Made:
    """A required element removed (or emptied), the data set otherwise intact."""
    return _missing(rng, src, uid, _REQUIRED[src.kind])


def missing_needed(rng: random.Random, src: Source, uid: str) -> Made:
    """An element processing needs removed (or emptied)."""
    return _missing(rng, src, uid, _NEEDED[src.kind])


def _missing(rng: random.Random, src: Source, uid: str, choices: list[str]) -> Made:
    ds = _base(src, uid)
    target = rng.choice(choices)
    where: Dataset = ds
    if target.startswith("group:"):
        where, target = rng.choice(list(ds.WaveformSequence)), target[6:]
    elif target.startswith("channel:"):
        group = rng.choice(list(ds.WaveformSequence))
        where, target = rng.choice(list(group.ChannelDefinitionSequence)), target[8:]
    if target in where:
        if rng.random() < 0.7 or where[target].VR in ("SQ", "OB", "OW"):
            delattr(where, target)
        else:
            where[target].value = ""
    return Made(_body(ds), src_class(ds, src))


def src_class(ds: Dataset, src: Source) -> str:
    """The class a sender announces: the data set's own, else the source's."""
    return str(ds.get("SOPClassUID") or "") or str(src.dataset().SOPClassUID)


_TEXTS = ["PatientName", "PatientID", "InstitutionName", "StudyDescription",
          "ReferringPhysicianName", "OperatorsName", "SeriesDescription", "AccessionNumber",
          "Manufacturer", "ManufacturerModelName", "PatientComments"]


def huge_text(rng: random.Random, src: Source, uid: str) -> Made:
    """One text value 2,000 to 70,000 characters long (implicit VR: a 2-byte length
    cannot hold it), ASCII or not."""
    ds = _base(src, uid)
    keyword = rng.choice(_TEXTS + (["channel:ChannelLabel"] if src.kind == "waveform" else []))
    size = rng.choice([2_000, 10_000, 20_000, 65_535, 70_000])
    unit = rng.choice(["A", "Wé^", "^", "=", "W" * 63 + " "])
    text = (unit * (size // len(unit) + 1))[:size]
    if keyword.startswith("channel:"):
        ds.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelLabel = text
    else:
        setattr(ds, keyword, text)
    if not text.isascii():
        ds.SpecificCharacterSet = "ISO_IR 192"
    return Made(_body(ds, ImplicitVRLittleEndian), src_class(ds, src), ImplicitVRLittleEndian)


def _nested(levels: int) -> bytes:
    """An Original Attributes Sequence (0400,0561) nesting ``levels`` sequences
    (undefined lengths), as tests/test_input_errors.py builds it."""
    item = struct.pack("<HHI", 0xFFFE, 0xE000, _UNDEFINED)
    close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)

    def opening(tag: tuple[int, int]) -> bytes:
        return struct.pack("<HH", *tag) + b"SQ\0\0" + struct.pack("<I", _UNDEFINED) + item

    return (opening((0x0400, 0x0561)) + opening((0x0400, 0x0550)) * (levels - 1)
            + close * levels)


def deep_nesting(rng: random.Random, src: Source, uid: str) -> Made:
    """Sequences nested 33 to 20,000 levels deep, spliced in tag order (0400,0561)."""
    ds, body = _native(src, uid)
    levels = rng.choice([33, 64, 200, 1000, 5000, 20000])
    top = [e for e in walk(body) if e.top and e.vr]
    at = next((e.offset for e in top if e.tag > (0x0400, 0x0561)), len(body))
    return Made(body[:at] + _nested(levels) + body[at:], ds.SOPClassUID,
                ds.file_meta.TransferSyntaxUID)


_NUMBERS = ["0", "-1", "NaN", "nan", "inf", "-inf", "Infinity", "1e400", "-1e308", "1e-320",
            "3.4e38", "", " ", "1\\2", "abc", "0x10", "1" * 16]


def sample_format(rng: random.Random, src: Source, uid: str) -> Made:
    """The sample or pixel format changed: bits allocated/stored, interpretation,
    channels, samples, frequency, photometric interpretation, sizes (data unchanged)."""
    ds = _base(src, uid)
    if src.kind == "waveform":
        group = rng.choice(list(ds.WaveformSequence))
        choice = rng.randrange(6)
        if choice == 0:
            group.WaveformBitsAllocated = rng.choice([0, 1, 7, 8, 12, 24, 32, 64, 65535])
        elif choice == 1:
            group.WaveformSampleInterpretation = rng.choice(
                ["SB", "UB", "MB", "AB", "US", "SL", "UL", "SV", "UV", "FL", "FD", "XX", ""])
        elif choice == 2:
            group.NumberOfWaveformChannels = rng.choice([0, 1, 11, 13, 255, 65535])
        elif choice == 3:
            group.NumberOfWaveformSamples = rng.choice(
                [0, 1, 4999, 5001, 2**31 - 1, 2**32 - 1])
        elif choice == 4:
            raw(group, "SamplingFrequency", rng.choice(_NUMBERS))
        else:
            for channel in group.ChannelDefinitionSequence:
                channel.WaveformBitsStored = rng.choice([0, 3, 17, 64, 65535])
    elif src.kind == "image":
        choice = rng.randrange(6)
        if choice == 0:
            ds.BitsAllocated = rng.choice([0, 1, 12, 16, 32, 64, 65535])
        elif choice == 1:
            ds.BitsStored, ds.HighBit = rng.choice([(0, 0), (9, 8), (16, 15), (8, 31)])
        elif choice == 2:
            ds.PhotometricInterpretation = rng.choice(
                ["MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "YBR_FULL", "YBR_ICT",
                 "CMYK", "", "RGBA"])
        elif choice == 3:
            ds.SamplesPerPixel = rng.choice([0, 1, 2, 4, 65535])
        elif choice == 4:
            ds.Rows, ds.Columns = rng.choice(
                [(0, 0), (1, 1), (ds.Columns, ds.Rows), (ds.Rows + 1, ds.Columns),
                 (65535, 65535), (1, 65535)])
        else:
            raw(ds, "NumberOfFrames", rng.choice(["0", "2", "-1", "100000", "x"]))
    else:
        ds.MIMETypeOfEncapsulatedDocument = rng.choice(
            ["text/plain", "application/x-pdf", "", "image/png", "application/pdf" * 20])
    return Made(_body(ds), ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)


def nan_inf(rng: random.Random, src: Source, uid: str) -> Made:
    """NaN/inf where numbers are read: channel sensitivity, baseline, correction,
    sampling frequency; or the samples recoded as 32/64-bit floats holding NaN/inf."""
    ds = _base(src, uid)
    if src.kind != "waveform":
        raw(ds, "PixelSpacing", rng.choice(_NUMBERS[1:8]) + "\\0.1")
        raw(ds, "NominalScannedPixelSpacing", "NaN\\inf")
        return Made(_body(ds), ds.SOPClassUID)
    group = rng.choice(list(ds.WaveformSequence))
    choice = rng.randrange(3)
    if choice == 0:
        keyword = rng.choice(["ChannelSensitivity", "ChannelBaseline",
                              "ChannelSensitivityCorrectionFactor", "ChannelSampleSkew"])
        for channel in group.ChannelDefinitionSequence:
            if rng.random() < 0.5:
                raw(channel, keyword, rng.choice(_NUMBERS[:10]))
    elif choice == 1:
        raw(group, "SamplingFrequency", rng.choice(["NaN", "inf", "-inf", "1e400"]))
    else:
        count = group.NumberOfWaveformChannels * group.NumberOfWaveformSamples
        bits = rng.choice([32, 64])
        values = np.frombuffer(group.WaveformData, "<i2")[:count].astype(
            np.float32 if bits == 32 else np.float64)
        special = np.array([np.nan, np.inf, -np.inf, 1e30], values.dtype)
        picks = np.array([rng.randrange(len(values)) for _ in range(rng.randint(1, 500))])
        values[picks] = special[picks % 4]
        group.WaveformBitsAllocated = bits
        group.WaveformSampleInterpretation = "FL" if bits == 32 else "FD"
        group.WaveformData = values.tobytes()
    return Made(_body(ds), ds.SOPClassUID)


_ECG_CLASSES = [TWELVE_LEAD_ECG, GENERAL_ECG, AMBULATORY_ECG, HEMODYNAMIC_WAVEFORM]


def sop_mismatch(rng: random.Random, src: Source, uid: str) -> Made:
    """The SOP class announced in the C-STORE, in the data set and the content disagree."""
    ds = _base(src, uid)
    others = [SECONDARY_CAPTURE, ENCAPSULATED_PDF, CT_IMAGE, *_ECG_CLASSES]
    choice = rng.randrange(4)
    if choice == 0:  # announced as another class; the data set's own class unchanged
        return Made(_body(ds), rng.choice([c for c in others if c != ds.SOPClassUID]))
    if choice == 1:  # data set and C-STORE agree, the content is of another kind
        ds.SOPClassUID = rng.choice([c for c in others if c != ds.SOPClassUID])
    elif choice == 2:  # the data set's SOP Class UID is garbage
        raw(ds, "SOPClassUID", rng.choice(["1.2.3", "", "1.2.840.10008.5.1.4.1.1.9.1.1.99"]))
        return Made(_body(ds), src.dataset().SOPClassUID)
    else:  # the data set's class is missing; the C-STORE says another ECG class
        del ds.SOPClassUID
        return Made(_body(ds), rng.choice(_ECG_CLASSES))
    return Made(_body(ds), ds.SOPClassUID)


def bomb(rng: random.Random, src: Source, uid: str) -> Made:
    """Small on the wire, huge when decoded: a declared 65,535 x 65,535 image, a JPEG
    whose frame header says 65,500 x 65,500, an RLE frame that expands 64 times into
    8,000 x 8,000, a deflated data set of 64-512 MB of zeros, a PDF page of 1,000 inches."""
    kind = rng.choice(["declared", "jpeg", "rle", "deflate", "pdf"])
    if kind == "deflate":
        ds = _base(src, uid)
        body = _body(ds)
        top = [e for e in walk(body) if e.top and e.vr]
        at = next((e.offset for e in top if e.tag > (0x0009, 0x1010)), len(body))
        data = _chain(body[:at], rng.choice([64, 256, 1024]), body[at:])
        return Made(data, ds.SOPClassUID, DeflatedExplicitVRLittleEndian)
    if kind == "pdf":
        picture = Image.new("RGB", (rng.choice([1000, 4000]), 800), "white")
        pdf = io.BytesIO()
        picture.save(pdf, "PDF", resolution=rng.choice([1.0, 0.1]))
        ds = _pdf_dataset(pdf.getvalue())
        ds.SOPInstanceUID = UID(uid)
        return Made(_body(ds), ENCAPSULATED_PDF)
    ds = _secondary_capture(np.zeros((1, 1, 3), np.uint8))
    ds.SOPInstanceUID = UID(uid)
    if kind == "declared":
        ds.Rows = ds.Columns = 65535
        return Made(_body(ds), SECONDARY_CAPTURE)
    if kind == "jpeg":
        jpeg = _page_jpeg()
        sof = jpeg.index(b"\xff\xc0")
        big = struct.pack(">HH", 65500, 65500)
        jpeg = jpeg[:sof + 5] + big + jpeg[sof + 9:]
        ds.Rows = ds.Columns = 65500
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PixelData = pydicom.encaps.encapsulate([jpeg])
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        return Made(split(_encode_encapsulated(ds))[1], SECONDARY_CAPTURE, JPEGBaseline8Bit)
    side = 8000
    ds.Rows = ds.Columns = side
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    del ds.PlanarConfiguration
    segment = b"\x81\x00" * (side * side // 128)  # runs of 128 zeros
    header = struct.pack("<16I", 1, 64, *([0] * 14))
    ds.PixelData = pydicom.encaps.encapsulate([header + segment])
    ds.file_meta.TransferSyntaxUID = RLELossless
    return Made(split(_encode_encapsulated(ds))[1], SECONDARY_CAPTURE, RLELossless)


@functools.cache
def _zeros_block() -> bytes:
    """1 MB of zeros as raw deflate blocks that stand alone (full flush): repeated, they
    inflate to that many MB."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    return squeeze.compress(b"\0" * (1 << 20)) + squeeze.flush(zlib.Z_FULL_FLUSH)


def _chain(head: bytes, megabytes: int, tail: bytes) -> bytes:
    """One raw deflate stream: ``head``, a private OB of ``megabytes`` zeros, ``tail``."""
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    header = struct.pack("<HH", 0x0009, 0x1010) + b"OB\0\0" + struct.pack("<I", megabytes << 20)
    start = first.compress(head + header) + first.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    return start + _zeros_block() * megabytes + last.compress(tail) + last.flush()


@functools.cache
def _page_jpeg() -> bytes:
    return sorted(ECG_IMAGES_DIR.glob("*/*.jpg"))[0].read_bytes()


def wrong_syntax(rng: random.Random, src: Source, uid: str) -> Made:
    """The data set encoded in one transfer syntax, announced as another."""
    ds = _base(src, uid)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        announced = rng.choice([ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless])
        return Made(_body(ds), ds.SOPClassUID, announced)
    written = rng.choice([ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian])
    announced = rng.choice([s for s in (ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                        ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian,
                                        JPEGBaseline8Bit, RLELossless) if s != written])
    return Made(_body(ds, written), ds.SOPClassUID, announced)


def charset(rng: random.Random, src: Source, uid: str) -> Made:
    """Character sets that lie: bytes invalid in the declared set, unknown terms,
    ISO 2022 escapes in the middle of a name."""
    ds = _base(src, uid)
    raw(ds, "SpecificCharacterSet", rng.choice(
        ["ISO_IR 192", "ISO 2022 IR 87", "GB18030", "NOT_A_CHARSET", "ISO_IR 100\\ISO_IR 999",
         "\\\\\\", "ISO_IR 6"]))
    name = rng.choice([b"\xff\xfe\xfd^\xc3", b"Doe^\x1b$B\x30\x21\x1b(B", b"\x00\x00\x00\x00",
                       b"\xc3\x28^\xa0\xa1", b"A" * 63 + b"\xe2"])
    raw(ds, "PatientName", name)
    return Made(_body(ds), ds.SOPClassUID)


def broken_meta(rng: random.Random, src: Source, uid: str) -> Made:
    """The File Meta itself broken (CLI only): no preamble, a bad group length, bits
    flipped in it, or no meta at all."""
    data = src.data
    meta, body = split(data)
    choice = rng.randrange(4)
    if choice == 0:
        whole = data[128:]
    elif choice == 1:
        whole = data[:140] + struct.pack("<I", rng.choice([0, 3, 0xFFFFFFFF])) + data[144:]
    elif choice == 2:
        raw = bytearray(meta)
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(132, len(raw))] ^= 1 << rng.randrange(8)
        whole = bytes(raw) + body
    else:
        whole = body
    return Made(whole, src.dataset().SOPClassUID, whole_file=True)


#: name -> (mutator, weight in the full mix, weight in the quick mix of the test run,
#: the source kinds it applies to)
MUTATORS: dict[str, tuple[Mutator, int, int, tuple[str, ...]]] = {
    "bitflip": (bit_flips, 10, 3, ("waveform", "image", "pdf")),
    "bitflip-any": (bit_flips_anywhere, 3, 0, ("waveform", "image")),
    "random-bytes": (random_bytes, 6, 4, ("waveform", "image", "pdf")),
    "truncate": (truncation, 8, 8, ("waveform", "image", "pdf")),
    "length": (wrong_length, 10, 8, ("waveform", "image", "pdf")),
    "vr": (vr_change, 8, 4, ("waveform", "image", "pdf")),
    "duplicate": (duplicate_element, 4, 0, ("waveform", "image", "pdf")),
    "missing": (missing_element, 6, 0, ("waveform", "image", "pdf")),
    "missing-needed": (missing_needed, 3, 6, ("waveform", "image", "pdf")),
    "huge-text": (huge_text, 3, 0, ("waveform", "image", "pdf")),
    "nesting": (deep_nesting, 3, 2, ("waveform", "image", "pdf")),
    "sample-format": (sample_format, 8, 6, ("waveform", "image", "pdf")),
    "nan-inf": (nan_inf, 5, 1, ("waveform", "image")),
    "sop-mismatch": (sop_mismatch, 5, 6, ("waveform", "image", "pdf")),
    "bomb": (bomb, 3, 3, ("image",)),
    "wrong-syntax": (wrong_syntax, 5, 4, ("waveform", "image", "pdf")),
    "charset": (charset, 3, 0, ("waveform", "image")),
    "broken-meta": (broken_meta, 2, 2, ("waveform", "image", "pdf")),
}


def _uid(seed: int, index: int) -> str:
    digest = hashlib.sha256(f"ecg-dicom fuzz {seed} {index}".encode()).digest()
    return f"2.25.{int.from_bytes(digest[:15], 'big')}"


def mutant(seed: int, index: int, *, quick: bool = False, only: str | None = None) -> Mutant:
    """The ``index``-th mutant of ``seed``: the same bytes every time.  ``quick`` draws
    from the test run's mix (mostly objects refused or failed before inference)."""
    rng = random.Random(f"{seed}:{index}")
    names = sorted(MUTATORS) if only is None else [only]
    weights: list[float] = [1.0] if only else [
        float(MUTATORS[n][2] if quick else MUTATORS[n][1]) for n in names]
    name = rng.choices(names, weights)[0]
    mutate, _, _, kinds = MUTATORS[name]
    src = rng.choice([s for s in sources() if s.kind in kinds])
    uid = _uid(seed, index)
    with warnings.catch_warnings():  # pydicom's notes on the values we break on purpose
        warnings.simplefilter("ignore")
        made = mutate(rng, src, uid)
    if made.whole_file:
        data = made.body
    else:
        data = assemble(made.body, made.sop_class, uid, made.syntax)
    return Mutant(f"{name}/{src.name}/{seed}.{index}", name, src.name, data, made.sop_class,
                  uid, made.syntax, listener=not made.whole_file)


def parse_name(name: str) -> tuple[str, int, int]:
    """(mutator, seed, index) of a mutant's name."""
    mutator, _, numbers = name.split("/")
    seed, index = numbers.split(".")
    return mutator, int(seed), int(index)


def make(count: int, seed: int = 12, *, quick: bool = False) -> list[Mutant]:
    return [mutant(seed, i, quick=quick) for i in range(count)]

