"""The reads of a listener connection, bounded per PDU (see :mod:`ecg_dicom.dicom.guard`).

:class:`PduClock` follows the PDUs of one connection as they are read (a 6-byte
header, then the declared length): each has ``dicom.pdu_timeout`` to arrive once
its first byte is in, and none may be longer than allowed.  :class:`GuardedSocket`
and :class:`GuardedSSLSocket` are the connection sockets whose ``recv`` is bounded
so: a stalled or oversized PDU is logged once (``REFUSALS``), the connection shut
down, and pynetdicom reads the end of the connection.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from dataclasses import dataclass
from typing import Any

from ecg_dicom.config import AllowedCaller, DicomSettings
from ecg_dicom.dicom.association import REFUSALS
from ecg_dicom.dicom.noise import mark_cut

A_ASSOCIATE_RQ, P_DATA_TF = 0x01, 0x04
#: The longest A-ASSOCIATE-RQ (or other non-data PDU) accepted; dcmtk's with 128
#: presentation contexts is about 15 KB.
MAX_REQUEST_PDU = 256 * 1024
#: A-ABORT, service-provider, reason not specified (PS3.8 9.3.8).
A_ABORT = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0x02, 0x00])


def reject_pdu(result: int, source: int, diagnostic: int) -> bytes:
    """An A-ASSOCIATE-RJ PDU (PS3.8 9.3.4)."""
    return struct.pack(">BBLBBBB", 0x03, 0, 4, 0, result, source, diagnostic)


@dataclass(frozen=True)
class Hygiene:
    """The settings the guard applies (from ``dicom.*``)."""

    rules: list[AllowedCaller]
    request_timeout: float = 5.0
    per_host: int = 4
    pdu_timeout: float = 30.0
    max_pdu_size: int = 262144

    @classmethod
    def of(cls, dicom: DicomSettings) -> Hygiene:
        return cls(dicom.allowed_callers, dicom.association_request_timeout,
                   dicom.max_connections_per_host, dicom.pdu_timeout, dicom.max_pdu_size)


class PduClock:
    """Follows the PDUs read from one connection (6-byte header, then the declared
    length) and says how long the current one may still take."""

    def __init__(self, hygiene: Hygiene, peer: str, first_deadline: float | None = None) -> None:
        self.hygiene, self.peer = hygiene, peer
        self.deadline = first_deadline  # of the PDU being read; None between PDUs
        self.header = bytearray()
        self.remaining = 0  # bytes of the current PDU's body still to come

    def time_left(self, now: float) -> float:
        if self.deadline is None:  # its first byte is in: a PDU begins
            self.deadline = now + self.hygiene.pdu_timeout
        return self.deadline - now

    def feed(self, data: bytes) -> tuple[str, str] | None:
        """Account for ``data``; (reason, words) when a PDU is longer than allowed."""
        i = 0
        while i < len(data):
            if self.remaining == 0:
                take = min(6 - len(self.header), len(data) - i)
                self.header += data[i:i + take]
                i += take
                if len(self.header) < 6:
                    continue
                pdu_type, _, length = struct.unpack(">BBL", self.header)
                self.header.clear()
                if not 0x01 <= pdu_type <= 0x07:  # garbage: pynetdicom logs each 6 bytes
                    return ("bad_pdu", f"unknown PDU type 0x{pdu_type:02X}")
                limit = MAX_REQUEST_PDU
                if pdu_type == P_DATA_TF:
                    # The variable field may not pass what we announced (PS3.8 D.1); 6 bytes
                    # of slack for peers that count the header in.
                    limit = self.hygiene.max_pdu_size + 6 if self.hygiene.max_pdu_size else 0
                if limit and length > limit:
                    return ("pdu_too_large",
                            f"a PDU of type 0x{pdu_type:02X} declares {length} bytes, "
                            f"more than the {limit} accepted (dicom.max_pdu_size)")
                self.remaining = length
            else:
                take = min(self.remaining, len(data) - i)
                self.remaining -= take
                i += take
            if self.remaining == 0 and not self.header:
                self.deadline = None  # this PDU is complete
        return None


class ClockedReads:
    """The reads of a connection socket, bounded per PDU by its :class:`PduClock`."""

    clock: PduClock | None = None

    def recv(self, bufsize: int = 1024, flags: int = 0) -> bytes:
        clock = self.clock
        if clock is None or flags:  # not armed yet, or a peek
            return super().recv(bufsize, flags)  # type: ignore[misc,no-any-return]
        left = clock.time_left(time.monotonic())
        if left <= 0:
            return self.cut("stalled_pdu", _stalled(clock))
        self.settimeout(left)  # type: ignore[attr-defined]
        try:
            data: bytes = super().recv(bufsize)  # type: ignore[misc]
        except TimeoutError:
            return self.cut("stalled_pdu", _stalled(clock))
        except ConnectionResetError:  # the peer left: an end, not an error to log
            self.clock = None
            mark_cut()
            return b""
        finally:
            if self.clock is not None:
                # Sends too are bounded: a peer that stops reading cannot hold us.
                self.settimeout(clock.hygiene.pdu_timeout)  # type: ignore[attr-defined]
        problem = clock.feed(data)
        return self.cut(*problem) if problem else data

    def cut(self, reason: str, why: str) -> bytes:
        """Log the refusal, close the connection, and read as its end to pynetdicom."""
        clock, self.clock = self.clock, None
        REFUSALS("connection cut", reason, why, clock.peer if clock else "?")
        mark_cut()  # pynetdicom's reader of this connection says no more about it
        try:
            self.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]
        except OSError:
            pass
        return b""


def _stalled(clock: PduClock) -> str:
    return f"a PDU took longer than {clock.hygiene.pdu_timeout:g} s (dicom.pdu_timeout)"


class GuardedSocket(ClockedReads, socket.socket):  # type: ignore[misc]
    """A plain connection socket with clocked reads."""

    @classmethod
    def adopt(cls, sock: socket.socket) -> GuardedSocket:
        timeout = sock.gettimeout()
        guarded = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        guarded.settimeout(timeout)
        return guarded


class GuardedSSLSocket(ClockedReads, ssl.SSLSocket):  # type: ignore[misc]
    """A TLS connection socket with clocked reads (``SSLContext.sslsocket_class``)."""



def say(sock: Any, pdu: bytes) -> None:
    """Send a short PDU without waiting (never on a TLS socket before its handshake)."""
    if isinstance(sock, ssl.SSLSocket):
        return
    try:
        sock.setblocking(False)
        sock.send(pdu)
    except OSError:
        pass
