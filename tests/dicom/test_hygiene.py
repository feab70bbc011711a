"""Connection hygiene at the listener (issue 12, item 1), with real peers on loopback.

The attacks of the issue, against the real listener: idle and trickling TCP
connections, a stranger's 300 MB PDU, a PDU trickled a byte at a time inside an
association; and what must still work meanwhile: dcmtk ``echoscu`` / ``storescu``
(``TCP_NODELAY=1``), IPv6 and IPv4 on a dual-stack ``"::"`` listener, the
transient rejection while the service stops.  Each refusal is logged once.

Most tests run the listener in-process (:class:`StorageSCP` with a real spool, a
queue that records); the stranger's big PDU and the storescu under attack run
against ``ecg-dicom serve`` as a process (:class:`ServeProcess`), whose memory and
bytes read are measured from /proc.  Raw peers are plain sockets; a few speak
just enough of the upper layer (PS3.8) to associate.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from ecg_dicom.config import Settings
from ecg_dicom.dicom import StorageSCP
from ecg_dicom.dicom.association import REFUSALS, peer_host
from ecg_dicom.jobs import JobQueue, Spool
from listener_attacks import (
    MiB,
    Trickler,
    associate,
    association_rq,
    attackers,
    closed_by_peer,
    connect,
    echoscu,
    flood,
    peak_rss,
    pynetdicom_echo,
    read_pdu,
    storescu,
)
from peers import free_port
from realdata import copies_with_new_uids, real_ecg_paths
from serve_proc import ServeProcess

pytestmark = pytest.mark.integration


class RecordingQueue:
    def __init__(self) -> None:
        self.queued: list[str] = []

    def enqueue(self, job_id: str, delay: float | None = None) -> None:
        self.queued.append(job_id)


@contextlib.contextmanager
def listener(tmp_path: Path, **dicom: Any) -> Iterator[tuple[StorageSCP, int]]:
    """The real listener in-process on a free port, with ``dicom`` settings."""
    settings = Settings(dicom={"port": free_port(), **dicom})
    scp = StorageSCP(settings, Spool(tmp_path / "spool", fsync=False),
                     cast(JobQueue, RecordingQueue()))
    port = scp.start()
    try:
        yield scp, port
    finally:
        scp.shutdown()


@pytest.fixture(autouse=True)
def fresh_refusals() -> None:
    """Each test sees its own first refusals (the log is quiet on repeats)."""
    REFUSALS.forget()


def refusals(caplog: pytest.LogCaptureFixture, reason: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "ecg_dicom.scp" and getattr(r, "reason", None) == reason]


def test_peer_addresses_compare_as_ip_addresses() -> None:
    assert peer_host("::ffff:127.0.0.1") == "127.0.0.1"
    assert peer_host("0:0:0:0:0:0:0:1") == "::1"
    assert peer_host(" 10.0.0.7 ") == "10.0.0.7"
    assert peer_host("pacs.example") == "pacs.example"


def test_idle_and_trickling_connections_keep_no_caller_out(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """50 idle TCP connections and 10 trickling an A-ASSOCIATE-RQ a byte a second
    (before: every echo refused "local limit exceeded" for 60 s, the tricklers never
    closed): a real echoscu is served within a second, and the listener closes them
    all at dicom.association_request_timeout."""
    with listener(tmp_path, association_request_timeout=3.0, max_connections_per_host=100,
                  max_associations=10) as (scp, port):
        idle = [connect(port) for _ in range(50)]
        trickling = [Trickler(connect(port), association_rq(), every=1.0) for _ in range(10)]
        for t in trickling:
            t.start()
        try:
            for _ in range(3):
                code, seconds, out = echoscu(port)
                assert code == 0, out
                assert seconds < 1.0, f"echo took {seconds:.2f} s with 60 connections open"
            for sock in idle:
                waited = closed_by_peer(sock, timeout=10)
                assert waited is not None and waited < 4.0, "an idle connection stayed open"
            for t in trickling:
                t.join(10)
                assert t.closed_after is not None and t.closed_after < 4.5
            assert len(refusals(caplog, "request_timeout")) == 1  # same peer: once, then counted
        finally:
            for t in trickling:
                t.stop.set()
                t.sock.close()
            for sock in idle:
                sock.close()
        assert _released(scp)


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _released(scp: StorageSCP, timeout: float = 10.0) -> bool:
    """Whether every connection the listener counted has been let go."""
    return _wait(lambda: all(not s.table.per_host for s in scp.servers),  # type: ignore[attr-defined]
                 timeout)


def test_per_host_limit_refuses_at_accept_transiently(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An address holding dicom.max_connections_per_host connections gets the next one
    refused at once (A-ASSOCIATE-RJ transient, local limit exceeded); other addresses
    are served meanwhile, and the address again once its connections are gone."""
    callers = [{"ae_title": "*", "hosts": ["127.0.0.1", "127.0.0.2"]}]
    with listener(tmp_path, max_connections_per_host=3, allowed_callers=callers) as (scp, port):
        held = [connect(port, source="127.0.0.2") for _ in range(3)]
        try:
            with connect(port, source="127.0.0.2") as fourth:
                fourth.sendall(association_rq())
                # rejected-transient (2), service-provider presentation (3), local limit (2)
                assert read_pdu(fourth) == bytes([0x03, 0, 0, 0, 0, 4, 0, 2, 3, 2])
            code, _, out = echoscu(port)  # from 127.0.0.1: its own count
            assert code == 0, out
        finally:
            for sock in held:
                sock.close()
        assert _released(scp)
        with connect(port, source="127.0.0.2") as again:
            again.sendall(association_rq())
            assert read_pdu(again)[0] == 0x02  # A-ASSOCIATE-AC
        [line] = refusals(caplog, "host_limit")
        assert line.levelno == logging.WARNING and line.peer == "127.0.0.2"  # type: ignore[attr-defined]
        assert "max_connections_per_host" in line.getMessage()


def test_stranger_is_refused_at_accept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An address no allowed_callers entry names gets A-ASSOCIATE-RJ (calling AE not
    recognised) before anything is read: dcmtk reports the rejection, not a reset."""
    callers = [{"ae_title": "*", "hosts": ["127.0.0.2"]}]
    with listener(tmp_path, allowed_callers=callers) as (_, port):
        code, _, out = echoscu(port)
        assert code != 0
        assert "Association Rejected" in out and "Calling AE Title Not Recognized" in out, out
        [line] = refusals(caplog, "address")
        assert line.peer == "127.0.0.1" and "allowed_callers" in line.getMessage()  # type: ignore[attr-defined]


def test_pdu_trickled_inside_an_association_is_cut_at_pdu_timeout(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A P-DATA-TF trickled a byte every 0.5 s (each byte resets pynetdicom's
    network_timeout, here 60 s) is cut off dicom.pdu_timeout (2 s) after it began;
    the association ends and its slot and per-host count are free again."""
    with listener(tmp_path, pdu_timeout=2.0, network_timeout=60.0) as (scp, port):
        with associate(port) as sock:
            sock.sendall(struct.pack(">BBL", 0x04, 0, 64))  # the header at once, then its body
            trickler = Trickler(sock, bytes(64), every=0.5)
            trickler.start()
            trickler.join(15)
            assert trickler.closed_after is not None, "the trickler was never cut off"
            assert 2.0 <= trickler.closed_after < 4.0
        assert _released(scp)
        code, _, out = echoscu(port)
        assert code == 0, out
    [line] = refusals(caplog, "stalled_pdu")
    assert line.levelno == logging.WARNING and "pdu_timeout" in line.getMessage()


def test_oversized_pdata_is_cut_without_reading_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A P-DATA-TF declaring more than the dicom.max_pdu_size we announced is cut at
    its header."""
    with listener(tmp_path, max_pdu_size=16384) as (_, port), associate(port) as sock:
        sock.sendall(struct.pack(">BBL", 0x04, 0, 300 * MiB))
        sent = flood(sock, 300 * MiB)
        assert sent < 32 * MiB, f"{sent / MiB:.0f} MiB went in before the cut"
    [line] = refusals(caplog, "pdu_too_large")
    assert "max_pdu_size" in line.getMessage()


@pytest.mark.parametrize(("first", "reason"), [
    (struct.pack(">BBL", 0x04, 0, 300 * MiB), "not_a_request"),  # P-DATA before associating
    (struct.pack(">BBL", 0x01, 0, 300 * MiB), "request_too_large"),
])
def test_huge_first_pdu_gets_an_abort_unread(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                             first: bytes, reason: str) -> None:
    with listener(tmp_path) as (_, port), connect(port) as sock:
        sock.sendall(first)
        assert read_pdu(sock)[:1] == b"\x07"  # A-ABORT
        assert flood(sock, 300 * MiB) < 32 * MiB
    assert len(refusals(caplog, reason)) == 1


def test_dual_stack_listener_serves_ipv6_and_ipv4_with_the_default_allow_list(
        tmp_path: Path) -> None:
    """bind_address "::": ::1 and 127.0.0.1 both served; the default allow-list
    entries ("127.0.0.1", "::1") match, the IPv4 caller seen as ::ffff:127.0.0.1."""
    with listener(tmp_path, bind_address="::") as (scp, port):
        assert scp.server is not None and scp.server.socket is not None
        assert scp.server.socket.family == socket.AF_INET6
        assert pynetdicom_echo("::1", port) == 0
        code, _, out = echoscu(port, "127.0.0.1")
        assert code == 0, out


def test_dual_stack_allow_list_compares_ipv4_mapped_addresses(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    callers = [{"ae_title": "*", "hosts": ["127.0.0.1"]}]
    with listener(tmp_path, bind_address="::", allowed_callers=callers) as (_, port):
        code, _, out = echoscu(port, "127.0.0.1")
        assert code == 0, out
        assert pynetdicom_echo("::1", port) is None
    [line] = refusals(caplog, "address")
    assert line.peer == "::1"  # type: ignore[attr-defined]


def test_listener_on_a_specific_ipv6_address(tmp_path: Path) -> None:
    with listener(tmp_path, bind_address="::1") as (_, port):
        assert pynetdicom_echo("::1", port) == 0


def test_every_rejection_at_association_is_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The calling AE title (ours), the called AE title and the association limit
    (pynetdicom's own rejections, before: not logged at all), and the shutdown: one
    WARNING line each, with the reason and the peer; echoscu sees each rejection."""
    callers = [{"ae_title": "ECHOSCU", "hosts": ["127.0.0.1"]}]
    with listener(tmp_path, allowed_callers=callers, require_called_ae_title=True,
                  max_associations=1) as (scp, port):
        code, _, out = echoscu(port, "127.0.0.1", "-aet", "STRANGER", "-aec", "ECGDICOM")
        assert code != 0 and "Calling AE Title Not Recognized" in out, out
        code, _, out = echoscu(port, "127.0.0.1", "-aec", "SOMEONE")
        assert code != 0 and "Called AE Title Not Recognized" in out, out
        _wait(lambda: not scp.ae.active_associations)  # the rejected ones have ended
        with associate(port, called="ECGDICOM", calling="ECHOSCU"):  # the one association allowed
            code, _, out = echoscu(port, "127.0.0.1", "-aec", "ECGDICOM")
            assert code != 0 and "Local Limit Exceeded" in out, out
        scp.stop_accepting()
        code, _, out = echoscu(port, "127.0.0.1", "-aec", "ECGDICOM")
        assert code != 0 and "Rejected Transient" in out and "Temporary Congestion" in out, out
    for reason in ("calling_ae", "called_ae", "association_limit", "shutting_down"):
        [line] = refusals(caplog, reason)
        assert line.levelno == logging.WARNING and line.peer == "127.0.0.1"  # type: ignore[attr-defined]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 4, [r.getMessage() for r in warnings]


# --- against `ecg-dicom serve` as a process -------------------------------------


def test_storescu_served_within_a_second_while_sixty_connections_stall(tmp_path: Path) -> None:
    """``ecg-dicom serve`` with the default hygiene settings; 50 idle connections and 10
    trickling an A-ASSOCIATE-RQ a byte every 2 s, from allowed addresses (4 per
    address, the default per-host limit): a real storescu sends a real ECG within a
    second, and every attacking connection is closed at the 5 s request timeout."""
    serve = ServeProcess(tmp_path, {"dicom": {"allowed_callers": [{"ae_title": "*"}]},
                                    "queue": {"workers": 0}}).start()
    ecg = copies_with_new_uids(real_ecg_paths()[:1], tmp_path / "ecgs", 3)
    try:
        opened = time.monotonic()
        idle, tricklers = attackers(serve.dicom_port, 50, 10, per_host=4)
        try:
            for path in ecg:
                code, seconds, out = storescu(serve.dicom_port, path)
                assert code == 0, out
                assert seconds < 1.0, f"storescu took {seconds:.2f} s"
            assert time.monotonic() - opened < 5.0, "the attack was over before the sends"
            for sock in idle:
                waited = closed_by_peer(sock, timeout=15)
                assert waited is not None, "an idle connection was never closed"
                assert time.monotonic() - opened < 8.0
            for t in tricklers:
                t.join(15)
                assert t.closed_after is not None and t.closed_after < 8.0
        finally:
            for t in tricklers:
                t.stop.set()
                t.sock.close()
            for sock in idle:
                sock.close()
        assert len(serve.jobs()) == 3
    finally:
        assert serve.stop() == 0


def test_strangers_300_mb_pdu_costs_the_listener_nothing(tmp_path: Path) -> None:
    """A caller from an address not in allowed_callers sends a 300 MB PDU (before:
    read whole, +545 MiB; +606 MiB measured): refused at accept with an
    A-ASSOCIATE-RJ, nothing read: the caller cannot send more than the sockets'
    buffers hold, and the listener's peak memory does not move."""
    serve = ServeProcess(tmp_path, {"dicom": {"allowed_callers": [{"hosts": ["127.0.0.2"]}]},
                                    "queue": {"workers": 0}}).start()
    try:
        assert serve.proc is not None
        peak_before = peak_rss(serve.proc.pid)
        with connect(serve.dicom_port) as sock:  # from 127.0.0.1
            with contextlib.suppress(OSError):
                sock.sendall(struct.pack(">BBL", 0x01, 0, 300 * MiB))
            sent = flood(sock, 300 * MiB)
            answer = read_pdu(sock)
        peak_after = peak_rss(serve.proc.pid)
        assert answer in (b"", bytes([0x03, 0, 0, 0, 0, 4, 0, 1, 1, 3]))
        assert sent < 32 * MiB, f"{sent / MiB:.0f} MiB accepted"
        assert peak_after - peak_before < 8 * MiB
        assert "address not in allowed_callers" in serve.log()
    finally:
        assert serve.stop() == 0


def test_after_sigterm_new_callers_get_a_transient_rejection(tmp_path: Path) -> None:
    """SIGTERM while a job is processing (before: the port closed at once, new callers
    got a refused connection): while the job finishes, echoscu gets A-ASSOCIATE-RJ
    transient "temporary congestion", as documented; then the service exits 0 with
    the job done."""
    serve = ServeProcess(tmp_path, {}).start()
    try:
        assert serve.proc is not None
        [ecg] = copies_with_new_uids(real_ecg_paths()[:1], tmp_path / "ecgs", 1)
        code, _, out = storescu(serve.dicom_port, ecg)
        assert code == 0, out
        deadline = time.monotonic() + 60
        while not any(j["state"] == "processing" for j in serve.jobs()):
            assert time.monotonic() < deadline, serve.jobs()
            time.sleep(0.02)
        serve.proc.send_signal(15)  # SIGTERM
        # The signal is handled asynchronously: the handler closes the gate, then logs.
        while "signal SIGTERM: shutting down" not in serve.log_path.read_text():
            assert time.monotonic() < deadline, "SIGTERM not handled"
            time.sleep(0.02)
        code, _, out = echoscu(serve.dicom_port)
        assert code != 0 and "Rejected Transient" in out and "Temporary Congestion" in out, out
        assert serve.proc.wait(120) == 0
        assert "the service is shutting down" in serve.log_path.read_text()
        assert [j["state"] for j in _ledger_states(serve)] == ["done"]
    finally:
        serve.kill()  # a failed check must not leave the service running


def _ledger_states(serve: ServeProcess) -> list[dict[str, Any]]:
    """The jobs in the ledger of a stopped service (read with a fresh Spool)."""
    return [{"state": job.state.value} for job in Spool(serve.spool_dir, fsync=False).list_jobs()]


def test_the_tls_port_has_the_same_hygiene(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """The TLS port is the same guarded server under the TLS handshake: the per-host
    limit at accept, and a P-DATA-TF trickled inside a TLS association cut at
    dicom.pdu_timeout (the reads of the TLS socket are clocked too)."""
    import ssl

    from pki import make_pki

    pki = make_pki(tmp_path / "pki")
    tls = {"enabled": True, "port": free_port(), "certificate": str(pki.server.cert),
           "private_key": str(pki.server.key)}
    client = ssl.create_default_context(cafile=str(pki.ca))
    with listener(tmp_path, tls=tls, listen_plain=False, pdu_timeout=2.0,
                  max_connections_per_host=2) as (scp, port):
        assert port == tls["port"]
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(client.wrap_socket(connect(port),
                                                          server_hostname="localhost"))
            sock.sendall(association_rq())
            assert read_pdu(sock)[:1] == b"\x02"  # A-ASSOCIATE-AC over TLS
            stack.enter_context(connect(port))  # the second connection from 127.0.0.1
            third = stack.enter_context(connect(port))
            assert closed_by_peer(third, timeout=5) is not None  # refused at accept
            sock.sendall(struct.pack(">BBL", 0x04, 0, 64))
            trickler = Trickler(sock, bytes(64), every=0.5)
            trickler.start()
            trickler.join(15)
            assert trickler.closed_after is not None and 2.0 <= trickler.closed_after < 4.0
        assert _released(scp)
    assert len(refusals(caplog, "host_limit")) == 1
    assert len(refusals(caplog, "stalled_pdu")) == 1


def test_each_association_gets_its_own_copy_of_the_contexts_quickly(tmp_path: Path) -> None:
    """pynetdicom deep-copies the supported contexts for every association (before:
    0.4-0.9 s of CPU for our 171); the quick copy is equal, and shares no list."""
    import copy

    with listener(tmp_path) as (scp, _):
        assert scp.server is not None
        contexts = scp.server.contexts
        start = time.process_time()
        copied = copy.deepcopy(contexts)
        assert time.process_time() - start < 0.1
    assert [(c.abstract_syntax, c.transfer_syntax, c.scu_role, c.scp_role) for c in copied] \
        == [(c.abstract_syntax, c.transfer_syntax, c.scu_role, c.scp_role) for c in contexts]
    assert all(a is not b and a.transfer_syntax is not b.transfer_syntax
               for a, b in zip(copied, contexts, strict=True))
    assert sum(len(c.transfer_syntax) for c in contexts) > 1000


def _pynetdicom_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("pynetdicom")]


def test_garbage_inside_an_association_is_one_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """4 KiB of zeros after the association (fuzz finding: ~700 ERROR lines "Unknown PDU
    type received '0x00'" from pynetdicom, one per 6 bytes): cut at the first header,
    one WARNING line of ours, nothing from pynetdicom."""
    with listener(tmp_path) as (_, port), associate(port) as sock:
        sock.sendall(bytes(4096))
        assert closed_by_peer(sock, timeout=10) is not None
    [line] = refusals(caplog, "bad_pdu")
    assert "unknown PDU type 0x00" in line.getMessage()
    assert _pynetdicom_lines(caplog) == []


def test_a_command_set_pynetdicom_cannot_decode_is_a_few_lines_without_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A P-DATA-TF whose command set is 8 zero bytes kills pynetdicom's reader thread
    (fuzz finding: tracebacks in the log and raw on stderr): one refusal line of ours
    (protocol_error), at most a few pynetdicom lines, no traceback; the listener serves on."""
    pdv = struct.pack(">LBB", 2 + 8, 1, 0x03) + bytes(8)  # context 1, command, last fragment
    with listener(tmp_path) as (_, port):
        with associate(port) as sock:
            sock.sendall(struct.pack(">BBL", 0x04, 0, len(pdv)) + pdv)
            assert closed_by_peer(sock, timeout=10) is not None
        code, _, out = echoscu(port)
        assert code == 0, out
    [line] = refusals(caplog, "protocol_error")
    assert "could not handle what the peer sent" in line.getMessage()
    noise = _pynetdicom_lines(caplog)
    assert len(noise) <= 3 and not any(r.exc_info for r in noise), [r.getMessage() for r in noise]
