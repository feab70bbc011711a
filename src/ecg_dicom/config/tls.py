"""DICOM TLS (PS3.15 B.1, the BCP 195 profile): the listener's TLS port and the
certificates used when delivering to a destination marked ``tls: true``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ecg_dicom.config.base import Section


class ListenerTls(Section):
    """TLS on a port of its own (``dicom.listen_plain`` keeps or drops the plain one).

    A caller has ``dicom.association_request_timeout`` seconds for the handshake; a
    refused handshake is logged once with its reason.  The files are read at start:
    one that is missing or not PEM stops start-up, naming it."""

    enabled: bool = False
    #: 2762 is the port IANA registered for DICOM over TLS.
    port: int = Field(2762, ge=1, le=65535)
    #: PEM certificate (chain) and unencrypted private key of this service.
    certificate: Path | None = None
    private_key: Path | None = None
    #: PEM file of the CAs whose client certificates are accepted (a certificate a
    #: caller presents is checked against it even when none is required).
    client_ca: Path | None = None
    #: Refuse a caller that presents no certificate signed by client_ca.
    require_client_certificate: bool = False
    min_version: Literal["1.2", "1.3"] = "1.2"


class ClientTls(Section):
    """What we present and trust when we call a destination over TLS (``tls: true``).

    A failed handshake is a transient delivery failure whose reason names it."""

    #: PEM file of the CAs that sign the destinations' certificates (none: the system's).
    ca_certificates: Path | None = None
    #: Our own certificate and unencrypted key, for destinations that ask for one.
    certificate: Path | None = None
    private_key: Path | None = None
    #: Check that the destination's certificate names its ``host``.
    check_hostname: bool = True
    min_version: Literal["1.2", "1.3"] = "1.2"
