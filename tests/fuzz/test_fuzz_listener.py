"""Mutants of the real ECGs through the listener of a real ``ecg-dicom serve``.

Every object gets a DICOM answer (a status, or its context refused at negotiation),
no association hangs, the service does not crash, every acknowledged object's job
ends (done, failed or skipped, with a reason), and a good ECG sent afterwards is
processed.  The mix is the quick one (mostly objects refused at C-STORE or failed
before inference: the model runs at ~1.5 s a page); ``scripts/fuzz.py`` runs the
full mix, 10,000 at a time.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pydicom
import pytest

from fuzz.campaign import (
    MemoryWatch,
    echo_ok,
    peak_rss_mb,
    send_mutants,
    settle,
    storescu_batch,
    traceback_summaries,
    tracebacks,
)
from fuzz.mutants import make, mutant, parse_name
from realdata import copies_with_new_uids, real_ecg_paths
from serve_proc import ServeProcess, run_tool

pytestmark = pytest.mark.integration

#: Mutants sent by the scripted SCU, and by storescu (another seed: other UIDs).
SCRIPTED, STORESCU = 150, 20
SEED = 12
#: Mutants that broke something once (on-demand runs, other seeds): they stay, by name.
FOUND = ["wrong-syntax/ecgtoolkit-eli250/12.145", "bitflip/page-pdf/12.163",
         "length/pydicom-waveform/12.138", "bitflip/ge-muse-mv360/12.164", "vr/ge-mac55/12.159",
         "vr/page-rgb/12.102", "vr/page-pdf/14.90", "vr/page-pdf/14.185",
         # scripts/fuzz.py --count 2000 --seed 14: retried three times with tracebacks
         "vr/page-jpeg/14.250", "vr/page-pdf/14.459", "vr/page-pdf/14.485", "vr/page-pdf/14.491",
         "length/ecgtoolkit-eli250/14.686", "vr/page-jpeg/14.815", "vr/page-pdf/14.1013",
         "vr/ge-muse-mv360/14.1019", "sample-format/ecgtoolkit-eli250/14.1056",
         "sample-format/page-jpeg/14.1084", "vr/page-pdf/14.1242", "vr/pydicom-waveform/14.1250",
         "vr/page-pdf/14.1359", "vr/ge-mac55/14.1412"]
#: The service (model ~1 GB) and its page readers (limits.worker_memory_mb: 3 GB) together:
#: a bomb decoded in memory goes far past it.
MEMORY_BOUND_MB = 4096


def test_mutants_through_the_listener_each_get_an_answer_and_every_job_ends(
    fuzz_service: ServeProcess, tmp_path: Path
) -> None:
    service = fuzz_service
    assert service.proc is not None
    memory = MemoryWatch(service.proc.pid)
    memory.start()
    mutants = make(SCRIPTED, SEED, quick=True) + [
        mutant(seed, index, only=mutator) for mutator, seed, index in map(parse_name, FOUND)]
    answers = send_mutants(service.dicom_port, mutants, tmp_path / "send", timeout=60.0)
    outcomes = Counter(a.outcome for a in answers)
    sent = [m for m in mutants if m.listener]
    assert len(answers) == len(sent)
    hung = [a.name for a in answers if a.outcome in ("no-answer", "no-association")]
    assert hung == [], f"no answer: {hung}\n{outcomes}\n{service.log()}"
    assert service.proc.poll() is None, service.log()

    dcmtk = storescu_batch(service.dicom_port, make(STORESCU, SEED + 1, quick=True),
                           tmp_path / "storescu")
    assert service.proc.poll() is None, service.log()

    settled = settle(service, timeout=900.0)
    assert settled.stuck == [], f"jobs that never ended: {settled.stuck}"
    assert settled.no_reason == [], f"ended without a reason: {settled.no_reason}"
    acknowledged = outcomes["0x0000"] + dcmtk.responses["Success"]
    assert sum(settled.states.values()) == acknowledged, (settled.states, outcomes,
                                                          dcmtk.responses)

    # The service still serves: an echo, and a good ECG is received and processed.
    assert echo_ok(service.dicom_port), service.log()
    [good] = copies_with_new_uids(real_ecg_paths()[1:2], tmp_path / "good", 1)
    sent_good = run_tool("storescu", "-aec", "ECGDICOM", "127.0.0.1",
                         str(service.dicom_port), str(good))
    assert sent_good.returncode == 0, sent_good.stderr
    jobs = service.wait_jobs(acknowledged + 1, states=("done", "failed", "skipped"))
    uid = str(pydicom.dcmread(good, stop_before_pixels=True).SOPInstanceUID)
    [last] = [j for j in jobs if j["sop_instance_uid"] == uid]
    assert last["state"] == "done", last

    # Input errors are permanent at once and refusals are one line: no traceback logged.
    log = service.log_path.read_text(errors="replace")
    assert tracebacks(log) == 0, traceback_summaries(log)
    peak = memory.stop()
    assert peak < MEMORY_BOUND_MB, f"the service with its page readers peaked at {peak:.0f} MiB"
    print(f"\nfuzz listener: {len(answers)} scripted ({dict(outcomes)}), storescu "
          f"{dict(dcmtk.responses)} unsent {dcmtk.unsent}; jobs {dict(settled.states)} "
          f"settled in {settled.seconds:.0f} s; peak RSS {peak_rss_mb(service.proc.pid):.0f} MiB "
          f"(with page readers {peak:.0f} MiB)")
