"""DICOM TLS with real peers: dcmtk ``echoscu``/``storescu``/``storescp`` with ``+tls``
against a real ``ecg-dicom serve`` and against :func:`send_outputs`.

Certificates are made for the test by the ``openssl`` command line (tests/pki.py):
a test CA, this machine's certificate, a client's, and a client certificate from a
stranger CA that must be refused.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import Dataset, examples

from ecg_dicom.config import ClientTls, Destination, ListenerTls, Settings
from ecg_dicom.dicom.scu import send_outputs
from ecg_dicom.dicom.tls import check_delivery_tls, client_context, listener_context
from ecg_dicom.errors import ConfigError, DeliveryError
from ecg_dicom.pages import page_from_dataset
from ecg_dicom.records import Classification, Detection
from ecg_dicom.results import build_outputs
from peers import LOOPBACK, free_port, require_tool, run_storescp, wait_for_port
from pki import Pki, make_pki
from serve_proc import ServeProcess, run_tool

pytestmark = pytest.mark.integration

SR_STORAGE = {"1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"}
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
#: dicom.association_request_timeout of the module's service: it bounds the handshake.
HANDSHAKE_S = 2.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _listener(pki: Pki, **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "port": free_port(), "certificate": str(pki.server.cert),
            "private_key": str(pki.server.key), "client_ca": str(pki.ca),
            "require_client_certificate": True, **extra}


@pytest.fixture(scope="module")
def service(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """serve with a plain port and a TLS port that requires a client certificate;
    no workers: what arrives stays "received"."""
    work = tmp_path_factory.mktemp("svc")
    proc = ServeProcess(work, {"queue": {"workers": 0}, "dicom": {
        "tls": _listener(pki), "association_request_timeout": HANDSHAKE_S}})
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _tls_port(proc: ServeProcess) -> int:
    return int(proc.config["dicom"]["tls"]["port"])


def _echo(port: int, *tls: str) -> Any:
    return run_tool("echoscu", "-aec", "ECGDICOM", "-to", "10", "-ta", "10", "-td", "10",
                    *tls, LOOPBACK, str(port), timeout=60)


def _log_lines(proc: ServeProcess, pattern: str) -> list[str]:
    return [ln for ln in proc.log_path.read_text().splitlines() if re.search(pattern, ln)]


def test_startup_log_says_which_ports_listen_how(service: ServeProcess) -> None:
    [line] = _log_lines(service, "DICOM listener started")
    assert f"plain on {service.dicom_port}" in line
    assert f"TLS 1.2+ on {_tls_port(service)} (client certificate required)" in line


def test_echoscu_with_a_client_certificate_of_the_trusted_ca(
    service: ServeProcess, pki: Pki
) -> None:
    run = _echo(_tls_port(service), *pki.client.dcmtk(pki.ca))
    assert run.returncode == 0, run.stdout + run.stderr


def test_storescu_over_tls_is_received_and_queued(
    service: ServeProcess, pki: Pki, tmp_path: Path
) -> None:
    source = tmp_path / "ecg.dcm"
    ds = examples.waveform.copy()
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(source, enforce_file_format=True)
    before = len(service.jobs())
    run = run_tool("storescu", "-aet", "TLSSENDER", "-aec", "ECGDICOM", "-to", "10",
                   *pki.client.dcmtk(pki.ca), LOOPBACK, str(_tls_port(service)), str(source))
    assert run.returncode == 0, run.stdout + run.stderr
    jobs = service.jobs()
    assert len(jobs) == before + 1
    [job] = [j for j in jobs if j["sop_instance_uid"] == ds.SOPInstanceUID]
    assert job["calling_ae"] == "TLSSENDER" and job["state"] == "received"


def test_a_client_certificate_from_another_ca_is_refused_and_logged_once(
    service: ServeProcess, pki: Pki
) -> None:
    before = _refused(service, "tls_untrusted_certificate")
    run = _echo(_tls_port(service), *pki.stranger.dcmtk(pki.ca))
    assert run.returncode != 0
    [refusal] = _wait_for_lines(service, "tls_untrusted_certificate", 1)
    assert "TLS handshake refused from 127.0.0.1: certificate verify failed" in refusal, refusal
    assert _refused(service, "tls_untrusted_certificate") == before + 1


def test_a_caller_without_a_certificate_is_refused(service: ServeProcess, pki: Pki) -> None:
    run = _echo(_tls_port(service), "+tla", "+cf", str(pki.ca))  # anonymous TLS client
    assert run.returncode != 0
    [refusal] = _wait_for_lines(service, "tls_no_certificate", 1)
    assert "TLS handshake refused from 127.0.0.1: peer did not return a certificate" in refusal


def test_plain_and_tls_ports_side_by_side(service: ServeProcess, pki: Pki) -> None:
    assert _echo(service.dicom_port).returncode == 0  # plain DICOM on the plain port
    assert _echo(_tls_port(service)).returncode != 0  # plain DICOM on the TLS port
    assert _echo(service.dicom_port, *pki.client.dcmtk(pki.ca)).returncode != 0
    assert _echo(_tls_port(service), *pki.client.dcmtk(pki.ca)).returncode == 0


def _closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the service closes ``sock`` (reading it), at most ``limit``."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_a_silent_connection_does_not_stop_the_tls_port_and_is_closed(
    service: ServeProcess, pki: Pki
) -> None:
    """pynetdicom would make the handshake in the accepting thread, without a time
    limit: one caller that connects and says nothing would block every other caller."""
    before = _refused(service, "tls_timeout")
    silent = [socket.create_connection((LOOPBACK, _tls_port(service))) for _ in range(3)]
    try:
        started = time.monotonic()
        run = _echo(_tls_port(service), *pki.client.dcmtk(pki.ca))
        assert run.returncode == 0, run.stdout + run.stderr
        assert time.monotonic() - started < HANDSHAKE_S  # not queued behind the silent ones
        waited = [_closed_after(sock, HANDSHAKE_S + 5) for sock in silent]
        assert max(waited) < HANDSHAKE_S + 1, waited
    finally:
        for sock in silent:
            sock.close()
    # Each counted; logged once (more from the same address within 10 s are counted).
    assert _refused(service, "tls_timeout") == before + 3
    assert _wait_for_lines(service, f"no TLS handshake within {HANDSHAKE_S:g} s", 1)


def test_a_caller_trickling_its_hello_is_cut_at_the_handshake_limit(
    service: ServeProcess,
) -> None:
    """A socket timeout bounds each read only; the handshake has a limit in all."""
    hello = bytes.fromhex("16030100c8010000c40303") + bytes(32)  # a ClientHello's start
    with socket.create_connection((LOOPBACK, _tls_port(service))) as sock:
        started = time.monotonic()
        closed = False
        for byte in hello:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            sock.settimeout(0.4)  # one byte every 0.4 s: each read is quick
            try:
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed = True
                break
        took = time.monotonic() - started
    assert closed, f"still open after {took:.1f} s"
    assert HANDSHAKE_S - 0.5 < took < HANDSHAKE_S + 1.5, took


def _refused(proc: ServeProcess, reason: str) -> float:
    """ecgdicom_refused_total{reason=...} as the service's /metrics says it."""
    for line in str(proc.get("/metrics")).splitlines():
        if line.startswith(f'ecgdicom_refused_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


def _wait_for_lines(proc: ServeProcess, pattern: str, count: int,
                    timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = _log_lines(proc, pattern)
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_tls_only_listener(pki: Pki, tmp_path: Path) -> None:
    proc = ServeProcess(tmp_path, {"queue": {"workers": 0}, "dicom": {
        "listen_plain": False,
        "tls": _listener(pki, require_client_certificate=False, client_ca=None)}})
    proc.start()
    try:
        assert _echo(_tls_port(proc), "+tla", "+cf", str(pki.ca)).returncode == 0
        with pytest.raises(OSError):
            socket.create_connection((LOOPBACK, proc.dicom_port), timeout=2).close()
        [line] = _log_lines(proc, "DICOM listener started")
        assert "plain" not in line and "client certificate optional" in line
    finally:
        assert proc.stop() == 0


# --- bad certificate files stop start-up ---------------------------------------


def test_a_missing_certificate_stops_serve_with_the_file_named(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "server.pem"
    proc = ServeProcess(tmp_path, {"queue": {"workers": 0}, "dicom": {
        "tls": _listener(pki, certificate=str(missing))}})
    with pytest.raises(RuntimeError, match="serve exited with 2") as failed:
        proc.start(timeout=60)
    assert f"dicom.tls.certificate: cannot read {missing}" in str(failed.value)


@pytest.mark.parametrize("bad", ["key_is_a_cert", "ca_is_text", "client_key_missing"])
def test_unusable_files_are_config_errors_naming_them(pki: Pki, tmp_path: Path,
                                                      bad: str) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a certificate\n")
    if bad == "key_is_a_cert":
        tls = ListenerTls(enabled=True, certificate=pki.server.cert, private_key=pki.ca)
        with pytest.raises(ConfigError, match=f"private_key {pki.ca}"):
            listener_context(tls)
    elif bad == "ca_is_text":
        with pytest.raises(ConfigError, match=f"delivery.tls.ca_certificates: {text}"):
            client_context(ClientTls(ca_certificates=text))
    else:
        settings = Settings(delivery={
            "fixed_destinations": [{"ae_title": "PACS", "host": "h", "port": 1, "tls": True}],
            "tls": {"certificate": str(pki.client.cert),
                    "private_key": str(tmp_path / "gone.key")}})
        with pytest.raises(ConfigError, match="delivery.tls.private_key: cannot read"):
            check_delivery_tls(settings)


def test_an_encrypted_key_is_refused_instead_of_prompting(pki: Pki, tmp_path: Path) -> None:
    from subprocess import run

    encrypted = tmp_path / "enc.key"
    run([require_tool("openssl"), "pkey", "-in", str(pki.server.key), "-aes256",
         "-passout", "pass:x", "-out", str(encrypted)], check=True, capture_output=True,
        timeout=60)
    tls = ListenerTls(enabled=True, certificate=pki.server.cert, private_key=encrypted)
    with pytest.raises(ConfigError, match="encrypted"):
        listener_context(tls)


# --- delivery over TLS -----------------------------------------------------------


@pytest.fixture(scope="module")
def datasets() -> list[Dataset]:
    source = examples.waveform
    page = page_from_dataset(source)
    region = page.regions[1]
    result = Classification(
        label="Abnormal", class_name="MI-ECG", confidence=0.9, abnormal_score=0.9,
        detections=(Detection("MI-ECG", 0.9, (region.x0, region.y0, region.x1, region.y1)),),
        model_name="ecg-dicom YOLOv8m", model_version="ab" * 32,
    )
    out = build_outputs(source, page, result, Settings())
    return [out.sc, out.sr]  # type: ignore[list-item]


def _storescp_tls(pki: Pki, *extra: str) -> list[str]:
    """storescp +tls with our server certificate; by default it requires a client
    certificate signed by the test CA."""
    return [*pki.server.dcmtk(pki.ca), *extra]


def _deliver(datasets: list[Dataset], port: int, tls: ClientTls, host: str = LOOPBACK) -> None:
    send_outputs(datasets, Destination(ae_title="STORESCP", host=host, port=port, tls=True),
                 calling_ae="ECGDICOM", timeout=10, tls=tls)


def test_delivery_to_storescp_over_tls(pki: Pki, datasets: list[Dataset],
                                       tmp_path: Path) -> None:
    received = tmp_path / "received"
    with run_storescp(received, *_storescp_tls(pki)) as (port, _proc):
        _deliver(datasets, port, ClientTls(ca_certificates=pki.ca, certificate=pki.client.cert,
                                           private_key=pki.client.key))
    uids = {pydicom.dcmread(p).SOPInstanceUID for p in received.iterdir()}
    assert uids == {ds.SOPInstanceUID for ds in datasets}


def _failure(datasets: list[Dataset], port: int, tls: ClientTls,
             host: str = LOOPBACK) -> DeliveryError:
    with pytest.raises(DeliveryError) as failed:
        _deliver(datasets, port, tls, host)
    return failed.value


def test_an_untrusted_pacs_certificate_is_a_transient_failure_with_the_reason(
    pki: Pki, datasets: list[Dataset], tmp_path: Path
) -> None:
    with run_storescp(tmp_path / "received", *_storescp_tls(pki)) as (port, _proc):
        error = _failure(datasets, port, ClientTls(ca_certificates=pki.stranger_ca,
                                                   certificate=pki.client.cert,
                                                   private_key=pki.client.key))
    assert error.transient
    assert str(error).startswith(f"TLS handshake with STORESCP@{LOOPBACK}:{port} failed: "
                                 "certificate verify failed: "), str(error)
    assert not list((tmp_path / "received").glob("*"))


def test_the_pacs_host_name_is_checked(pki: Pki, datasets: list[Dataset],
                                       tmp_path: Path) -> None:
    """The certificate names 127.0.0.1 and localhost, not 127.0.0.2 (also this machine)."""
    trusted = {"ca_certificates": pki.ca, "certificate": pki.client.cert,
               "private_key": pki.client.key}
    received = tmp_path / "received"
    with run_storescp(received, *_storescp_tls(pki)) as (port, _proc):
        error = _failure(datasets, port, ClientTls(**trusted), host="127.0.0.2")
        assert "IP address mismatch" in str(error), str(error)
        _deliver(datasets, port, ClientTls(**trusted), host="localhost")
        _deliver(datasets, port, ClientTls(**trusted, check_hostname=False), host="127.0.0.2")
    assert len(list(received.iterdir())) == 2  # the same two objects, stored twice


def test_a_pacs_requiring_our_certificate_refuses_us_without_one(
    pki: Pki, datasets: list[Dataset], tmp_path: Path
) -> None:
    with run_storescp(tmp_path / "received", *_storescp_tls(pki)) as (port, _proc):
        error = _failure(datasets, port, ClientTls(ca_certificates=pki.ca))
    assert error.transient
    assert str(error).startswith(f"TLS handshake with STORESCP@{LOOPBACK}:{port} failed: ")


def test_tls_towards_a_plain_port_says_so(pki: Pki, datasets: list[Dataset],
                                         tmp_path: Path) -> None:
    with run_storescp(tmp_path / "received") as (port, _proc):
        error = _failure(datasets, port, ClientTls(ca_certificates=pki.ca))
    assert error.transient
    assert "TLS handshake with" in str(error), str(error)


def test_the_system_cas_are_used_without_ca_certificates() -> None:
    context = client_context(ClientTls())
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the system's CAs, not none
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str:
    """A real handshake over a socket pair; returns the version agreed."""
    left, right = socket.socketpair()
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            with server.wrap_socket(right, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ValueError) as exc:
            failures.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(left, server_hostname="localhost") as tls:
            version = str(tls.version())
            tls.sendall(b"x")
    finally:
        thread.join(10)
    assert not failures, failures
    return version


@pytest.mark.parametrize("minimum", ["1.2", "1.3"])
def test_min_version_refuses_older_callers(pki: Pki, minimum: str) -> None:
    server = listener_context(ListenerTls(enabled=True, certificate=pki.server.cert,
                                          private_key=pki.server.key, min_version=minimum))
    client = client_context(ClientTls(ca_certificates=pki.ca))
    assert _handshake(server, client) == "TLSv1.3"
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    if minimum == "1.2":
        assert _handshake(server, client) == "TLSv1.2"
    else:
        with pytest.raises(ssl.SSLError):
            _handshake(server, client)
    # Never below 1.2 (TLS 1.0/1.1: RFC 8996), whatever the caller offers.
    assert server.minimum_version >= ssl.TLSVersion.TLSv1_2


# --- the whole path over TLS: storescu +tls -> serve -> storescp +tls -----------


def test_an_ecg_sent_over_tls_is_processed_and_delivered_over_tls(
    pki: Pki, real_ecgs: list[Path], tmp_path: Path
) -> None:
    received = tmp_path / "pacs"
    with run_storescp(received, *_storescp_tls(pki)) as (pacs_port, _proc):
        proc = ServeProcess(tmp_path / "svc", {
            "dicom": {"tls": _listener(pki)},
            "delivery": {"fixed_destinations": [
                {"ae_title": "STORESCP", "host": "localhost", "port": pacs_port, "tls": True}],
                "tls": {"ca_certificates": str(pki.ca), "certificate": str(pki.client.cert),
                        "private_key": str(pki.client.key)}}})
        proc.workdir.mkdir()
        proc.start()
        try:
            wait_for_port(LOOPBACK, _tls_port(proc), 10)
            run = run_tool("storescu", "-aec", "ECGDICOM", *pki.client.dcmtk(pki.ca),
                           LOOPBACK, str(_tls_port(proc)), str(real_ecgs[0]))
            assert run.returncode == 0, run.stdout + run.stderr
            [job] = proc.wait_jobs(1)
            assert job["state"] == "done", job
            assert f"sent to STORESCP@localhost:{pacs_port}" in job["reason"]
        finally:
            assert proc.stop() == 0
    classes = sorted(str(pydicom.dcmread(p).SOPClassUID) for p in received.iterdir())
    assert len(classes) == 2 and SC_STORAGE in classes and SR_STORAGE & set(classes), classes


def test_our_certificate_and_key_for_delivery_go_together(pki: Pki) -> None:
    with pytest.raises(ValueError, match="certificate and delivery.tls.private_key go together"):
        Settings(delivery={"tls": {"certificate": str(pki.client.cert)}})


def test_an_untrusted_pacs_leaves_the_job_waiting_with_the_reason(
    pki: Pki, real_ecgs: list[Path], tmp_path: Path
) -> None:
    """The worker's view of a failed handshake: transient, the reason in the job."""
    with run_storescp(tmp_path / "pacs", *pki.stranger.dcmtk(pki.ca)) as (pacs_port, _proc):
        proc = ServeProcess(tmp_path / "svc", {
            "delivery": {"fixed_destinations": [
                {"ae_title": "STORESCP", "host": LOOPBACK, "port": pacs_port, "tls": True}],
                "tls": {"ca_certificates": str(pki.ca)}}})
        proc.workdir.mkdir()
        proc.start()
        try:
            run = run_tool("storescu", "-aec", "ECGDICOM", LOOPBACK, str(proc.dicom_port),
                           str(real_ecgs[0]))
            assert run.returncode == 0, run.stdout + run.stderr
            [job] = proc.wait_jobs(1, states=("waiting", "failed", "done"))
        finally:
            assert proc.stop() == 0
    assert job["state"] == "waiting", job
    assert (f"TLS handshake with STORESCP@{LOOPBACK}:{pacs_port} failed: certificate verify "
            "failed: ") in job["reason"], job["reason"]
    assert not list((tmp_path / "pacs").glob("*.dcm*"))
