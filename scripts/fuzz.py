"""The on-demand fuzz and fault run (issue 12, item 8): thousands of mutants of the real
ECGs through the listener of a real ``ecg-dicom serve`` and through
``ecg-dicom classify``, and malformed PDUs from a scripted peer; prints the figures.

    make fuzz                                   # = the line below
    PYTHONPATH=tests .venv/bin/python scripts/fuzz.py --count 10000
    PYTHONPATH=tests .venv/bin/python scripts/fuzz.py --only length/ge-mac55/12.17

The mutants are tests/fuzz/mutants.py's (seeded: the same seed gives the same bytes);
the service runs with tests/fuzz/campaign.py's settings in a fresh folder.  Figures:
objects sent, answers by status, crashes (the service died and was restarted), hangs
(no answer), stuck jobs (never ended), jobs by state and reason, tracebacks logged,
peak memory of the service, time; the same as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

# This file is scripts/fuzz.py: its own folder would shadow the tests' ``fuzz``
# package, so the tests' folder takes its place at the head of the path.
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT / "tests")

from fuzz.campaign import (  # noqa: E402
    FUZZ_CONFIG,
    MemoryWatch,
    Settled,
    classify,
    cli_config,
    echo_ok,
    peak_rss_mb,
    send_mutants,
    settle,
    tracebacks,
)
from fuzz.mutants import Mutant, mutant, parse_name  # noqa: E402
from fuzz.rawpdu import fixed_cases, probe, random_cases  # noqa: E402
from serve_proc import ServeProcess, ensure_default_model  # noqa: E402


class Listener:
    """The service under attack; restarted (and the crash counted) if it dies."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.crashes: list[str] = []
        self.generation = 0
        self.peak_mb = 0.0
        #: Peak of the service with its page-reader processes (sampled).
        self.tree_peak_mb = 0.0
        self.tracebacks = 0
        #: Jobs by state and failure reasons, over every service started.
        self.states: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.last: Settled | None = None
        self.service = self._start()

    def _start(self) -> ServeProcess:
        self.generation += 1
        workdir = self.folder / f"serve-{self.generation}"
        workdir.mkdir(parents=True)
        service = ServeProcess(workdir, FUZZ_CONFIG).start()
        assert service.proc is not None
        self.watch = MemoryWatch(service.proc.pid)
        self.watch.start()
        return service

    def alive(self) -> bool:
        return self.service.proc is not None and self.service.proc.poll() is None

    def measure(self) -> None:
        if self.alive() and self.service.proc is not None:
            self.peak_mb = max(self.peak_mb, peak_rss_mb(self.service.proc.pid))

    def check(self, after: str) -> None:
        """Restart a dead service, recording the crash and what came last."""
        if self.alive():
            self.measure()
            return
        code = self.service.proc.returncode if self.service.proc else None
        self.crashes.append(f"exit {code} after {after}: {self.service.log()[-1500:]}")
        self.finish()
        self.service = self._start()

    def finish(self) -> None:
        """Stop the service, adding its figures (those last seen, if it died)."""
        self.measure()
        if self.alive():
            self.last = settle(self.service, timeout=0.0)
        if self.last is not None:
            self.states += self.last.states
            self.reasons += self.last.reasons
            self.last = None
        self.tracebacks += tracebacks(self.service.log_path.read_text(errors="replace"))
        self.tree_peak_mb = max(self.tree_peak_mb, self.watch.stop())
        self.service.stop()


def run_listener(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    listener = Listener(folder)
    outcomes: Counter[str] = Counter()
    by_mutator: Counter[tuple[str, str]] = Counter()
    hangs: list[str] = []
    stuck: list[dict[str, Any]] = []
    no_reason: list[dict[str, Any]] = []
    sent = 0
    started = time.monotonic()
    try:
        for first in range(0, args.count, args.batch):
            batch = [mutant(args.seed, i, quick=args.quick)
                     for i in range(first, min(args.count, first + args.batch))]
            batch = [m for m in batch if m.listener]
            answers = send_mutants(listener.service.dicom_port, batch, folder / "send",
                                   timeout=args.timeout)
            sent += len(answers)
            for a in answers:
                outcomes[a.outcome] += 1
                by_mutator[(a.mutator, a.outcome)] += 1
                if a.outcome in ("no-answer", "no-association"):
                    hangs.append(a.name)
            listener.check(after=f"batch at {first}")
            accepted = sum(a.outcome == "0x0000" for a in answers)
            settled = settle(listener.service, timeout=600.0 + 30.0 * accepted)
            listener.last = settled
            listener.check(after=f"settling batch at {first}")
            stuck += settled.stuck
            no_reason += settled.no_reason
            print(f"[{time.monotonic() - started:7.0f} s] {first + len(batch)}/{args.count}: "
                  f"{dict(outcomes)}; jobs {dict(settled.states)} (this service); "
                  f"stuck {len(stuck)}; crashes {len(listener.crashes)}", flush=True)
        good = echo_ok(listener.service.dicom_port)
    finally:
        listener.finish()
    return {
        "objects": sent, "answers": dict(outcomes), "hangs": hangs,
        "crashes": listener.crashes, "stuck_jobs": stuck, "ended_without_reason": no_reason,
        "jobs": dict(listener.states), "reasons": dict(listener.reasons.most_common(40)),
        "answers_by_mutator": {f"{m} {o}": n for (m, o), n in sorted(by_mutator.items())},
        "tracebacks_logged": listener.tracebacks, "peak_rss_mb": round(listener.peak_mb),
        "peak_rss_with_page_readers_mb": round(listener.tree_peak_mb), "echo_after": good,
        "seconds": round(time.monotonic() - started),
    }


def run_cli(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """``ecg-dicom classify`` over the mutants, 25 files a run; a run that printed a
    traceback is replayed file by file to name the culprits, as is every file answered
    "unexpected error" (a bug)."""
    config = cli_config(folder / "cli")
    files = folder / "cli-files"
    files.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    answers: Counter[str] = Counter()
    culprits: list[str] = []
    runs = 0
    for first in range(0, args.cli, 25):
        batch = [mutant(args.seed + 1, i, quick=args.quick)
                 for i in range(first, min(args.cli, first + 25))]
        paths = {m.write(files): m for m in batch}
        run = classify(list(paths), config)
        runs += 1
        if run.traceback or run.returncode not in (0, 1):
            for path, m in paths.items():
                alone = classify([path], config)
                runs += 1
                if alone.traceback or alone.returncode not in (0, 1):
                    culprits.append(f"{m.name}: rc {alone.returncode}: "
                                    f"{alone.output.strip().splitlines()[-1][:200]}")
        for file, answer in run.answers.items():
            if answer.startswith("error: unexpected"):
                culprits.append(f"{paths[Path(file)].name}: {answer[:200]}")
            answers["error" if answer.startswith("error: ") else "label"] += 1
        for path in paths:
            path.unlink()
    return {"files": args.cli, "answers": dict(answers), "tracebacks": culprits, "runs": runs,
            "seconds": round(time.monotonic() - started)}


def run_pdu(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    listener = Listener(folder / "pdu")
    started = time.monotonic()
    cases = fixed_cases() + random_cases(args.seed, args.pdu)
    answers: Counter[str] = Counter()
    held_open: list[str] = []
    echo_refused: list[str] = []
    try:
        for i, case in enumerate(cases):
            seen = probe(listener.service.dicom_port, case, wait=2.0, hold_limit=60.0)
            answers[seen.answer or ("closed" if seen.closed else "silent")] += 1
            if case.hold and not seen.closed:
                held_open.append(case.name)
            listener.check(after=case.name)
            if i % 25 == 24 and not echo_ok(listener.service.dicom_port):
                echo_refused.append(case.name)
        good = echo_ok(listener.service.dicom_port)
    finally:
        listener.finish()
    return {"cases": len(cases), "answers": dict(answers), "crashes": listener.crashes,
            "stalled_not_ended": held_open, "echo_refused_after": echo_refused,
            "echo_after": good, "tracebacks_logged": listener.tracebacks,
            "peak_rss_mb": round(listener.peak_mb),
            "peak_rss_with_page_readers_mb": round(listener.tree_peak_mb),
            "seconds": round(time.monotonic() - started)}


def run_one(name: str, folder: Path) -> int:
    mutator, seed, index = parse_name(name)
    m: Mutant = mutant(seed, index, only=mutator)
    path = m.write(folder)
    print(f"{m.name}: {len(m.data)} bytes, {m.sop_class} in {m.transfer_syntax} -> {path}")
    if not m.listener:
        print("(File Meta broken: CLI only)")
    else:
        listener = Listener(folder)
        try:
            [answer] = send_mutants(listener.service.dicom_port, [m], folder / "send")
            print(f"listener: {answer.outcome} in {answer.seconds:.1f} s")
            settled = settle(listener.service, timeout=600.0)
            for job in listener.service.jobs():
                print(f"job {job['state']}: {job['reason']}")
            print(f"stuck: {len(settled.stuck)}")
        finally:
            listener.finish()
    run = classify([path], cli_config(folder / "cli"))
    print(f"classify: rc {run.returncode}, traceback {run.traceback}: {run.answers}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10000, help="mutants through the listener")
    parser.add_argument("--cli", type=int, default=200, help="mutants through classify")
    parser.add_argument("--pdu", type=int, default=500, help="random malformed PDUs")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--batch", type=int, default=250, help="mutants between two settles")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds one C-STORE may wait for its answer (else: a hang)")
    parser.add_argument("--quick", action="store_true",
                        help="the test run's mix (mostly refused before inference)")
    parser.add_argument("--only", help="reproduce one mutant by name")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--imgsz", type=int, default=0,
        help="the listener's model.imgsz (default: the shipped 832); a smaller input makes "
             "each inference cheaper without changing what the mutants exercise (parsing, "
             "rendering, building): the detector always sees a letterboxed tensor of one shape",
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # pydicom's notes on the values the mutants break
    ensure_default_model()
    if args.imgsz:
        FUZZ_CONFIG["model"] = {"imgsz": args.imgsz}
    folder = Path(tempfile.mkdtemp(prefix="ecg-dicom-fuzz-"))
    try:
        if args.only:
            return run_one(args.only, folder)
        figures: dict[str, Any] = {"seed": args.seed, "mix": "quick" if args.quick else "full"}
        started = time.monotonic()
        if args.pdu:
            figures["pdu"] = run_pdu(args, folder)
            print(json.dumps({"pdu": figures["pdu"]}, indent=1), flush=True)
        if args.cli:
            figures["cli"] = run_cli(args, folder)
            print(json.dumps({"cli": figures["cli"]}, indent=1), flush=True)
        if args.count:
            figures["listener"] = run_listener(args, folder)
        figures["seconds"] = round(time.monotonic() - started)
    finally:
        if args.keep:
            print(f"work folder kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    listener = figures.get("listener", {})
    bad = (listener.get("hangs") or listener.get("crashes") or listener.get("stuck_jobs")
           or figures.get("pdu", {}).get("crashes") or figures.get("cli", {}).get("tracebacks"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
