"""The service's metrics, read from ``/metrics`` of a real ``ecg-dicom serve``, and the
Grafana dashboard that uses them (``docs/grafana-dashboard.json``).

* results are counted per label; a job whose results had no destination is counted
  ``not_sent``, apart from ``done`` (results delivered);
* the queue depth and the age of the oldest unfinished job come from the ledger;
* every metric the dashboard queries is exposed by a real service.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from peers import run_storescp
from serve_proc import ServeProcess, run_tool

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
#: A sample line of the Prometheus text format: name, labels, value.
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def scrape(service: ServeProcess) -> tuple[dict[str, float], set[str]]:
    """(``name{labels}`` -> value, metric families declared by ``# TYPE`` lines)."""
    text = str(service.get("/metrics"))
    samples: dict[str, float] = {}
    families: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            families.add(line.split()[2])
        elif (match := SAMPLE.match(line)) is not None:
            key = match["name"] + ("{" + match["labels"] + "}" if match["labels"] else "")
            samples[key] = float(match["value"])
    return samples, families


def wait_for(service: ServeProcess, check: str, expected: float, timeout: float = 30.0,
             ) -> dict[str, float]:
    """Scrape until the sample ``check`` has ``expected`` (the gauges are set every 2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        samples, _ = scrape(service)
        if samples.get(check) == expected or time.monotonic() > deadline:
            assert samples.get(check) == expected, (check, samples.get(check), service.log())
            return samples
        time.sleep(0.3)


def send(service: ServeProcess, path: Path, calling_ae: str = "STORESCU") -> None:
    sent = run_tool("storescu", "-aet", calling_ae, "-aec", "ECGDICOM", "127.0.0.1",
                    str(service.dicom_port), str(path))
    assert sent.returncode == 0, sent.stderr


def dashboard_metrics() -> set[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    return {m for e in exprs for m in re.findall(r"\becgdicom_\w+", e)}


def test_dashboard_is_grafana_json() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in board["panels"]:
        assert panel["type"] in ("timeseries", "stat"), panel["title"]
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
    # What issue 13 asks a dashboard to show.
    used = dashboard_metrics()
    assert {"ecgdicom_results_total", "ecgdicom_processed_total", "ecgdicom_queued",
            "ecgdicom_oldest_unfinished_seconds"} <= used


def test_queue_gauges_and_every_dashboard_metric_exposed(tmp_path: Path,
                                                         real_ecgs: list[Path]) -> None:
    """A listener-only serve (no workers): what it receives stays queued, so the queue
    depth is 1 and the oldest job ages; the dashboard's every metric is exposed."""
    service = ServeProcess(tmp_path, {"queue": {"workers": 0}}).start(wait_model=False)
    try:
        samples, families = scrape(service)
        assert samples["ecgdicom_queued"] == 0
        assert samples["ecgdicom_oldest_unfinished_seconds"] == 0
        # Labelled counters exist, at 0, before the first ECG (a dashboard finds them).
        for label in ("normal", "abnormal", "not_interpretable"):
            assert samples[f'ecgdicom_results_total{{label="{label}"}}'] == 0
        for outcome in ("done", "not_sent", "failed"):
            assert samples[f'ecgdicom_processed_total{{outcome="{outcome}"}}'] == 0
        send(service, real_ecgs[0])
        samples = wait_for(service, "ecgdicom_queued", 1.0)
        assert samples['ecgdicom_jobs{state="received"}'] == 1
        first_age = samples["ecgdicom_oldest_unfinished_seconds"]
        time.sleep(2.5)
        samples, families = scrape(service)
        assert samples["ecgdicom_oldest_unfinished_seconds"] >= first_age + 1.5
        # Every metric the dashboard queries is declared (a counter of events that
        # have not happened yet, e.g. refusals, has no sample: it is still declared).
        undeclared = [name for name in sorted(dashboard_metrics())
                      if name not in families
                      and re.sub(r"_(total|bucket|count|sum)$", "", name) not in families]
        assert undeclared == [], undeclared
        with_samples = {k.split("{")[0] for k in samples}
        assert {"ecgdicom_received_total", "ecgdicom_store_seconds_bucket", "ecgdicom_jobs",
                "ecgdicom_jobs_waiting", "ecgdicom_spool_free_bytes"} <= with_samples
    finally:
        assert service.stop() == 0


def test_results_per_label_and_not_sent_apart_from_done(tmp_path: Path,
                                                        real_ecgs: list[Path]) -> None:
    """One ECG from a caller with a destination (delivered: done), one from a caller
    without (results kept: not_sent); each result counted under its label."""
    with run_storescp(tmp_path / "pacs") as (pacs_port, _):
        service = ServeProcess(tmp_path / "svc", {"delivery": {"destinations": {
            "PACS": {"ae_title": "STORESCP", "host": "127.0.0.1", "port": pacs_port}}}})
        service.workdir.mkdir()
        service.start()
        try:
            send(service, real_ecgs[0], calling_ae="PACS")
            send(service, real_ecgs[1], calling_ae="NODEST")
            jobs = service.wait_jobs(2)
            samples = wait_for(service, "ecgdicom_queued", 0.0)
        finally:
            assert service.stop() == 0
    assert sorted(j["state"] for j in jobs) == ["done", "done"], jobs
    assert samples['ecgdicom_processed_total{outcome="done"}'] == 1
    assert samples['ecgdicom_processed_total{outcome="not_sent"}'] == 1
    assert samples['ecgdicom_processed_total{outcome="failed"}'] == 0
    assert samples["ecgdicom_oldest_unfinished_seconds"] == 0
    assert samples['ecgdicom_jobs{state="done"}'] == 2
    labels = {"Normal": "normal", "Abnormal": "abnormal", "Not interpretable": "not_interpretable"}
    expected = {v: 0 for v in labels.values()}
    for job in jobs:
        expected[labels[job["result"]["label"]]] += 1
    for label, count in expected.items():
        assert samples[f'ecgdicom_results_total{{label="{label}"}}'] == count, label
    assert samples["ecgdicom_job_seconds_count"] == 2
