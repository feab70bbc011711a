"""Real DICOM peers for tests: dcmtk tools started as processes on loopback.

Every peer gets its own free port, and tests wait until the port accepts a
connection (polling, bounded by a timeout) instead of sleeping.  A missing
tool FAILS the test (never skips it): the proof these tests give depends on it.
dcmtk tools run with ``TCP_NODELAY=1`` (dcmtk otherwise delays small PDUs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"


def require_tool(name: str) -> str:
    """The path of an external tool; fails the calling test when it is missing.

    The virtual environment's own ``bin`` is not searched: pynetdicom installs
    console scripts named like dcmtk's (``storescp``, ``echoscp``) that take
    other arguments.
    """
    venv_bin = (Path(sys.prefix) / "bin").resolve()
    search = os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and Path(d).resolve() != venv_bin
    )
    path = shutil.which(name, path=search)
    if path is None:
        pytest.fail(
            f"{name} is not installed: install Debian packages dcmtk and dicom3tools",
            pytrace=False,
        )
    return path


def dcmtk_env() -> dict[str, str]:
    """The environment for dcmtk tools (TCP_NODELAY=1)."""
    return {**os.environ, "TCP_NODELAY": "1"}


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Return as soon as ``host:port`` accepts a TCP connection.

    Raises TimeoutError after ``timeout`` seconds, and RuntimeError at once if
    ``proc`` (the process expected to listen) has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the peer exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s") from None
            time.sleep(0.02)  # poll interval, not a readiness guess


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def run_storescp(
    out_dir: Path,
    *extra_args: str,
    aetitle: str = "STORESCP",
    startup_timeout: float = 15.0,
    port: int | None = None,
    accept_all: bool = True,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A dcmtk ``storescp`` writing what it receives into ``out_dir``.

    Yields ``(port, process)`` once the port accepts connections; stops the
    process on exit.  ``extra_args`` go to storescp (e.g. ``"--refuse"``, or
    ``"-xf", CONFIG, PROFILE`` with ``accept_all=False`` to accept only what a
    negotiation profile lists); ``port`` picks the port (default: a free one).
    """
    exe = require_tool("storescp")
    out_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args: Sequence[str] = [
        exe, "--aetitle", aetitle, "--output-directory", str(out_dir),
        *(["--accept-all"] if accept_all else []), "--disable-host-lookup", *extra_args,
        str(port),
    ]
    log_path = out_dir.parent / f"storescp-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=dcmtk_env())
    try:
        wait_for_port(LOOPBACK, port, startup_timeout, proc)
        yield port, proc
    finally:
        _stop(proc)


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) that dciodvfy (dicom3tools) reports for a file."""
    exe = require_tool("dciodvfy")
    run = subprocess.run([exe, str(path)], capture_output=True, text=True, env=dcmtk_env(),
                         check=False, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    return ([ln for ln in lines if ln.startswith("Error")],
            [ln for ln in lines if ln.startswith("Warning")])
