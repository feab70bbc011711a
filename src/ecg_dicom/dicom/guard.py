"""Connection hygiene: what a TCP connection may cost before and while it is an association.

pynetdicom gives every accepted connection an association thread at once, and counts
it against ``dicom.max_associations`` while it waits (``acse_timeout``) for the
A-ASSOCIATE-RQ; it reads each PDU whole, however long its declared length, in a
blocking read that no timeout bounds.  Fifty silent connections thus refused every
real caller, a byte every 20 s held an association for ever, and a stranger's
300 MB PDU was read before the allow-list was asked.  :class:`GuardedServer` (the
listener's server, on the plain and the TLS port) changes that:

* **at accept**, before a byte is read: an address that no ``dicom.allowed_callers``
  entry names is refused (A-ASSOCIATE-RJ "calling AE title not recognised"), and so
  is one already holding ``dicom.max_connections_per_host`` connections (A-ASSOCIATE-RJ
  transient, "local limit exceeded"); then the connection is closed;
* **before the association**: the connection's own thread waits, at most
  ``dicom.association_request_timeout`` from accept, until the A-ASSOCIATE-RQ is in
  (peeked, not read); only then is the pynetdicom association made, so that idle or
  trickling connections never take an association slot.  A first PDU that is not an
  A-ASSOCIATE-RQ, or is longer than :data:`MAX_REQUEST_PDU`, gets an A-ABORT;
* **during the association**, each PDU has ``dicom.pdu_timeout`` to arrive once its
  first byte is in, whatever ``network_timeout`` says, and a P-DATA-TF may not be longer
  than the ``dicom.max_pdu_size`` we announced: otherwise the connection is cut
  (:mod:`ecg_dicom.dicom.pdu_clock`: the connection sockets' reads, counted per PDU);
* ``bind_address: "::"`` listens on IPv6 and IPv4 (dual-stack); the listen backlog
  is the system's maximum, not pynetdicom's 5 (a burst must not drop a caller's SYN);
* the supported contexts pynetdicom copies for each association are copied cheaply
  (:class:`QuickCopyContext`).

The connection's thread stays until its association ends, then lets its per-host
count go: pynetdicom's association thread, found through ``EVT_CONN_OPEN``, is joined.

Each refusal is logged once (:data:`ecg_dicom.dicom.association.REFUSALS`).

pynetdicom is used through its public hooks: ``AE.make_server(server_class=...)``,
``AssociationServer`` / ``RequestHandler`` subclasses (``request_handler``,
``verify_request``, ``get_request``, ``server_bind``, ``shutdown_request``), the
documented ``SSLContext.sslsocket_class`` and ``EVT_CONN_OPEN``; the one private name
is ``AE._servers`` in :func:`serve`, as ``AE.start_server`` does it (every test of
tests/dicom/test_hygiene.py stops a server started so).
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from ecg_dicom import metrics
from ecg_dicom.config import DicomSettings
from ecg_dicom.dicom import noise
from ecg_dicom.dicom.association import (
    REFUSALS,
    REJECT_CALLING_AE,
    REJECT_LIMIT,
    address_allowed,
    peer_host,
)
from ecg_dicom.dicom.pdu_clock import (
    A_ABORT,
    A_ASSOCIATE_RQ,
    MAX_REQUEST_PDU,
    ClockedReads,
    GuardedSocket,
    GuardedSSLSocket,
    Hygiene,
    PduClock,
    reject_pdu,
    say,
)

#: An A-ASSOCIATE-RQ longer than this is handed to pynetdicom once this much is in
#: (the kernel's receive window may not hold it whole); its end is still due by
#: ``association_request_timeout``.
PEEK_BYTES = 16 * 1024
_POLL = 0.01  # seconds between looks at a partly arrived A-ASSOCIATE-RQ
_DEBUG_EVENTS = (evt.EVT_PDU_RECV, evt.EVT_PDU_SENT, evt.EVT_DIMSE_RECV, evt.EVT_DIMSE_SENT)
#: Protocol version, reserved, called and calling AE titles, reserved (PS3.8 9.3.2).
REQUEST_FIXED_FIELDS = 2 + 2 + 16 + 16 + 32


@dataclass
class _Connection:
    host: str
    accepted: float
    assoc: Any = None  # the pynetdicom Association, once made
    released: bool = False


@dataclass
class _Table:
    """Open connections, by socket and by host."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    open: dict[Any, _Connection] = field(default_factory=dict)
    per_host: dict[str, int] = field(default_factory=dict)

    def add(self, sock: Any, host: str, limit: int) -> bool:
        with self.lock:
            if self.per_host.get(host, 0) >= limit:
                return False
            self.per_host[host] = self.per_host.get(host, 0) + 1
            self.open[sock] = _Connection(host, time.monotonic())
            return True

    def release(self, sock: Any) -> None:
        with self.lock:
            conn = self.open.pop(sock, None)
            if conn is None:
                return
            left = self.per_host[conn.host] - 1
            if left:
                self.per_host[conn.host] = left
            else:
                del self.per_host[conn.host]


class GuardedServer(ThreadedAssociationServer):
    """The listener's pynetdicom server (see the module docstring).

    Its settings are a class attribute (:meth:`configured`), so that the TLS port
    (:func:`ecg_dicom.dicom.tls.start_tls_server`) can be built on it as it is.
    """

    hygiene: Hygiene = Hygiene([])
    #: The connection threads are not joined at shutdown (each waits for its association).
    daemon_threads = True
    #: The listen backlog (pynetdicom's: 5): a burst of connections must not make the
    #: kernel drop a real caller's SYN (retried only after 1 s, then 3 s).
    request_queue_size = socket.SOMAXCONN

    @classmethod
    def configured(cls, dicom: DicomSettings) -> type[GuardedServer]:
        return type(cls.__name__, (cls,), {"hygiene": Hygiene.of(dicom)})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.table = _Table()
        noise.install()
        kwargs.setdefault("request_handler", GuardedHandler)
        super().__init__(*args, **kwargs)
        self.contexts = [QuickCopyContext.of(cx) for cx in self.contexts]
        self.bind(evt.EVT_CONN_OPEN, self._on_open)
        if self.ssl_context is not None:
            self.ssl_context.sslsocket_class = GuardedSSLSocket

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] in ("::", ""):
            # "::" is both IPv6 and IPv4 (whatever the system's default).
            assert self.socket is not None
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        sock, address = super().get_request()
        if not isinstance(sock, ssl.SSLSocket):
            sock = GuardedSocket.adopt(sock)
        return sock, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """At accept, nothing read yet: the allow-list's addresses, the per-host limit."""
        host = peer_host(str(client_address[0]))
        if not address_allowed(self.hygiene.rules, host):
            metrics.ASSOCIATIONS_REJECTED.inc()
            REFUSALS("connection refused", "address", "address not in allowed_callers", host)
            say(request, reject_pdu(*REJECT_CALLING_AE))
            return False
        if not self.table.add(request, host, self.hygiene.per_host):
            REFUSALS("connection refused (transient)", "host_limit",
                     f"already {self.hygiene.per_host} connections from this address "
                     "(dicom.max_connections_per_host)", host)
            say(request, reject_pdu(*REJECT_LIMIT))
            return False
        return True

    def shutdown_request(self, request: Any) -> None:
        self.table.release(request)
        super().shutdown_request(request)

    def _on_open(self, event: Any) -> None:
        # In the connection's thread, from RequestHandler.handle: the association is
        # made, not started.
        assoc = event.assoc
        sock = assoc.dul.socket
        conn = self.table.open.get(sock.socket if sock is not None else None)
        if conn is not None:
            conn.assoc = assoc
        if not logging.getLogger("pynetdicom").isEnabledFor(logging.DEBUG):
            # pynetdicom's own handlers that only format PDUs and DIMSE messages for its
            # debug log: CPU for nothing, and they raise on what a hostile peer sends.
            for debug_event in _DEBUG_EVENTS:
                for handler, _ in list(cast(list[Any], assoc.get_handlers(debug_event))):
                    assoc.unbind(debug_event, handler)


class QuickCopyContext(PresentationContext):
    """A presentation context whose deep copy is a shallow one with its lists copied.

    pynetdicom deep-copies the server's supported contexts for every association;
    ours (every storage class, most with every transfer syntax: 171 contexts, 7,234
    UIDs) took 0.4 s of CPU per association, 0.9 s on a loaded machine: the
    slowest part of an echo, and CPU an attacker could make us burn at will.  Its
    values are immutable (UIDs are strings, roles and ids plain values) but for the
    lists, which are copied.
    """

    @classmethod
    def of(cls, context: PresentationContext) -> QuickCopyContext:
        quick = object.__new__(cls)
        quick.__dict__.update(context.__dict__)
        return quick.__deepcopy__({})

    def __deepcopy__(self, memo: dict[int, Any]) -> QuickCopyContext:
        copied = object.__new__(type(self))
        copied.__dict__.update({k: list(v) if isinstance(v, list) else v
                                for k, v in self.__dict__.items()})
        return copied


class GuardedHandler(RequestHandler):
    """One accepted connection: wait for its A-ASSOCIATE-RQ, then make the pynetdicom
    association and stay until it ends (the per-host count is released then)."""

    server: GuardedServer

    def handle(self) -> None:
        sock, server = self.request, self.server
        conn = server.table.open.get(sock)
        try:
            ready = conn is not None and self._await_request(conn)
        except OSError:  # reset by the peer before its request: nothing to refuse
            ready = False
        if conn is None or not ready:
            server.shutdown_request(sock)
            return
        hygiene = server.hygiene
        if isinstance(sock, ClockedReads):
            sock.clock = PduClock(hygiene, conn.host, conn.accepted + hygiene.request_timeout)
        sock.settimeout(hygiene.pdu_timeout)
        super().handle()  # pynetdicom's: the association, started in its own thread
        if conn.assoc is not None:
            conn.assoc.join()

    def finish(self) -> None:
        self.server.table.release(self.request)

    def _await_request(self, conn: _Connection) -> bool:
        """Wait, up to the request timeout from accept, until the A-ASSOCIATE-RQ is in."""
        sock, hygiene = self.request, self.server.hygiene
        deadline = conn.accepted + hygiene.request_timeout
        have, pause = b"", _POLL
        while (left := deadline - time.monotonic()) > 0:
            if isinstance(sock, ssl.SSLSocket):  # no peeking into TLS: its first bytes do
                if sock.pending() or select.select([sock], [], [], left)[0]:
                    return True
                continue
            if not have and not select.select([sock], [], [], left)[0]:
                continue
            have = sock.recv(PEEK_BYTES, socket.MSG_PEEK)
            if not have:
                return False  # the peer closed (a port probe): nothing to refuse
            if have[0] != A_ASSOCIATE_RQ:
                why = f"the first PDU is of type 0x{have[0]:02X}, not an A-ASSOCIATE-RQ"
                return _refuse(sock, conn, "not_a_request", why, A_ABORT)
            if len(have) >= 6:
                length = struct.unpack(">L", have[2:6])[0]
                if length < REQUEST_FIXED_FIELDS:
                    why = f"an A-ASSOCIATE-RQ of {length} bytes, shorter than its fixed fields"
                    return _refuse(sock, conn, "not_a_request", why, A_ABORT)
                if length > MAX_REQUEST_PDU:
                    why = f"an A-ASSOCIATE-RQ of {length} bytes (at most {MAX_REQUEST_PDU})"
                    return _refuse(sock, conn, "request_too_large", why, A_ABORT)
                if len(have) >= min(6 + length, PEEK_BYTES):
                    return True
            time.sleep(min(pause, max(left, 0)))  # the rest of the request is on its way
            pause = min(pause * 2, 0.2)  # a trickle is not worth a busy loop
        got = f" ({len(have)} bytes of it)" if have else ""
        why = (f"no A-ASSOCIATE-RQ within {hygiene.request_timeout:g} s{got} "
               "(dicom.association_request_timeout)")
        return _refuse(sock, conn, "request_timeout", why)



def _refuse(sock: Any, conn: _Connection, reason: str, why: str, pdu: bytes = b"") -> bool:
    REFUSALS("connection closed", reason, why, conn.host)
    if pdu:
        say(sock, pdu)
    return False


def serve(ae: Any, address: tuple[str, int], handlers: list[Any],
          server_class: type[ThreadedAssociationServer], **kwargs: Any) -> Any:
    """Start a server of ``server_class`` for ``ae`` in its own thread, as
    ``AE.start_server(block=False)`` does (which takes no server class)."""
    server = ae.make_server(address, evt_handlers=handlers, server_class=server_class, **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True,
                              name=f"AcceptorServer@{address[1]}")
    thread.start()
    ae._servers.append(server)  # as AE.start_server: AE.shutdown and server.shutdown use it
    return server
