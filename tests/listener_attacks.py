"""Attacks on a DICOM listener, for tests/dicom/test_hygiene.py and for figures.

Raw peers on loopback (plain sockets; a few speak just enough of PS3.8 to
associate), real dcmtk ``echoscu`` / ``storescu`` (``TCP_NODELAY=1``), and the
figures of a process from /proc.  Run as a script, each attack is made against a
fresh ``ecg-dicom serve`` and its figures printed as JSON; ``--src`` runs the
service from another source tree (an earlier version, for the "before" figures):

    git archive 47ea469^ src | tar -x -C /tmp/before
    PYTHONPATH=tests .venv/bin/python tests/listener_attacks.py idle --src /tmp/before/src
    PYTHONPATH=tests .venv/bin/python tests/listener_attacks.py idle

Attacks: ``idle`` (50 idle connections), ``trickle`` (10 connections trickling an
A-ASSOCIATE-RQ a byte every 20 s), ``stranger`` (a 300 MB PDU from an address not
allowed), ``pdata`` (an allowed, associated peer declaring a 300 MB P-DATA-TF),
``slow-pdu`` (a P-DATA-TF trickled a byte every 5 s inside an association).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from peers import dcmtk_env, require_tool

MiB = 1024 * 1024


def echoscu(port: int, host: str = "127.0.0.1", *args: str) -> tuple[int, float, str]:
    """(exit code, seconds, output) of a real dcmtk echoscu."""
    start = time.monotonic()
    run = subprocess.run([require_tool("echoscu"), *args, host, str(port)], env=dcmtk_env(),
                         capture_output=True, text=True, timeout=60, check=False)
    return run.returncode, time.monotonic() - start, run.stdout + run.stderr


def storescu(port: int, path: Path) -> tuple[int, float, str]:
    start = time.monotonic()
    run = subprocess.run([require_tool("storescu"), "127.0.0.1", str(port), str(path)],
                         env=dcmtk_env(), capture_output=True, text=True, timeout=60, check=False)
    return run.returncode, time.monotonic() - start, run.stdout + run.stderr


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def association_rq(called: str = "ANY-SCP", calling: str = "RAWPEER") -> bytes:
    """An A-ASSOCIATE-RQ proposing Verification in Implicit VR Little Endian (PS3.8 9.3.2)."""
    body = (struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode()
            + bytes(32)
            + _item(0x10, b"1.2.840.10008.3.1.1.1")
            + _item(0x20, bytes([1, 0, 0, 0]) + _item(0x30, b"1.2.840.10008.1.1")
                    + _item(0x40, b"1.2.840.10008.1.2"))
            + _item(0x50, _item(0x51, struct.pack(">L", 16384))))
    return struct.pack(">BBL", 0x01, 0, len(body)) + body


def connect(port: int, host: str = "127.0.0.1", source: str | None = None) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if source is not None:
        sock.bind((source, 0))
    sock.settimeout(30)
    sock.connect((host, port))
    return sock


def read_pdu(sock: socket.socket) -> bytes:
    """One PDU, or b"" when the listener closed the connection."""
    head = b""
    with contextlib.suppress(ConnectionResetError):
        while len(head) < 6:
            chunk = sock.recv(6 - len(head))
            if not chunk:
                return b""
            head += chunk
        body = b""
        length = struct.unpack(">L", head[2:6])[0]
        while len(body) < length:
            chunk = sock.recv(length - len(body))
            if not chunk:
                return b""
            body += chunk
        return head + body
    return b""


def closed_by_peer(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the listener closed ``sock`` (reading what it sends), or None."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return time.monotonic() - start


class Trickler(threading.Thread):
    """Sends ``data`` one byte every ``every`` seconds until the listener closes the
    connection; ``closed_after`` is then the time it took (from the first byte)."""

    def __init__(self, sock: socket.socket, data: bytes, every: float) -> None:
        super().__init__(daemon=True)
        self.sock, self.data, self.every = sock, data, every
        self.closed_after: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        for i in range(len(self.data)):
            try:
                self.sock.send(self.data[i:i + 1])
            except OSError:
                break
            if self.stop.wait(self.every):
                return
        else:
            return
        self.closed_after = time.monotonic() - start


def associate(port: int, host: str = "127.0.0.1", called: str = "ANY-SCP",
              calling: str = "RAWPEER") -> socket.socket:
    """A raw connection with an accepted association (Verification)."""
    sock = connect(port, host)
    sock.sendall(association_rq(called=called, calling=calling))
    answer = read_pdu(sock)
    if answer[:1] != b"\x02":
        sock.close()
        raise AssertionError(f"not accepted: {answer[:10]!r}")
    return sock


def flood(sock: socket.socket, total: int) -> int:
    """Send up to ``total`` zero bytes until the listener closes; returns bytes sent."""
    chunk, sent = bytes(MiB), 0
    sock.settimeout(10)
    with contextlib.suppress(OSError):
        while sent < total:
            sent += sock.send(chunk)
    return sent


def pynetdicom_echo(host: str, port: int) -> int | None:
    """C-ECHO from pynetdicom's requestor (dcmtk 3.6.7's echoscu takes no IPv6
    literal); the status, or None when no association was made."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title="V6PEER")
    ae.add_requested_context(Verification)
    assoc = ae.associate(host, port)
    if not assoc.is_established:
        return None
    try:
        return int(assoc.send_c_echo().Status)
    finally:
        assoc.release()


def peak_rss(pid: int) -> int:
    """The peak resident memory of a process, in bytes (VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) * 1024 for line in status.splitlines()
                if line.startswith("VmHWM:"))


def attackers(port: int, idle: int, trickling: int, per_host: int, every: float = 2.0
              ) -> tuple[list[socket.socket], list[Trickler]]:
    """Idle and trickling connections from 127.0.0.2, .3, ... (``per_host`` each)."""
    sources = (f"127.0.0.{2 + i // per_host}" for i in range(idle + trickling))
    idle_socks = [connect(port, source=next(sources)) for _ in range(idle)]
    tricklers = [Trickler(connect(port, source=next(sources)), association_rq(), every)
                 for _ in range(trickling)]
    for t in tricklers:
        t.start()
    return idle_socks, tricklers


# --- figures against `ecg-dicom serve` (run as a script) ---------------------------


def _probe(port: int, window: float, every: float = 0.25) -> dict[str, Any]:
    """echoscu every ``every`` s for ``window`` s: how many were served, and when."""
    start, results = time.monotonic(), []
    while (now := time.monotonic() - start) < window:
        code, seconds, out = echoscu(port)
        results.append((round(now, 2), code == 0, round(seconds, 2), out.strip()[-80:]))
        time.sleep(every)
    served = [r for r in results if r[1]]
    refused = [r for r in results if not r[1]]
    return {
        "probes": len(results), "served": len(served),
        "first_served_at_s": served[0][0] if served else None,
        "last_refused_at_s": refused[-1][0] if refused else None,
        "slowest_served_s": max((r[2] for r in served), default=None),
        "refusal": refused[-1][3] if refused else None,
    }


def _closed_times(socks: list[socket.socket], window: float) -> list[float]:
    """When (s from now) the listener closed each socket, within ``window``."""
    start, open_, closed = time.monotonic(), {s.fileno(): s for s in socks}, []
    while open_ and (left := window - (time.monotonic() - start)) > 0:
        ready, _, _ = select.select(list(open_.values()), [], [], left)
        for sock in ready:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                closed.append(round(time.monotonic() - start, 1))
                del open_[sock.fileno()]
    return closed


def run_attack(name: str, src: Path | None, window: float, same_host: bool) -> dict[str, Any]:
    from realdata import copies_with_new_uids, real_ecg_paths
    from serve_proc import ServeProcess

    work = Path(tempfile.mkdtemp(prefix=f"attack-{name}-"))
    dicom: dict[str, Any] = {"allowed_callers": [{"ae_title": "*"}]}
    if name == "stranger":
        dicom = {"allowed_callers": [{"ae_title": "*", "hosts": ["127.0.0.2"]}]}
    queue = {} if name == "sigterm" else {"workers": 0}
    serve = ServeProcess(work, {"dicom": dicom, "queue": queue}, pythonpath=src).start()
    assert serve.proc is not None
    port = serve.dicom_port
    figures: dict[str, Any] = {"attack": name, "src": str(src or "this checkout")}
    socks: list[socket.socket] = []
    try:
        peak0 = peak_rss(serve.proc.pid)
        if name in ("idle", "trickle"):
            per_host = 1000 if same_host else 4
            idle, tricklers = attackers(port, 50 if name == "idle" else 0,
                                        10 if name == "trickle" else 0, per_host, every=20.0)
            if same_host:
                for t in tricklers:
                    t.sock.close()
                idle = [connect(port) for _ in range(len(idle))]
                tricklers = [Trickler(connect(port), association_rq(), 20.0)
                             for _ in range(len(tricklers))]
                for t in tricklers:
                    t.start()
            socks = idle + [t.sock for t in tricklers]
            closer = threading.Thread(target=lambda: figures.update(
                closed_at_s=_closed_times(list(socks), window)), daemon=True)
            closer.start()
            figures.update(_probe(port, window))
            closer.join(window)
            for t in tricklers:
                t.stop.set()
        elif name in ("stranger", "pdata"):
            sock = associate(port) if name == "pdata" else connect(port)
            socks.append(sock)
            pdu_type = 0x04 if name == "pdata" else 0x01
            with contextlib.suppress(OSError):
                sock.sendall(struct.pack(">BBL", pdu_type, 0, 300 * MiB))
            start = time.monotonic()
            figures["sent_mib"] = round(flood(sock, 300 * MiB) / MiB, 1)
            figures["flood_s"] = round(time.monotonic() - start, 1)
            time.sleep(2)  # let the listener do what it does with it
            peak1 = peak_rss(serve.proc.pid)
            figures["peak_rss_growth_mib"] = round((peak1 - peak0) / MiB, 1)
            figures["served_after"] = echoscu(port)[0] == 0 if name == "pdata" else None
        elif name == "slow-pdu":
            sock = associate(port)
            socks.append(sock)
            sock.sendall(struct.pack(">BBL", 0x04, 0, 64))
            trickler = Trickler(sock, bytes(64), every=5.0)
            trickler.start()
            trickler.join(window)
            trickler.stop.set()
            figures["cut_after_s"] = (round(trickler.closed_after, 1)
                                      if trickler.closed_after is not None else None)
        elif name == "sigterm":
            [ecg] = copies_with_new_uids(real_ecg_paths()[:1], work / "ecgs", 1)
            assert storescu(port, ecg)[0] == 0
            while not any(j["state"] == "processing" for j in serve.jobs()):
                time.sleep(0.02)
            serve.proc.send_signal(15)
            start, answers = time.monotonic(), []
            while serve.proc.poll() is None:
                code, _, out = echoscu(port)
                answers.append("served" if code == 0 else "transient rejection"
                               if "Rejected Transient" in out else "no connection"
                               if "connection refused" in out.lower() else out.strip()[-60:])
                time.sleep(0.3)
            figures["exit_code"] = serve.proc.returncode
            figures["exit_s"] = round(time.monotonic() - start, 1)
            figures["answers"] = {a: answers.count(a) for a in sorted(set(answers))}
        figures["log_warnings"] = sum('"level": "WARNING"' in line
                                      for line in serve.log_path.read_text().splitlines())
    finally:
        for sock in socks:
            sock.close()
        serve.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("attack", choices=["idle", "trickle", "stranger", "pdata", "slow-pdu",
                                           "sigterm"])
    parser.add_argument("--src", type=Path, help="run ecg-dicom from this src tree")
    parser.add_argument("--window", type=float, default=70.0, help="seconds to watch")
    parser.add_argument("--same-host", action="store_true",
                        help="attack from 127.0.0.1, the probes' address, too")
    args = parser.parse_args()
    print(json.dumps(run_attack(args.attack, args.src, args.window, args.same_host)))


if __name__ == "__main__":
    main()
