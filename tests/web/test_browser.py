"""The web viewer in a real headless Chromium against a real ``ecg-dicom serve``.

One service and one browser serve the whole module (starting them is most of the
time).  The service's destination for the calling AE ``CART`` is a PACS (dcmtk
``storescp``) that is down until the retry test starts it; the retry window is a few
seconds, so an ECG sent by ``storescu`` fails ("could not be delivered") soon after
its result is built, as it would after 72 hours in a hospital.

What a person does, and sees:

* drops files on the list page: the annotated page and the result appear per file,
  "Classifying..." is progress (not an error), boxes are named for people, and a new
  upload's error clears the earlier result and image;
* an ECG sent by ``storescu`` appears in the list within seconds without reloading,
  and its page shows the annotated and the source page and the SR as a tree;
* a failed job retried from its page (the PACS back up) is delivered.

The service has an access token (``http.token``), as any service reachable from other
machines must: the browser signs in on the sign-in page first (a wrong token is
refused there), every POST of the pages carries the CSRF header, and signing out
ends the session.  The test's own API calls use ``Authorization: Bearer``.

``ECG_DICOM_SCREENSHOTS=docs/img pytest tests/web/test_browser.py`` also writes the
screenshots of docs/viewer.md (``viewer-list.png``, ``viewer-job.png``) there.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from browser import WINDOW, chromium, script_errors, wait_until
from ecg_dicom.results import DISPLAY_NAMES
from peers import free_port, run_storescp
from realdata import ECG_IMAGES_DIR, copies_with_new_uids, real_ecg_paths
from serve_proc import ServeProcess, run_tool

pytestmark = pytest.mark.integration

PACS_AE = "STORESCP"
#: How long a new ECG may take to show in the list: the page polls every 2 s.
LIVE_SECONDS = 10.0
#: The colour of errors in style.css (--abnormal): progress must never look like it.
ERROR_RGB = "rgb(176, 0, 32)"
SCREENSHOTS = os.environ.get("ECG_DICOM_SCREENSHOTS", "")
TOKEN = "correct horse battery staple"


@pytest.fixture(scope="module")
def pacs_port() -> int:
    return free_port()  # nothing listens there until the retry test starts storescp


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, pacs_port: int) -> Iterator[ServeProcess]:
    config: dict[str, dict[str, Any]] = {
        "delivery": {
            "destinations": {"CART": {"ae_title": PACS_AE, "host": "127.0.0.1",
                                      "port": pacs_port}},
            # A few seconds of retries, then the job fails: an outage in small.
            "retry_window_hours": 0.001, "backoff_initial": 0.25, "backoff_max": 1.0,
            "timeout": 5.0,
        },
        "queue": {"requeue_interval": 1.0},
        "http": {"token": TOKEN},
    }
    proc = ServeProcess(tmp_path_factory.mktemp("serve"), config).start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def driver(service: ServeProcess) -> Iterator[webdriver.Chrome]:
    """One browser for the module, signed in through the sign-in page."""
    with chromium() as browser:
        sign_in(browser, service)
        yield browser
        assert script_errors(browser) == []


def sign_in(driver: webdriver.Chrome, service: ServeProcess) -> None:
    driver.get(url(service, "/job/abc123"))  # any page: without a session, the sign-in page
    wait_until(lambda: "/login?next=" in driver.current_url, what="the sign-in page")
    assert not driver.find_element(By.ID, "login-error").is_displayed()
    for token, landing in (("not the token", "/login?error=1"), (TOKEN, "/job/abc123")):
        field = driver.find_element(By.ID, "token")
        field.clear()
        field.send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
        wait_until(lambda: landing in driver.current_url, what=landing)  # noqa: B023
        if landing.startswith("/login"):
            assert driver.find_element(By.ID, "login-error").is_displayed()
    # Signed in, back where the browser wanted to go: a job that does not exist.
    wait_until(lambda: "abc123" in driver.find_element(By.ID, "job-error").text)
    script_errors(driver)  # the provoked 404, read and dropped




def url(service: ServeProcess, path: str) -> str:
    return f"http://127.0.0.1:{service.http_port}{path}"


def send(service: ServeProcess, files: list[Path]) -> None:
    sent = run_tool("storescu", "-aet", "CART", "-aec", "ECGDICOM", "127.0.0.1",
                    str(service.dicom_port), *map(str, files))
    assert sent.returncode == 0, sent.stdout + sent.stderr


def api(service: ServeProcess, path: str) -> Any:
    """GET the service's API as a script does: with the access token."""
    request = urllib.request.Request(url(service, path),
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as rsp:
        return json.loads(rsp.read())


def api_job(service: ServeProcess, job_id: str) -> dict[str, Any]:
    return dict(api(service, f"/api/jobs/{job_id}"))


def job_ids(service: ServeProcess) -> set[str]:
    return {j["job_id"] for j in api(service, "/api/jobs?limit=200")["jobs"]}


def wait_job(service: ServeProcess, job_id: str, state: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while (job := api_job(service, job_id))["state"] != state:
        assert time.monotonic() < deadline, f"{job}\n{service.log()}"
        time.sleep(0.2)


def image_loaded(driver: webdriver.Chrome, css: str) -> bool:
    return bool(driver.execute_script(
        "const i = document.querySelector(arguments[0]);"
        "return !!i && !i.hidden && i.complete && i.naturalWidth > 0;", css))


def row_ids(driver: webdriver.Chrome) -> list[str]:
    return [tr.get_attribute("data-job") or "" for tr in
            driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")]


def test_upload_shows_the_annotated_result_and_a_new_error_clears_it(
    service: ServeProcess, driver: webdriver.Chrome, tmp_path: Path
) -> None:
    page = sorted((ECG_IMAGES_DIR / "mi").glob("*.jpg"))[0]
    junk = tmp_path / "notes.dcm"
    junk.write_bytes(b"this is not an ECG")
    driver.get(url(service, "/"))
    assert "AI output" in driver.find_element(By.CSS_SELECTOR, ".notice").text
    # Every state the upload rows go through, with its look (a MutationObserver sees
    # each one, however short).
    driver.execute_script(
        "window.seen = [];"
        "new MutationObserver(() => {"
        " for (const s of document.querySelectorAll('#uploads .status'))"
        "  window.seen.push([s.className, s.textContent, getComputedStyle(s).color]); })"
        ".observe(document.getElementById('uploads'),"
        " {subtree: true, childList: true, attributes: true, characterData: true});")
    driver.find_element(By.ID, "file").send_keys(f"{page}\n{junk}")  # two files at once
    wait_until(lambda: image_loaded(driver, "#uploads img")
               and driver.find_elements(By.CSS_SELECTOR, "#uploads .status.error"),
               timeout=120, what="the annotated page of the upload and the junk file's error")
    items = driver.find_elements(By.CSS_SELECTOR, "#uploads > li")
    assert len(items) == 2
    good, bad = items
    assert page.name in good.text and good.find_elements(By.CSS_SELECTOR, ".label")
    # Boxes by class, in words for people (the data set's name in the tooltip), and
    # their confidence; no pixel coordinates.
    boxes = good.find_elements(By.CSS_SELECTOR, ".boxes li")
    assert boxes, good.text
    for box in boxes:
        name = box.find_element(By.CSS_SELECTOR, ".class-name")
        assert name.text in DISPLAY_NAMES.values(), name.text
        assert (name.get_attribute("title") or "").removeprefix("data set class: ") in DISPLAY_NAMES
        assert box.text.endswith("% confidence"), box.text
    link = good.find_element(By.PARTIAL_LINK_TEXT, "Open the result").get_attribute("href") or ""
    assert "notes.dcm" in bad.text and not bad.find_elements(By.TAG_NAME, "img")
    assert "/tmp" not in bad.text and str(tmp_path) not in bad.text  # never a server path
    seen = driver.execute_script("return window.seen")
    progress = [s for s in seen if s[1] == "Classifying\u2026"]
    assert progress and all(s[0] == "status progress" and s[2] != ERROR_RGB for s in progress)
    # The upload is a job in the list, with its result.
    wait_until(lambda: any(page.name in tr.text for tr in
                           driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")),
               what="the uploaded page in the list")
    # A new upload that fails clears the earlier result and its image: this one dropped
    # on the drop zone (a drop event carrying a file, as a drag from the desktop makes).
    driver.execute_script(
        "const dt = new DataTransfer();"
        "dt.items.add(new File(['this is not an ECG'], 'dropped.dcm'));"
        "document.getElementById('drop').dispatchEvent("
        " new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));")
    wait_until(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#uploads > li")) == 1
               and "dropped.dcm" in driver.find_element(By.ID, "uploads").text
               and driver.find_elements(By.CSS_SELECTOR, "#uploads .status.error"),
               what="the new error alone")
    assert not driver.find_elements(By.CSS_SELECTOR, "#uploads img, #uploads .label")
    assert page.name not in driver.find_element(By.ID, "uploads").text
    # The uploads' own pages: the annotated and the uploaded page; the failure and its
    # reason, no Retry (an upload is not sent anywhere) and no broken image.
    driver.get(link)
    wait_until(lambda: image_loaded(driver, "#annotated") and image_loaded(driver, "#source-page"),
               timeout=60, what="the upload's annotated and source page")
    downloads = driver.find_element(By.ID, "downloads").text
    assert f"The uploaded file ({page.name})" in downloads
    assert not driver.find_element(By.ID, "failure").is_displayed()
    failed = api(service, "/api/jobs?origin=upload&state=failed&limit=1")["jobs"][0]
    driver.get(url(service, f"/job/{failed['job_id']}"))
    wait_until(lambda: driver.find_element(By.ID, "failure").is_displayed()
               and driver.find_element(By.ID, "no-source").is_displayed(),
               what="the failed upload's reason, without pictures")
    assert failed["reason"] in driver.find_element(By.ID, "failure").text
    assert failed["filename"] in failed["reason"] and str(tmp_path) not in failed["reason"]
    assert not driver.find_element(By.ID, "retry").is_displayed()
    assert not driver.find_element(By.ID, "annotated").is_displayed()
    assert driver.find_element(By.ID, "no-annotated").is_displayed()


def test_an_ecg_sent_by_storescu_appears_live_and_its_page_shows_image_and_sr_tree(
    service: ServeProcess, driver: webdriver.Chrome, tmp_path: Path
) -> None:
    files = copies_with_new_uids(real_ecg_paths(), tmp_path / "send", 4)
    driver.get(url(service, "/"))
    wait_until(lambda: driver.execute_script("return document.readyState") == "complete")
    before = set(row_ids(driver))
    driver.execute_script("window.notReloaded = true")
    sent_at = time.monotonic()
    send(service, files)
    wait_until(lambda: len(set(row_ids(driver)) - before) == 4, timeout=LIVE_SECONDS,
               what="the four ECGs in the list")
    new = set(row_ids(driver)) - before
    appeared = time.monotonic() - sent_at
    assert driver.execute_script("return window.notReloaded") is True  # no reload
    print(f"4 ECGs sent by storescu were in the list {appeared:.1f} s after the send began")
    # The rows change as the jobs move on, still without a reload: each gets its result.
    wait_until(lambda: all(tr.find_elements(By.CSS_SELECTOR, ".label-normal, .label-abnormal,"
                                            " .label-not-interpretable")
                           for tr in driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
                           if tr.get_attribute("data-job") in new),
               timeout=120, what="a result in each new row")
    mac55 = next(tr for tr in driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
                 if tr.get_attribute("data-job") in new and "66954" in tr.text)
    assert "CART" in mac55.text
    job_id = mac55.get_attribute("data-job") or ""
    mac55.find_element(By.TAG_NAME, "a").click()
    wait_until(lambda: driver.current_url.endswith(f"/job/{job_id}"))
    wait_until(lambda: image_loaded(driver, "#annotated") and image_loaded(driver, "#source-page"),
               timeout=60, what="the annotated and the source page")
    job = api_job(service, job_id)
    result = driver.find_element(By.ID, "result").text
    assert job["label"] in result
    if job["label"] in ("Normal", "Abnormal"):  # the probability, explained
        assert f"Probability of {job['label'].lower()}" in result and "Top box" in result
    else:
        assert job["result"]["reason"] in result
    # The SR as a tree: the document title, then its items, values beside names.
    tree = driver.find_element(By.ID, "sr-tree")
    assert len(tree.find_elements(By.TAG_NAME, "li")) >= 5, tree.text
    assert job["sr_tree"]["name"] in tree.text and job["label"] in tree.text
    # The cart's own statements, as the cart wrote them.
    statements = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#statements li")]
    assert statements == job["statements"] and statements
    links = {(a.get_attribute("href") or "").rsplit("/", 1)[-1] for a in
             driver.find_elements(By.CSS_SELECTOR, "#downloads a")}
    assert {"sr", "sc", "source"} <= links


def test_a_failed_job_retried_from_its_page_is_delivered(
    service: ServeProcess, driver: webdriver.Chrome, tmp_path: Path, pacs_port: int
) -> None:
    [ecg] = copies_with_new_uids(real_ecg_paths()[1:2], tmp_path / "send", 1)  # the GE MAC55
    before = job_ids(service)
    send(service, [ecg])
    job_id = wait_until(lambda: job_ids(service) - before, what="the new job").pop()
    wait_job(service, job_id, "failed")  # the PACS stayed down for the whole window
    driver.get(url(service, f"/job/{job_id}"))
    wait_until(lambda: driver.find_element(By.ID, "failure").is_displayed(), what="the failure")
    failure = driver.find_element(By.ID, "failure")
    assert api_job(service, job_id)["reason"] in failure.text
    pacs_dir = tmp_path / "pacs"
    with run_storescp(pacs_dir, aetitle=PACS_AE, port=pacs_port):
        driver.find_element(By.ID, "retry").click()  # a POST with the CSRF header
        wait_until(lambda: "Retried" in driver.find_element(By.ID, "retry-note").text,
                   timeout=60, what="the retried job delivered")
        note = driver.find_element(By.ID, "retry-note").text
        assert f"sent to {PACS_AE}" in note
        assert driver.find_element(By.ID, "failure").is_displayed() is False
        assert f"sent to {PACS_AE}" in driver.find_element(By.ID, "delivery").text
        assert api_job(service, job_id)["state"] == "done"
        assert len([p for p in pacs_dir.iterdir() if p.is_file()]) == 2  # its SR and SC
        if SCREENSHOTS:
            screenshots(service, driver, Path(SCREENSHOTS), job_id)


def screenshots(service: ServeProcess, driver: webdriver.Chrome, folder: Path,
                job_id: str) -> None:
    """docs/img's pictures: the job page of the delivered ECG, and the list with every
    job of this module delivered too (retried through the API while the PACS is up)."""
    folder.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(WINDOW[0], 1700)  # the images, the boxes, the delivery
    wait_until(lambda: image_loaded(driver, "#annotated") and image_loaded(driver, "#source-page"))
    driver.save_screenshot(str(folder / "viewer-job.png"))
    driver.set_window_size(*WINDOW)
    failed = [j["job_id"] for j in api(service, "/api/jobs?state=failed&limit=200")["jobs"]
              if j["origin"] == "dicom"]
    driver.get(url(service, "/"))
    for other in failed:  # through the page's own post() (it sends the CSRF header)
        answer = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "ECG.post(`/api/jobs/${arguments[0]}/retry`).then((r) => r.json()).then(done);", other)
        assert answer["queued"] is True, answer
    for other in failed:
        wait_job(service, other, "done")
    driver.get(url(service, "/"))
    wait_until(lambda: len(row_ids(driver)) >= 5)
    time.sleep(2.5)  # the rows' "changed" flash is over
    driver.save_screenshot(str(folder / "viewer-list.png"))


def test_filters_and_paging(service: ServeProcess, driver: webdriver.Chrome) -> None:
    total = api(service, "/api/jobs?limit=1")["total"]
    assert total >= 7  # the earlier tests' uploads and ECGs
    driver.get(url(service, "/?limit=3"))
    wait_until(lambda: len(row_ids(driver)) == 3, what="a page of 3")
    first = row_ids(driver)
    count = driver.find_element(By.ID, "count")
    assert count.text == f"1\u20133 of {total}"
    assert not driver.find_element(By.ID, "prev").is_enabled()
    driver.find_element(By.ID, "next").click()
    wait_until(lambda: count.text == f"4\u20136 of {total}", what="the second page")
    second = row_ids(driver)
    assert len(second) == 3 and not set(second) & set(first)
    driver.find_element(By.ID, "prev").click()
    wait_until(lambda: row_ids(driver) == first, what="the first page again")
    # Text search: the patient ID of one real ECG (ECGToolkit's ELI 250), in the address too.
    driver.find_element(By.NAME, "q").send_keys("sbj-123")
    wait_until(lambda: (rows := driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr"))
               and all("SBJ-123" in tr.text for tr in rows), what="only SBJ-123")
    assert "q=sbj-123" in driver.current_url
    driver.find_element(By.CSS_SELECTOR, "#filters button[type=reset]").click()
    Select(driver.find_element(By.NAME, "origin")).select_by_value("upload")
    wait_until(lambda: (rows := driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr"))
               and all("upload" in tr.text for tr in rows), what="only uploads")
    Select(driver.find_element(By.NAME, "state")).select_by_value("failed")
    wait_until(lambda: (rows := driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr"))
               and len(rows) == 2 and all("upload" in tr.text and "Failed" in tr.text
                                          for tr in rows),  # notes.dcm, dropped.dcm
               what="only the failed uploads")


def test_sign_out_ends_the_session(service: ServeProcess, driver: webdriver.Chrome) -> None:
    driver.get(url(service, "/"))
    wait_until(lambda: row_ids(driver), what="the list")
    driver.find_element(By.ID, "sign-out").click()  # a POST with the CSRF header
    wait_until(lambda: driver.current_url.endswith("/login"), what="the sign-in page")
    driver.get(url(service, "/"))
    wait_until(lambda: "/login?next=" in driver.current_url, what="the sign-in page again")
    sign_in(driver, service)  # the module's browser stays signed in
