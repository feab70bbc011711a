"""The whole path over DICOM TLS with a TLS-only Orthanc: Orthanc sends a real ECG to
ecg-dicom's TLS port (which requires a client certificate of the test CA), and
ecg-dicom delivers the SR and SC to Orthanc's TLS port; they appear in the study.

Orthanc's DICOM port speaks only TLS (``DicomTlsEnabled``) and requires the
caller's certificate (``DicomTlsRemoteCertificateRequired``); ``UseDicomTls`` makes
it call ecg-dicom over TLS.  Certificates: tests/pki.py (the ``openssl`` command line).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from orthanc import run_orthanc
from peers import LOOPBACK, free_port
from pki import make_pki
from serve_proc import ServeProcess, run_tool

pytestmark = pytest.mark.e2e

SR_STORAGE = {"1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"}
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"


def test_a_tls_only_orthanc_gets_sr_and_sc_in_the_study(
    tmp_path: Path, real_ecgs: list[Path]
) -> None:
    pki = make_pki(tmp_path / "pki")
    tls_port = free_port()
    orthanc_tls = {
        "DicomTlsEnabled": True,
        # Orthanc presents the certificate for 127.0.0.1, as server and as client.
        "DicomTlsCertificate": str(pki.server.cert),
        "DicomTlsPrivateKey": str(pki.server.key),
        "DicomTlsTrustedCertificates": str(pki.ca),
        "DicomTlsRemoteCertificateRequired": True,
    }
    modalities = {"ecgdicom": {"AET": "ECGDICOM", "Host": LOOPBACK, "Port": tls_port,
                               "UseDicomTls": True}}
    with run_orthanc(tmp_path / "orthanc", modalities, extra=orthanc_tls) as orthanc:
        # Orthanc's DICOM port is TLS only: a plain echo fails, one with our client
        # certificate succeeds.
        plain = run_tool("echoscu", "-to", "10", LOOPBACK, str(orthanc.dicom_port))
        assert plain.returncode != 0
        echo = run_tool("echoscu", "-to", "10", *pki.client.dcmtk(pki.ca),
                        LOOPBACK, str(orthanc.dicom_port))
        assert echo.returncode == 0, echo.stdout + echo.stderr

        config = {
            "dicom": {"listen_plain": False, "tls": {
                "enabled": True, "port": tls_port,
                "certificate": str(pki.server.cert), "private_key": str(pki.server.key),
                "client_ca": str(pki.ca), "require_client_certificate": True}},
            "delivery": {
                "destinations": {"ORTHANC": {"ae_title": "ORTHANC", "host": LOOPBACK,
                                             "port": orthanc.dicom_port, "tls": True}},
                "tls": {"ca_certificates": str(pki.ca), "certificate": str(pki.client.cert),
                        "private_key": str(pki.client.key)}},
        }
        service = ServeProcess(tmp_path / "svc", config)
        service.workdir.mkdir()
        service.start()
        try:
            source_path = real_ecgs[0]
            orthanc.send_to("ecgdicom", orthanc.upload(source_path))
            [job] = service.wait_jobs(1)
            assert job["state"] == "done", job
            assert job["calling_ae"] == "ORTHANC"
            assert f"sent to ORTHANC@{LOOPBACK}:{orthanc.dicom_port}" in job["reason"]
            source = pydicom.dcmread(source_path, stop_before_pixels=True)
            study = orthanc.instances_of_study(str(source.StudyInstanceUID))
            classes = sorted(i["SOPClassUID"] for i in study)
            assert len(study) == 3, classes  # the ECG, its SC and its SR
            [sr] = [i for i in study if i["SOPClassUID"] in SR_STORAGE]
            [sc] = [i for i in study if i["SOPClassUID"] == SC_STORAGE]
            assert sr["PatientID"] == sc["PatientID"] == str(source.PatientID)
        finally:
            assert service.stop() == 0
