"""A fast scan of a DICOM file's top-level data elements, for the C-STORE handler.

The handler must check a received data set against its SOP class before it
answers, without slowing the sender: parsing a 12-lead ECG with pydicom costs
7-10 ms (every nested annotation item becomes an object), which alone would
halve the acknowledgement rate.  This scanner walks the element headers of the
top level only (PS3.5 7.1 and 7.5), skipping every value by its length and
undefined-length sequences by their delimiters, over a memory map, so a 300 MB
image costs no more than an ECG.  It reads the values of a few short string
elements and reports which tags are present.  Deflated data sets fall back to
pydicom.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
#: Explicit-VR VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)


class HeaderError(ValueError):
    """The file is not a well-formed DICOM file."""


@dataclass(frozen=True)
class Header:
    """Top-level tags present in the data set, and the text of a few of them."""

    transfer_syntax: str
    tags: frozenset[int]
    values: dict[int, str]

    def get(self, keyword: str) -> str:
        return self.values.get(int(Tag(keyword)), "")

    def has(self, keyword: str) -> bool:
        return int(Tag(keyword)) in self.tags


class _Scanner:
    def __init__(self, buf: mmap.mmap | bytes, explicit: bool, little: bool) -> None:
        self.buf = buf
        self.explicit = explicit
        self.endian = "<" if little else ">"

    def element(self, pos: int, explicit: bool) -> tuple[int, bytes, int, int]:
        """(tag, vr, length, value position) of the element header at pos."""
        group, elem = struct.unpack_from(self.endian + "HH", self.buf, pos)
        tag = group << 16 | elem
        if group == 0xFFFE:
            (length,) = struct.unpack_from(self.endian + "I", self.buf, pos + 4)
            return tag, b"", length, pos + 8
        if explicit:
            vr = bytes(self.buf[pos + 4 : pos + 6])
            if vr in LONG_VRS:
                (length,) = struct.unpack_from(self.endian + "I", self.buf, pos + 8)
                return tag, vr, length, pos + 12
            (length,) = struct.unpack_from(self.endian + "H", self.buf, pos + 6)
            return tag, vr, length, pos + 8
        (length,) = struct.unpack_from(self.endian + "I", self.buf, pos + 4)
        return tag, b"", length, pos + 8

    def skip_sequence(self, pos: int, explicit: bool) -> int:
        """Skip the items of an undefined-length value; return the position after it."""
        while True:
            tag, _, length, pos = self.element(pos, explicit)
            if tag == SEQUENCE_END:
                return pos
            if tag != ITEM:
                raise HeaderError(f"expected an item at offset {pos - 8}, found {tag:08X}")
            pos = self.skip_item(pos, explicit) if length == UNDEFINED else pos + length

    def skip_item(self, pos: int, explicit: bool) -> int:
        while True:
            tag, vr, length, pos = self.element(pos, explicit)
            if tag == ITEM_END:
                return pos
            if length == UNDEFINED:
                # An undefined-length UN holds implicit VR little endian (PS3.5 6.2.2).
                pos = self.skip_sequence(pos, explicit and vr != b"UN")
            else:
                pos += length


def _read_with_pydicom(path: Path, wanted: set[int]) -> Header:
    try:
        ds = dcmread(path, defer_size=1024)
    except Exception as exc:  # pydicom raises many types on bad input
        raise HeaderError(f"not readable by pydicom either: {exc}") from exc
    return Header(
        str(ds.file_meta.get("TransferSyntaxUID", "")),
        frozenset(int(t) for t in ds.keys()),  # noqa: SIM118 (tags, not elements)
        {t: str(ds[t].value).strip() for t in wanted if t in ds},
    )


def read_header(path: Path, wanted: tuple[str, ...]) -> Header:
    """The fast scan, or, when it finds the file malformed, pydicom's tolerant reader.

    Real files sometimes carry trailing padding or other defects pydicom
    tolerates; such a file is accepted when pydicom can read it.
    """
    try:
        return scan_header(path, wanted)
    except HeaderError:
        return _read_with_pydicom(path, {int(Tag(k)) for k in wanted})


def scan_header(path: Path, wanted: tuple[str, ...]) -> Header:
    """Scan a DICOM file (PS3.10 format) and read the ``wanted`` string elements."""
    wanted_tags = {int(Tag(k)) for k in wanted}
    with open(path, "rb") as fh:
        try:
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # empty file
            raise HeaderError("empty file") from exc
    try:
        return _scan(buf, wanted_tags, path)
    except (struct.error, IndexError) as exc:
        raise HeaderError(f"truncated or malformed data set: {exc}") from exc
    finally:
        buf.close()


def _scan(buf: mmap.mmap, wanted: set[int], path: Path) -> Header:
    if len(buf) < 144 or buf[128:132] != b"DICM":
        raise HeaderError("no DICOM preamble and prefix (PS3.10 7.1)")
    meta = _Scanner(buf, explicit=True, little=True)
    tag, _, group_length, pos = meta.element(132, True)
    if tag != 0x00020000:
        raise HeaderError("File Meta Information Group Length (0002,0000) missing")
    (group_length,) = struct.unpack_from("<I", buf, pos)
    start = pos + 4 + group_length
    transfer_syntax = ""
    pos += 4
    while pos < start:
        tag, _, length, vpos = meta.element(pos, True)
        if tag == 0x00020010:
            transfer_syntax = bytes(buf[vpos : vpos + length]).rstrip(b"\x00 ").decode("ascii")
        pos = vpos + length
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        return _read_with_pydicom(path, wanted)
    explicit = transfer_syntax != ImplicitVRLittleEndian
    scanner = _Scanner(buf, explicit, little=transfer_syntax != ExplicitVRBigEndian)
    tags: set[int] = set()
    values: dict[int, str] = {}
    pos, end = start, len(buf)
    while pos < end:
        if end - pos < 8:
            raise HeaderError(f"{end - pos} stray bytes at the end of the data set")
        tag, vr, length, vpos = scanner.element(pos, explicit)
        tags.add(tag)
        if length == UNDEFINED:
            pos = scanner.skip_sequence(vpos, explicit and vr != b"UN")
            continue
        if vpos + length > end:
            raise HeaderError(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) runs past the end")
        if tag in wanted:
            values[tag] = bytes(buf[vpos : vpos + length]).rstrip(b"\x00 ").decode("latin-1")
        pos = vpos + length
    return Header(transfer_syntax, frozenset(tags), values)
