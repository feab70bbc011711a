"""DICOM TLS (PS3.15 B.1, the BCP 195 profile) with Python's :mod:`ssl`.

* the listener's TLS port (``dicom.tls``): :func:`listener_context` (our certificate
  and key; TLS 1.2 or later; the callers' certificates checked against
  ``client_ca``, required or only checked when presented) and
  :func:`tls_server_class`, a pynetdicom server that makes the TLS handshake in the
  connection's own thread, bounded by ``dicom.association_request_timeout`` (not in
  the thread that accepts every connection, where pynetdicom would make it, so that
  one silent caller cannot stop the port), and logs a refused handshake once, with
  the reason (``association.REFUSALS``: ``tls_timeout``, ``tls_untrusted_certificate``,
  ``tls_no_certificate``, ``tls_handshake``; the metric ``ecgdicom_refused_total``);
* delivery to a destination marked ``tls: true`` (``delivery.tls``):
  :func:`client_context` (the destination's certificate checked against
  ``ca_certificates`` or the system's CAs, its host name checked, our own
  certificate when one is set) and :func:`handshake_recorder`, which keeps the
  reason a handshake failed so that the delivery error says it.

A certificate or key file that is missing, unreadable or not PEM stops start-up
with a :class:`~ecg_dicom.errors.ConfigError` naming the setting and the file.
"""

from __future__ import annotations

import logging
import re
import select
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

from ecg_dicom.config import ClientTls, ListenerTls, Settings
from ecg_dicom.dicom.association import REFUSALS, peer_host
from ecg_dicom.errors import ConfigError

# The loggers keep the names of the listener and of delivery (docs/architecture.md).
log = logging.getLogger("ecg_dicom.scp")

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def _readable(path: Path | None, setting: str) -> str:
    """``path`` as a string, or a ConfigError naming ``setting`` and the file."""
    if path is None:
        raise ConfigError(f"{setting} is not set")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path} ({exc.strerror or exc})") from None
    return str(path)


def _no_password() -> bytes:
    # Without this callback OpenSSL would prompt on the terminal for the passphrase.
    raise ConfigError("the private key is encrypted (protect it by file permissions instead)")


def _load_key_pair(ctx: ssl.SSLContext, cert: Path | None, key: Path | None, where: str) -> None:
    cert_file = _readable(cert, f"{where}.certificate")
    key_file = _readable(key, f"{where}.private_key")
    try:
        ctx.load_cert_chain(cert_file, key_file, password=_no_password)
    except ConfigError as exc:
        raise ConfigError(f"{where}.private_key {key_file}: {exc}") from None
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{where}.certificate {cert_file} and {where}.private_key {key_file}: not a PEM "
            f"certificate and its private key ({describe(exc)})"
        ) from None


def _load_cas(ctx: ssl.SSLContext, path: Path | None, setting: str) -> None:
    ca_file = _readable(path, setting)
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{setting}: {ca_file} holds no PEM certificate ({describe(exc)})"
        ) from None


def listener_context(tls: ListenerTls) -> ssl.SSLContext:
    """The server context of the listener's TLS port (``dicom.tls``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    _load_key_pair(ctx, tls.certificate, tls.private_key, "dicom.tls")
    if tls.client_ca is not None:
        _load_cas(ctx, tls.client_ca, "dicom.tls.client_ca")
        # Without require_client_certificate a caller may present none; one it
        # presents is still checked.
        ctx.verify_mode = (
            ssl.CERT_REQUIRED if tls.require_client_certificate else ssl.CERT_OPTIONAL
        )
    return ctx


def client_context(tls: ClientTls) -> ssl.SSLContext:
    """The client context for destinations marked ``tls: true`` (``delivery.tls``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the peer's certificate
    ctx.minimum_version = _VERSIONS[tls.min_version]
    if tls.ca_certificates is not None:
        _load_cas(ctx, tls.ca_certificates, "delivery.tls.ca_certificates")
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = tls.check_hostname
    if tls.certificate is not None or tls.private_key is not None:
        _load_key_pair(ctx, tls.certificate, tls.private_key, "delivery.tls")
    return ctx


def check_delivery_tls(settings: Settings) -> None:
    """At start-up: when a destination is marked ``tls: true``, load ``delivery.tls``
    once, so that a missing or unreadable file stops start-up (ConfigError) instead
    of failing every delivery."""
    delivery = settings.delivery
    if any(d.tls for d in [*delivery.destinations.values(), *delivery.fixed_destinations]):
        client_context(delivery.tls)


_SSL_NOISE = re.compile(r"^\[SSL: [A-Z0-9_]+\] |\s*\(_ssl\.c:\d+\)$")


def describe(exc: BaseException) -> str:
    """A TLS failure in words: ``certificate verify failed: self-signed certificate``,
    ``tlsv1 alert unknown ca``, ``wrong version number (...not TLS on this port?)``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ConnectionResetError | ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return "the peer closed the connection (does it speak TLS on this port?)"
    if isinstance(exc, ssl.SSLError):
        text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        text = _SSL_NOISE.sub("", text)
        if exc.reason == "WRONG_VERSION_NUMBER":
            text += " (the peer does not speak TLS on this port?)"
        return text
    if isinstance(exc, TimeoutError):
        return str(exc) if exc.args else "timed out"
    return str(exc) or type(exc).__name__


def handshake_recorder(ctx: ssl.SSLContext, failures: list[BaseException]) -> ssl.SSLContext:
    """``ctx`` with the TLS errors of its connections appended to ``failures``.

    pynetdicom reports a failed connection as "unable to connect"; the socket
    class installed here keeps the error of the handshake (or of the first read:
    under TLS 1.3 a server refuses our certificate after the client's side of the
    handshake is done).  Use one context per association.
    """

    class RecordingSocket(ssl.SSLSocket):
        def connect(self, address: Any) -> None:
            try:
                super().connect(address)
            except OSError:
                self.close()  # pynetdicom only drops it (a ResourceWarning later)
                raise

        def do_handshake(self, block: bool = False) -> None:
            try:
                super().do_handshake(block)
            except OSError as exc:  # SSLError, a reset, a timeout: all in the handshake
                failures.append(exc)
                # Not an SSLError any more: pynetdicom logs a traceback for those.
                raise ConnectionError(f"TLS handshake failed: {describe(exc)}") from exc

        def shutdown(self, how: int) -> None:
            try:
                super().shutdown(how)
            except OSError:
                self.close()  # pynetdicom closes only after a shutdown that worked
                raise

        def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
            try:
                return super().recv(buflen, flags)
            except ssl.SSLError as exc:
                failures.append(exc)
                raise

    ctx.sslsocket_class = RecordingSocket
    return ctx


class TlsHandshakeServer(ThreadedAssociationServer):
    """A pynetdicom server whose TLS handshake is made in the connection's thread.

    pynetdicom wraps an accepted socket in the accepting thread with an immediate
    handshake and no timeout: one caller that connects and stays silent would stop
    the whole port.  Here the socket is wrapped without a handshake at accept, and
    the handshake is made, bounded by :attr:`handshake_timeout`, in the thread that
    then serves the association.
    """

    #: Seconds a caller has to complete the TLS handshake.
    handshake_timeout: float = 5.0

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None and self.ssl_context is not None
        client, address = self.socket.accept()
        wrapped = self.ssl_context.wrap_socket(
            client, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket) and not self._handshake(request, client_address):
            self.shutdown_request(request)
            return
        super().process_request_thread(request, client_address)

    def _handshake(self, sock: ssl.SSLSocket, client_address: Any) -> bool:
        previous = sock.gettimeout()
        try:
            handshake_within(sock, self.handshake_timeout)
            sock.settimeout(previous)
        except (OSError, ValueError) as exc:
            peer = peer_host(str(list(client_address)[0]))
            REFUSALS("TLS handshake refused", refusal_reason(exc), describe(exc), peer)
            return False
        certificate = sock.getpeercert()
        if certificate:
            log.debug("TLS caller %s presented %s", client_address, certificate.get("subject"))
        return True


def refusal_reason(exc: BaseException) -> str:
    """The short key of a refused handshake (the metric's label, the log's reason)."""
    if isinstance(exc, TimeoutError):
        return "tls_timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "tls_untrusted_certificate"
    if isinstance(exc, ssl.SSLError) and exc.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return "tls_no_certificate"
    return "tls_handshake"


def handshake_within(sock: ssl.SSLSocket, seconds: float) -> None:
    """The server side's handshake, done within ``seconds`` in all (a socket timeout
    bounds each read only: a caller sending its hello a byte at a time would not be
    stopped by one).  Raises TimeoutError when it takes longer."""
    deadline = time.monotonic() + seconds
    sock.setblocking(False)
    while True:
        try:
            sock.do_handshake()
            return
        except ssl.SSLWantReadError:
            wanted: tuple[list[Any], list[Any]] = ([sock], [])
        except ssl.SSLWantWriteError:
            wanted = ([], [sock])
        left = deadline - time.monotonic()
        if left <= 0 or not any(select.select(*wanted, [], left)[:2]):
            raise TimeoutError(f"no TLS handshake within {seconds:g} s")


def tls_server_class(
    base: type[ThreadedAssociationServer], handshake_timeout: float
) -> type[ThreadedAssociationServer]:
    """``base`` (pynetdicom's server, or one with more checks at accept) with the
    TLS handshake of :class:`TlsHandshakeServer`."""
    if issubclass(base, TlsHandshakeServer):
        return base
    return type(
        f"Tls{base.__name__}", (TlsHandshakeServer, base),
        {"handshake_timeout": handshake_timeout},
    )


def start_tls_server(
    ae: Any, address: tuple[str, int], handlers: list[Any], context: ssl.SSLContext,
    handshake_timeout: float, base: type[ThreadedAssociationServer] = ThreadedAssociationServer,
) -> ThreadedAssociationServer:
    """Start the TLS port of ``ae`` on ``address`` (non-blocking), as
    ``AE.start_server`` starts a server, with the handshake of
    :class:`TlsHandshakeServer` over ``base``; ``AE.shutdown`` stops it too."""
    server = ae.make_server(
        address, evt_handlers=handlers, ssl_context=context,
        server_class=tls_server_class(base, handshake_timeout),
    )
    thread = threading.Thread(
        target=server.serve_forever, name=f"AcceptorServer@{address[1]}", daemon=True
    )
    thread.start()
    ae._servers.append(server)  # as AE.start_server; the server removes itself at shutdown
    return server
