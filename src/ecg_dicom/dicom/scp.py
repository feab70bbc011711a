"""The DICOM listener: C-ECHO and C-STORE for ECG waveforms and ECG images.

Its parts, one module each:

* who may associate, decided when the association is requested
  (:mod:`ecg_dicom.dicom.association`: ``dicom.allowed_callers``, A-ASSOCIATE-RJ);
* what each received object is (:mod:`ecg_dicom.dicom.ingest`: its header checked
  against its SOP class; AI results, ours or another's, recognised);
* the C-STORE handler that spools, records, queues and only then answers
  (:mod:`ecg_dicom.dicom.store`);
* DICOM TLS on a port of its own, beside the plain one or alone
  (:mod:`ecg_dicom.dicom.tls`: ``dicom.tls``, ``dicom.listen_plain``);
* here, the listener's life: the pynetdicom AE, its presentation contexts, start
  and shutdown.

What is processed is decided per object, never by refusing an association: every
storage SOP class is accepted at negotiation (sop.STORAGE_SOP_CLASSES), so that a
PACS sending a whole study (the ECG beside earlier SR, SC, KO, PR...) gets the
association and its ECG through; "send study" otherwise fails as a whole.

Received data sets are written by pynetdicom straight into the spool's ``tmp/``
folder, into the files of :mod:`ecg_dicom.dicom.receive` (a full disk is answered
0xA700, a transfer cut short leaves no file):
:func:`ecg_dicom.startup.configure_receiving` makes that process-wide setting
once, with :attr:`StorageSCP.received_files`, before :meth:`StorageSCP.start`.
"""

from __future__ import annotations

import logging
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from ecg_dicom.config import Settings
from ecg_dicom.dicom.association import AssociationGate, on_rejected
from ecg_dicom.dicom.guard import GuardedServer, serve
from ecg_dicom.dicom.receive import ReceivedFiles
from ecg_dicom.dicom.store import StoreHandler
from ecg_dicom.dicom.tls import listener_context, start_tls_server
from ecg_dicom.errors import StoreStatus
from ecg_dicom.jobs import JobQueue, Spool
from ecg_dicom.sop import STORAGE_SOP_CLASSES, transfer_syntaxes_for

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.scp")


class StorageSCP:
    """The listener: owns the pynetdicom AE and its event handlers."""

    def __init__(self, settings: Settings, spool: Spool, queue: JobQueue) -> None:
        self.settings = settings
        self.server: ThreadedAssociationServer | None = None
        #: Every port listening: the plain one, the TLS one (dicom.listen_plain, dicom.tls).
        self.servers: list[ThreadedAssociationServer] = []
        tls = settings.dicom.tls
        # Built here so that a bad certificate or key stops start-up before anything runs.
        self.tls_context = listener_context(tls) if tls.enabled else None
        self.gate = AssociationGate(settings.dicom.allowed_callers)
        #: The server of every port: the connection hygiene of dicom/guard.py.
        self.server_class = GuardedServer.configured(settings.dicom)
        #: The files pynetdicom receives data sets into (installed by
        #: :func:`ecg_dicom.startup.configure_receiving`), removed if a transfer is cut short.
        self.received_files = ReceivedFiles(spool)
        self.store = StoreHandler(settings, spool, queue, self.received_files)
        ae = AE(ae_title=settings.dicom.ae_title)
        ae.maximum_associations = settings.dicom.max_associations
        ae.maximum_pdu_size = settings.dicom.max_pdu_size
        ae.acse_timeout = settings.dicom.acse_timeout
        ae.dimse_timeout = settings.dicom.dimse_timeout
        ae.network_timeout = settings.dicom.network_timeout
        ae.require_called_aet = settings.dicom.require_called_ae_title
        ae.add_supported_context(Verification)
        # Every storage class (see the module docstring); the ECG inputs with the
        # transfer syntaxes we decode, the others with any (never decoded).
        for sop_class in STORAGE_SOP_CLASSES:
            ae.add_supported_context(sop_class, list(transfer_syntaxes_for(sop_class)))
        self.ae = ae

    def start(self) -> int:
        """Start listening (non-blocking) on the plain port and/or the TLS port, with
        the same handlers; returns the first bound port (the plain one if any)."""
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self.gate.on_requested),
            (evt.EVT_REJECTED, on_rejected),
            (evt.EVT_C_ECHO, _on_echo),
            (evt.EVT_C_STORE, self.store),
            (evt.EVT_CONN_CLOSE, self.received_files.on_ended),
            (evt.EVT_ABORTED, self.received_files.on_ended),
        ]
        dicom = self.settings.dicom
        ports: dict[str, int] = {}
        if dicom.listen_plain:
            server = serve(self.ae, (dicom.bind_address, dicom.port), handlers, self.server_class)
            self.servers.append(server)
            ports["port"] = int(server.server_address[1])
        if self.tls_context is not None:
            server = start_tls_server(
                self.ae, (dicom.bind_address, dicom.tls.port), handlers, self.tls_context,
                dicom.association_request_timeout, base=self.server_class,
            )
            self.servers.append(server)
            ports["tls_port"] = int(server.server_address[1])
        self.server = self.servers[0]
        how = [f"plain on {ports['port']}"] if "port" in ports else []
        if "tls_port" in ports:
            callers = ("client certificate required" if dicom.tls.require_client_certificate
                       else "client certificate optional")
            how.append(f"TLS {dicom.tls.min_version}+ on {ports['tls_port']} ({callers})")
        log.info(
            "DICOM listener started: %s", ", ".join(how),
            extra={"ae_title": dicom.ae_title, **ports},
        )
        return int(self.server.server_address[1])

    def stop_accepting(self) -> None:
        """Refuse new associations; running ones finish."""
        self.gate.close()

    def shutdown(self) -> None:
        """Stop every port."""
        for server in self.servers:
            server.shutdown()
        self.servers = []
        self.server = None


def _on_echo(event: Any) -> int:
    return StoreStatus.SUCCESS  # 0x0000 is Success in every DIMSE service
