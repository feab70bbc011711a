"""Running mutants against a real ``ecg-dicom serve`` and the CLI, and what came of it.

* :func:`send_mutants`: a scripted SCU (pynetdicom) sends each mutant's bytes as they
  are (the data set after its File Meta, chunked from the file: nothing is decoded or
  re-encoded on the way), re-associating whenever the listener ends an association;
  every object gets an :class:`Answer`: a DIMSE status, "no-context" (the listener did
  not accept its SOP class / transfer syntax), "aborted", or "no-answer" (a hang).
* :func:`storescu_batch`: the same through dcmtk's storescu (which refuses to send
  some broken files, and re-encodes the others).
* :func:`settle`: waits until every job the listener acknowledged has ended (done,
  failed or skipped) and reports the ones that did not (stuck) or ended without a
  reason.
* :func:`classify`: ``ecg-dicom classify --json`` over mutant files: exit status,
  tracebacks, the per-file answers.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pynetdicom import AE, _config
from pynetdicom.association import Association

from fuzz.mutants import Mutant
from peers import dcmtk_env, require_tool
from serve_proc import ServeProcess

#: The settings of the service under attack (beside serve_proc's): connection
#: timeouts short enough that a stalled peer is ended within seconds, one worker,
#: a stage time limit that fails a stuck job.
FUZZ_CONFIG: dict[str, dict[str, Any]] = {
    "dicom": {"association_request_timeout": 3.0, "pdu_timeout": 5.0, "acse_timeout": 10.0,
              "network_timeout": 6.0, "dimse_timeout": 30.0},
    "queue": {"workers": 1},
    "limits": {"stage_timeout": 60.0},
}
#: Job states a job ends in.
TERMINAL = ("done", "failed", "skipped")
#: pynetdicom proposes at most 128 presentation contexts in one association.
_MAX_CONTEXTS = 120

logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Answer:
    """What the listener answered to one mutant."""

    name: str
    mutator: str
    #: "0x0000"-style DIMSE status, "no-context", "aborted", "rejected" or "no-answer".
    outcome: str
    seconds: float


def _contexts(mutants: Sequence[Mutant]) -> list[list[Mutant]]:
    """The mutants in groups whose (SOP class, transfer syntax) pairs fit one association."""
    groups: list[list[Mutant]] = []
    pairs: set[tuple[str, str]] = set()
    for m in mutants:
        pair = (m.sop_class, m.transfer_syntax)
        if not groups or (pair not in pairs and len(pairs) >= _MAX_CONTEXTS):
            groups.append([])
            pairs = set()
        pairs.add(pair)
        groups[-1].append(m)
    return groups


def send_mutants(port: int, mutants: Iterable[Mutant], folder: Path, *,
                 timeout: float = 60.0, called_ae: str = "ECGDICOM",
                 host: str = "127.0.0.1") -> list[Answer]:
    """Send every mutant (those with a readable File Meta) and record each answer."""
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the file's bytes, never re-encoded
    folder.mkdir(parents=True, exist_ok=True)
    answers: list[Answer] = []
    for group in _contexts([m for m in mutants if m.listener]):
        ae = AE(ae_title="FUZZER")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
        for pair in sorted({(m.sop_class, m.transfer_syntax) for m in group}):
            ae.add_requested_context(pair[0], [pair[1]])
        assoc: Association | None = None
        for m in group:
            started = time.monotonic()
            if assoc is None or not assoc.is_established:
                assoc = ae.associate(host, port, ae_title=called_ae)
                if not assoc.is_established:
                    outcome = "rejected" if assoc.is_rejected else "no-association"
                    answers.append(Answer(m.name, m.mutator, outcome,
                                          time.monotonic() - started))
                    assoc = None
                    continue
            path = m.write(folder)
            try:
                status = assoc.send_c_store(path)
            except ValueError:  # the listener accepted no context for it
                outcome = "no-context"
            else:
                if "Status" in status:
                    outcome = f"0x{int(status.Status):04X}"
                elif assoc.is_aborted:
                    outcome = "aborted"
                else:
                    outcome = "no-answer"
            finally:
                path.unlink(missing_ok=True)
            answers.append(Answer(m.name, m.mutator, outcome, time.monotonic() - started))
            if outcome == "no-answer" and assoc.is_established:
                assoc.abort()
        if assoc is not None and assoc.is_established:
            assoc.release()
    return answers


@dataclass
class StorescuRun:
    returncode: int
    seconds: float
    responses: Counter[str]
    #: Files storescu would not send (it could not read them).
    unsent: int
    output: str = field(repr=False)


def storescu_batch(port: int, mutants: Iterable[Mutant], folder: Path,
                   timeout: float = 300.0) -> StorescuRun:
    """Send the mutants' files with dcmtk's storescu (--no-halt: a file it cannot read
    is reported and skipped), TCP_NODELAY=1."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [str(m.write(folder)) for m in mutants]
    started = time.monotonic()
    run = subprocess.run(
        [require_tool("storescu"), "-v", "--no-halt", "-aet", "FUZZDCMTK", "-aec", "ECGDICOM",
         "127.0.0.1", str(port), *paths],
        env=dcmtk_env(), capture_output=True, text=True, errors="replace", check=False,
        timeout=timeout,
    )
    output = run.stdout + run.stderr
    responses = Counter(re.findall(r"Received Store Response \(([^)]*)\)", output))
    unsent = len(re.findall(r"^E: (?:Bad DICOM file|No presentation context|"
                            r"Unable to|Store SCU Failed)", output, re.M))
    return StorescuRun(run.returncode, time.monotonic() - started, responses, unsent, output)


@dataclass
class Settled:
    """The jobs of a service once everything acknowledged has ended (or the time ran out)."""

    states: Counter[str]
    stuck: list[dict[str, Any]]
    no_reason: list[dict[str, Any]]
    seconds: float
    reasons: Counter[str]


def _reason_kind(reason: str) -> str:
    """A reason without its particulars (numbers, UIDs, quotes), for counting."""
    reason = re.sub(r"'[^']*'|\"[^\"]*\"|\([^)]*\)", "…", reason)
    return re.sub(r"\d+", "N", reason)[:90]


def settle(service: ServeProcess, timeout: float) -> Settled:
    """Wait (polling) until no job is left unfinished; report what remains after ``timeout``."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        jobs = service.jobs()
        unfinished = [j for j in jobs if j["state"] not in TERMINAL]
        if not unfinished or time.monotonic() > deadline:
            break
        if service.proc is not None and service.proc.poll() is not None:
            break
        time.sleep(0.5)
    no_reason = [j for j in jobs if j["state"] in ("failed", "skipped") and not j["reason"]]
    return Settled(Counter(j["state"] for j in jobs), unfinished, no_reason,
                   time.monotonic() - started,
                   Counter(_reason_kind(j["reason"] or "") for j in jobs
                           if j["state"] in ("failed", "skipped")))


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants now (page readers), MiB."""
    return sum(_rss_kb(p) for p in [pid, *_descendants(pid)]) / 1024


class MemoryWatch(threading.Thread):
    """Samples :func:`tree_rss_mb` every ``interval`` seconds; ``peak_mb`` is the highest."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak_mb = pid, interval, 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))

    def stop(self) -> float:
        self._stop_event.set()
        self.join(5)
        return self.peak_mb


def tracebacks(log: str) -> int:
    return log.count("Traceback (most recent call last)")


def traceback_summaries(log: str) -> list[str]:
    """One line per logged traceback: the log message, the job's SOP Instance UID and the
    exception's last line."""
    found = []
    for line in log.splitlines():
        if "Traceback (most recent call last)" not in line:
            continue
        try:
            record = json.loads(line)
            last = str(record.get("exception", "")).strip().splitlines()[-1]
            found.append(f"{record.get('message')} [{record.get('sop_instance_uid', '')}]: "
                         f"{last[:200]}")
        except (ValueError, IndexError, AttributeError):
            found.append(line[:200])
    return found


@dataclass
class CliRun:
    returncode: int
    seconds: float
    traceback: bool
    #: file -> "error: ..." or the label
    answers: dict[str, str]
    output: str = field(repr=False)


def classify(paths: Sequence[Path], config: Path, timeout: float = 900.0) -> CliRun:
    """``ecg-dicom classify --json`` over ``paths`` with the site file ``config``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECG_DICOM_")}
    env["ECG_DICOM_CONFIG"] = str(config)
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "ecg_dicom", "classify", "--json", *map(str, paths)],
        env=env, capture_output=True, text=True, errors="replace", check=False,
        timeout=timeout,
    )
    answers: dict[str, str] = {}
    try:
        for item in json.loads(run.stdout):
            answers[item["file"]] = (f"error: {item['error']}" if "error" in item
                                     else str(item["label"]))
    except (ValueError, KeyError, TypeError):
        pass
    return CliRun(run.returncode, time.monotonic() - started,
                  "Traceback (most recent call last)" in run.stderr + run.stdout, answers,
                  run.stdout[-3000:] + run.stderr[-6000:])


def echo_ok(port: int, patience: float = 10.0) -> bool:
    """A real echoscu (dcmtk, TCP_NODELAY=1) is answered, within ``patience`` seconds
    (a transient rejection while the listener ends the connections before is retried)."""
    give_up = time.monotonic() + patience
    while True:
        run = subprocess.run([require_tool("echoscu"), "-to", "10", "-ta", "10", "-td", "10",
                              "-aec", "ECGDICOM", "127.0.0.1", str(port)],
                             env=dcmtk_env(), capture_output=True, text=True, check=False,
                             timeout=60)
        if run.returncode == 0:
            return True
        if time.monotonic() >= give_up:
            return False
        time.sleep(0.2)


def cli_config(folder: Path) -> Path:
    """A site file for ``ecg-dicom classify``: the tests' model and cache (as serve_proc)."""
    import yaml

    import serve_proc

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"spool_dir": str(folder / "spool"), "output_dir": str(folder / "out"),
                    "min_free_mb": 0},
        "model": {"weights": str(serve_proc.WEIGHTS),
                  "export_cache_dir": str(serve_proc.MODEL_CACHE)},
        "limits": FUZZ_CONFIG["limits"],
    }))
    return path
