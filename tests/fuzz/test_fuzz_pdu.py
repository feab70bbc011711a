"""Raw-PDU fuzzing of the association layer: malformed and hostile Upper Layer PDUs
from a scripted peer (tests/fuzz/rawpdu.py).  The listener answers or closes, never
dies, ends a stalled connection by itself, and a real echoscu is served throughout."""

from __future__ import annotations

from collections import Counter

import pytest

from fuzz.campaign import echo_ok, tracebacks
from fuzz.rawpdu import fixed_cases, probe, random_cases
from serve_proc import ServeProcess

pytestmark = pytest.mark.integration

RANDOM, SEED = 60, 12
#: Log lines one hostile connection may cost, on average.
LINES_PER_CASE = 3


def test_malformed_pdus_leave_the_listener_serving(fuzz_service: ServeProcess) -> None:
    service = fuzz_service
    port = service.dicom_port
    lines_before = len(service.log_path.read_text(errors="replace").splitlines())
    cases = fixed_cases() + random_cases(SEED, RANDOM)
    observations = []
    for i, case in enumerate(cases):
        observations.append(probe(port, case, wait=1.0, hold_limit=20.0))
        assert service.proc is not None and service.proc.poll() is None, (case, service.log())
        if i % 20 == 19:
            assert echo_ok(port), f"echo refused after {case.name}\n{service.log()}"
    assert echo_ok(port), service.log()
    setup = [o.name for o in observations if o.setup_failed]
    assert setup == [], f"a correct association was refused: {setup}"
    held = {case.name for case in cases if case.hold}
    still_open = [o for o in observations if o.name in held and not o.closed]
    assert still_open == [], f"stalled connections the listener did not end: {still_open}"
    # No log flood: a hostile connection costs a few lines, never one per bad PDU header
    # (4 KB of zeros once gave ~700 "Unknown PDU type" lines).
    log = service.log_path.read_text(errors="replace")
    lines = len(log.splitlines()) - lines_before
    assert lines <= LINES_PER_CASE * len(cases), f"{lines} log lines for {len(cases)} cases"
    answers = Counter(o.answer or ("closed" if o.closed else "silent") for o in observations)
    print(f"\nfuzz pdu: {len(observations)} cases {dict(answers)}; {lines} log lines, "
          f"tracebacks in the log {tracebacks(log)}")
