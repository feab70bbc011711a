"""A scripted peer that speaks broken DICOM Upper Layer (PS3.8) on a raw socket.

Each :class:`Case` is bytes written to a fresh TCP connection to the listener, either
straight after connecting or after a correct association (``after_association``):
malformed A-ASSOCIATE-RQs (wrong lengths, no contexts, bad AE titles, a protocol
version we do not speak, huge declared lengths), garbage and unknown PDU types,
P-DATA before association, PDVs whose lengths lie, C-STOREs cut off mid-stream,
abrupt closes; plus seeded random mutants of a correct A-ASSOCIATE-RQ and of a
correct P-DATA stream.  :func:`probe` records what the listener did: answered (the
PDU type of its first answer), closed, or stayed silent.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom.dsutils import encode

from ecg_dicom.sop import TWELVE_LEAD_ECG

VERIFICATION = "1.2.840.10008.1.1"
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
PDU_NAMES = {1: "A-ASSOCIATE-RQ", 2: "A-ASSOCIATE-AC", 3: "A-ASSOCIATE-RJ", 4: "P-DATA-TF",
             5: "A-RELEASE-RQ", 6: "A-RELEASE-RP", 7: "A-ABORT"}


def _item(kind: int, body: bytes, length: int | None = None) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body) if length is None else length) + body


def _uid(value: str) -> bytes:
    return value.encode()


def presentation_context(ctx_id: int, abstract: str, syntaxes: list[str]) -> bytes:
    body = struct.pack(">BBBB", ctx_id, 0, 0, 0) + _item(0x30, _uid(abstract))
    for ts in syntaxes:
        body += _item(0x40, _uid(ts))
    return _item(0x20, body)


def user_information(max_pdu: int = 16384, extra: bytes = b"") -> bytes:
    body = _item(0x51, struct.pack(">I", max_pdu))
    body += _item(0x52, _uid("1.2.826.0.1.3680043.8.498.99"))
    return _item(0x50, body + extra)


def associate_rq(called: bytes = b"ECGDICOM", calling: bytes = b"RAWPEER", *,
                 contexts: bytes | None = None, user: bytes | None = None,
                 app_context: str = APPLICATION_CONTEXT, version: int = 1,
                 pdu_type: int = 1, length: int | None = None) -> bytes:
    """An A-ASSOCIATE-RQ (PS3.8 9.3.2); every part may be replaced to break it."""
    if contexts is None:
        contexts = (presentation_context(1, VERIFICATION, [ImplicitVRLittleEndian])
                    + presentation_context(3, TWELVE_LEAD_ECG, [ImplicitVRLittleEndian]))
    body = (struct.pack(">HH", version, 0) + called.ljust(16)[:16] + calling.ljust(16)[:16]
            + b"\0" * 32 + _item(0x10, _uid(app_context)) + contexts
            + (user_information() if user is None else user))
    return struct.pack(">BBI", pdu_type, 0, len(body) if length is None else length) + body


def p_data(ctx_id: int, control: int, data: bytes, *, pdv_length: int | None = None,
           pdu_length: int | None = None) -> bytes:
    pdv = struct.pack(">IBB", len(data) + 2 if pdv_length is None else pdv_length,
                      ctx_id, control) + data
    return struct.pack(">BBI", 4, 0, len(pdv) if pdu_length is None else pdu_length) + pdv


def command(field: int, sop_class: str, *, instance: str = "", data_set: bool = False,
            message_id: int = 1) -> bytes:
    """A DIMSE command set, implicit VR little endian (PS3.7 9.3)."""
    ds = Dataset()
    ds.AffectedSOPClassUID = sop_class
    ds.CommandField = field
    ds.MessageID = message_id
    ds.CommandDataSetType = 0x0001 if data_set else 0x0101
    if instance:
        ds.AffectedSOPInstanceUID = instance
        ds.Priority = 0
    raw = encode(ds, True, True)
    assert raw is not None
    return encode_group_length(raw)


def encode_group_length(raw: bytes) -> bytes:
    return struct.pack("<HHII", 0, 0, 4, len(raw)) + raw


ECHO = p_data(1, 0x03, command(0x0030, VERIFICATION))
RELEASE_RQ = struct.pack(">BBI", 5, 0, 4) + b"\0" * 4
ABORT = struct.pack(">BBIBBBB", 7, 0, 4, 0, 0, 0, 0)


@dataclass(frozen=True)
class Case:
    name: str
    payload: bytes
    #: Associate correctly first (then send ``payload`` inside the association).
    after_association: bool = False
    #: Keep the connection open after sending, waiting for the listener to end it
    #: (a stalled peer); otherwise close as soon as it answered or ``wait`` passed.
    hold: bool = False
    #: Send the payload one byte every this many seconds (a trickling peer; with hold).
    trickle: float = 0.0


def fixed_cases() -> list[Case]:
    """The hand-written malformed PDUs and sequences."""
    store = command(0x0001, TWELVE_LEAD_ECG, instance="2.25.42", data_set=True)
    cases = [
        Case("empty-connection", b""),
        Case("one-byte", b"\x01"),
        Case("header-only", struct.pack(">BBI", 1, 0, 200)),
        Case("unknown-pdu-type-0", struct.pack(">BBI", 0, 0, 4) + b"\0" * 4),
        Case("unknown-pdu-type-8", struct.pack(">BBI", 8, 0, 4) + b"\0" * 4),
        Case("unknown-pdu-type-ff", struct.pack(">BBI", 0xFF, 0, 4) + b"\0" * 4),
        Case("http-request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Case("tls-client-hello", bytes.fromhex("160301002a0100002603") + b"\0" * 38),
        Case("p-data-before-association", ECHO),
        Case("release-before-association", RELEASE_RQ),
        Case("abort-before-association", ABORT),
        Case("associate-ac-to-acceptor", associate_rq(pdu_type=2)),
        Case("associate-rj-to-acceptor", struct.pack(">BBIBBBB", 3, 0, 4, 0, 1, 1, 1)),
        Case("rq-length-zero", associate_rq(length=0)),
        Case("rq-length-short", associate_rq(length=40)),
        Case("rq-length-long-then-close", associate_rq(length=5000)),
        Case("rq-length-huge-then-close", associate_rq(length=0xFFFFFFFF)),
        Case("rq-length-huge-held", struct.pack(">BBI", 1, 0, 0x7FFFFFFF) + b"\0" * 64,
             hold=True),
        Case("rq-version-2", associate_rq(version=2)),
        Case("rq-version-0", associate_rq(version=0)),
        Case("rq-empty-called-ae", associate_rq(called=b"")),
        Case("rq-binary-called-ae", associate_rq(called=b"\0\xff\x01ECG\x00")),
        Case("rq-binary-calling-ae", associate_rq(calling=b"\x1b[31mEVIL\n")),
        Case("rq-no-contexts", associate_rq(contexts=b"")),
        Case("rq-even-context-id", associate_rq(
            contexts=presentation_context(2, VERIFICATION, [ImplicitVRLittleEndian]))),
        Case("rq-200-contexts", associate_rq(contexts=b"".join(
            presentation_context((2 * i + 1) % 256, VERIFICATION, [ImplicitVRLittleEndian])
            for i in range(200)))),
        Case("rq-duplicate-context-ids", associate_rq(contexts=(
            presentation_context(1, VERIFICATION, [ImplicitVRLittleEndian]) * 2))),
        Case("rq-context-no-syntax", associate_rq(
            contexts=presentation_context(1, VERIFICATION, []))),
        Case("rq-context-length-overflow", associate_rq(contexts=_item(
            0x20, struct.pack(">BBBB", 1, 0, 0, 0) + _item(0x30, _uid(VERIFICATION)),
            length=0xFFFF))),
        Case("rq-item-length-zero", associate_rq(contexts=_item(0x20, b"", length=0))),
        Case("rq-abstract-syntax-garbage", associate_rq(contexts=presentation_context(
            1, "\0\xff" * 40, [ImplicitVRLittleEndian]))),
        Case("rq-uid-65-chars", associate_rq(contexts=presentation_context(
            1, "1." + "2" * 63, [ImplicitVRLittleEndian]))),
        Case("rq-wrong-application-context", associate_rq(app_context="1.2.3.4")),
        Case("rq-no-user-information", associate_rq(user=b"")),
        Case("rq-max-pdu-0", associate_rq(user=user_information(max_pdu=0))),
        Case("rq-max-pdu-1", associate_rq(user=user_information(max_pdu=1))),
        Case("rq-max-pdu-huge", associate_rq(user=user_information(max_pdu=0xFFFFFFFF))),
        Case("rq-user-identity-huge", associate_rq(user=user_information(
            extra=_item(0x58, struct.pack(">BBH", 2, 0, 0xFFFF) + b"x" * 60000)))),
        Case("rq-unknown-user-subitems", associate_rq(user=user_information(
            extra=_item(0x7F, b"\xff" * 100) + _item(0x54, b"\0\0" + b"1" * 30)))),
        Case("rq-async-window-zero", associate_rq(user=user_information(
            extra=_item(0x53, struct.pack(">HH", 0, 0))))),
        Case("rq-twice", associate_rq() * 2),
        Case("rq-then-garbage", associate_rq() + b"\xde\xad\xbe\xef" * 64),
        Case("rq-cut-in-half", associate_rq()[:40]),
        # inside an established association
        Case("echo-ok", ECHO, after_association=True),
        Case("second-associate-rq", associate_rq(), after_association=True),
        Case("pdata-unknown-context", p_data(99, 0x03, command(0x0030, VERIFICATION)),
             after_association=True),
        Case("pdata-pdv-longer-than-pdu", p_data(1, 0x03, command(0x0030, VERIFICATION),
                                                 pdv_length=5000), after_association=True),
        Case("pdata-pdv-length-zero", p_data(1, 0x03, b"", pdv_length=0),
             after_association=True),
        Case("pdata-pdv-length-one", p_data(1, 0x03, b"", pdv_length=1),
             after_association=True),
        Case("pdata-control-ff", p_data(1, 0xFF, command(0x0030, VERIFICATION)),
             after_association=True),
        Case("pdata-data-before-command", p_data(1, 0x02, b"\0" * 64),
             after_association=True),
        Case("pdata-command-garbage", p_data(1, 0x03, b"\xff" * 64),
             after_association=True),
        Case("pdata-command-truncated", p_data(1, 0x03, command(0x0030, VERIFICATION)[:30]),
             after_association=True),
        Case("pdata-unknown-command-field", p_data(1, 0x03, command(0x0FFF, VERIFICATION)),
             after_association=True),
        Case("pdata-c-find-unnegotiated", p_data(1, 0x03, command(0x0020, VERIFICATION,
                                                                   data_set=True)),
             after_association=True),
        Case("c-store-command-then-close", p_data(3, 0x03, store), after_association=True),
        Case("c-store-data-cut", p_data(3, 0x03, store) + p_data(3, 0x00, b"\x08\x00" * 100)
             + struct.pack(">BBI", 4, 0, 100000) + b"\0" * 10, after_association=True),
        Case("c-store-huge-pdu-declared", p_data(3, 0x03, store)
             + struct.pack(">BBI", 4, 0, 0x7FFFFFFF) + b"\0" * 1000, after_association=True),
        Case("c-store-huge-pdu-held", p_data(3, 0x03, store)
             + struct.pack(">BBI", 4, 0, 0x7FFFFFFF) + b"\0" * 1000, after_association=True,
             hold=True),
        Case("c-store-data-garbage", p_data(3, 0x03, store)
             + p_data(3, 0x02, b"\xff\xfe\x00\xe0" * 64), after_association=True),
        Case("release-then-data", RELEASE_RQ + ECHO, after_association=True),
        Case("abort-then-data", ABORT + ECHO, after_association=True),
        Case("silent-after-association", b"", after_association=True, hold=True),
        Case("silent-before-association", b"", hold=True),
        Case("garbage-after-association", b"\x00" * 4096, after_association=True),
        Case("trickle-associate-rq", associate_rq(), hold=True, trickle=1.0),
        Case("trickle-c-store", p_data(3, 0x03, store) * 50, after_association=True,
             hold=True, trickle=1.0),
    ]
    return cases


def random_cases(seed: int, count: int) -> list[Case]:
    """Seeded mutants of a correct A-ASSOCIATE-RQ, of an association + echo stream, and
    plain garbage."""
    rng = random.Random(f"pdu:{seed}")
    good_rq = associate_rq()
    cases = []
    for i in range(count):
        kind = rng.choice(["rq-flip", "rq-cut", "rq-insert", "stream-flip", "garbage"])
        if kind == "garbage":
            data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000)))
            cases.append(Case(f"garbage-{seed}.{i}", data))
            continue
        base = good_rq if kind.startswith("rq") else ECHO
        raw = bytearray(base)
        if kind.endswith("flip"):
            for _ in range(rng.randint(1, 8)):
                raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        elif kind == "rq-cut":
            raw = raw[:rng.randrange(1, len(raw))]
        else:
            at = rng.randrange(len(raw))
            raw[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        cases.append(Case(f"{kind}-{seed}.{i}", bytes(raw),
                          after_association=kind.startswith("stream")))
    return cases


@dataclass(frozen=True)
class Observation:
    name: str
    #: First PDU type the listener answered ("A-ABORT"...), "" if none.
    answer: str
    #: The listener closed the connection (before we did).
    closed: bool
    seconds: float
    #: Setup failed: the correct association the case needed was not accepted.
    setup_failed: bool = False


def _read_pdu(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """One PDU (or what arrives before EOF/deadline): (bytes, closed)."""
    data = b""
    while True:
        need = 6 if len(data) < 6 else 6 + struct.unpack(">I", data[2:6])[0]
        if len(data) >= need:
            return data, False
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False
        except OSError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


def probe(port: int, case: Case, *, wait: float = 3.0, hold_limit: float = 30.0,
          host: str = "127.0.0.1", setup_patience: float = 15.0) -> Observation:
    """Play one case; see the module docstring for what is recorded.  A case that needs
    an association is retried while the listener rejects it as transient (the
    connections of the cases before are still being ended), up to ``setup_patience``."""
    give_up = time.monotonic() + setup_patience
    while True:
        seen = _play(port, case, wait, hold_limit, host)
        if not (seen.setup_failed and seen.answer == "A-ASSOCIATE-RJ"
                and time.monotonic() < give_up):
            return seen
        time.sleep(0.2)


def _play(port: int, case: Case, wait: float, hold_limit: float, host: str) -> Observation:
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=10) as sock:
        if case.after_association:
            sock.sendall(associate_rq())
            reply, closed = _read_pdu(sock, time.monotonic() + 10)
            if closed or not reply or reply[0] != 2:
                return Observation(case.name, PDU_NAMES.get(reply[0], "?") if reply else "",
                                   closed, time.monotonic() - started, setup_failed=True)
        deadline = time.monotonic() + (hold_limit if case.hold else wait)
        try:
            if case.trickle:
                for i in range(len(case.payload)):
                    sock.sendall(case.payload[i:i + 1])
                    reply, closed = _read_pdu(sock, time.monotonic() + case.trickle)
                    if closed or reply or time.monotonic() >= deadline:
                        answer = PDU_NAMES.get(reply[0], "?") if reply else ""
                        return Observation(case.name, answer, closed,
                                           time.monotonic() - started)
            elif case.payload:
                sock.sendall(case.payload)
        except OSError:  # the listener closed while we were still writing
            return Observation(case.name, "", True, time.monotonic() - started)
        answer = ""
        while True:
            reply, closed = _read_pdu(sock, deadline)
            if reply and not answer:
                answer = PDU_NAMES.get(reply[0], f"type-{reply[0]}")
            if closed or not reply:
                break  # the listener closed, or the time is up
            if not case.hold and reply[0] in (2, 4, 6):
                break  # the association goes on (accepted, answered, released)
        # the case ends here: an abrupt close (no release) from our side
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return Observation(case.name, answer, closed, time.monotonic() - started)
