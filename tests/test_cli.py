"""``ecg-dicom`` as people run it: the installed command (``.venv/bin/ecg-dicom``) as a
real process, from a folder that is not the checkout, with no ECG_DICOM_* variables
unless a test sets one.

Folders, the table, CSV and JSON of ``classify``; the exit statuses of ``--help``;
errors on stderr and never a traceback for a user's mistake (a missing output
folder, a typo in a path, a closed pipe, a bad setting, missing weights); the
progress bar on a terminal only; the sample ECG; paths resolved against the site
file, the working folder or the checkout.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
import yaml

from realdata import DICOM_ECG_DIR, ECG_IMAGES_DIR, ROOT

pytestmark = pytest.mark.integration

#: The console script pip installed beside the interpreter running the tests.
ECG_DICOM = Path(sys.executable).parent / "ecg-dicom"
ECG = DICOM_ECG_DIR / "ge-mac55" / "ecg.dcm"
TRACEBACK = "Traceback (most recent call last)"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECG_DICOM_")}
    return {**env, **extra}


def run(*args: str, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(ECG_DICOM), *args], cwd=cwd, env=env or clean_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert TRACEBACK not in done.stderr + done.stdout, done.stderr
    return done


def on_terminal(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[bytes], bytes]:
    """Run with stderr on a pseudo-terminal (as in a person's shell); stdout piped.
    Returns the run and what was drawn on the terminal."""
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run([str(ECG_DICOM), *args], cwd=cwd, env=clean_env(),
                              stdout=subprocess.PIPE, stderr=secondary, timeout=600, check=False)
        os.close(secondary)
        drawn = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal is closed: all read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(primary)
    return done, drawn


def ecg_folder(tmp_path: Path) -> Path:
    """A folder as a person has one: a DICOM ECG, a page image in a sub-folder, a
    hidden file (left out) and a text file (not an ECG: a failure)."""
    folder = tmp_path / "ecgs"
    (folder / "scans").mkdir(parents=True)
    (folder / "cart.dcm").write_bytes(ECG.read_bytes())
    page = sorted((ECG_IMAGES_DIR / "normal").glob("*.jpg"))[0]
    (folder / "scans" / page.name).write_bytes(page.read_bytes())
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / "notes.txt").write_text("not an ECG\n")
    return folder


def test_help_documents_exit_statuses_and_retraining(tmp_path: Path) -> None:
    top = run("--help", cwd=tmp_path)
    assert top.returncode == 0
    for line in ("0    done", "1    done, but some input", "2    usage or configuration",
                 "3    the model is not available"):
        assert line in top.stdout, top.stdout
    classify = run("classify", "--help", cwd=tmp_path)
    assert "--csv" in classify.stdout and "exit status" in classify.stdout
    train = run("train", "--help", cwd=tmp_path)
    for folder in ("heart_block/", "history_mi/", "mi/", "normal/", ".sha256", "dataset build",
                   "evaluate", "model: {weights:"):
        assert folder in train.stdout, (folder, train.stdout)
    # Every option and argument of every command says what it does.
    for command in ("serve", "worker", "classify", "render", "config", "sample", "train",
                    "evaluate", "export", "dataset build"):
        text = run(*command.split(), "--help", cwd=tmp_path).stdout
        assert without_help(text) == [], (command, text)


def without_help(text: str) -> list[str]:
    """The options and arguments an argparse help shows with no text of their own."""
    bare = []
    for title in ("positional arguments:", "options:"):
        if title not in text:
            continue
        lines = text.split(title, 1)[1].split("\n\n", 1)[0].splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("  ") or line.startswith("      "):
                continue  # a continuation line
            following = lines[i + 1] if i + 1 < len(lines) else ""
            if "  " not in line.strip() and not following.startswith("      "):
                bare.append(line.strip())
    return bare


def test_classify_folder_table_csv_json_from_another_folder(tmp_path: Path,
                                                            default_model: Path) -> None:
    """No configuration and another working folder: the shipped weights and the model
    cache are found from the checkout; a folder is read recursively."""
    folder = ecg_folder(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    table = run("classify", str(folder), cwd=elsewhere)
    assert table.returncode == 1, table.stderr  # notes.txt is not an ECG
    assert "notes.txt" in table.stderr and "notes.txt" not in table.stdout
    assert ".DS_Store" not in table.stdout + table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["FILE", "RESULT", "PROB.", "CLASS"]
    assert any("cart.dcm" in line for line in lines) and any("scans/" in line for line in lines)
    assert "1 failed" in lines[-1] and "not for diagnostic use" in lines[-1]
    assert not (elsewhere / "var").exists()  # nothing written where it was run

    as_csv = run("classify", "--csv", str(folder), cwd=elsewhere)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert as_csv.returncode == 1
    assert [Path(r["file"]).name for r in rows] == ["cart.dcm", "notes.txt",
                                                     rows[2]["file"].split("/")[-1]]
    assert rows[0]["label"] in ("Normal", "Abnormal") and rows[0]["class_display"]
    assert rows[1]["label"] == "" and "neither DICOM" in rows[1]["error"]
    assert rows[2]["label"] == "Normal" and rows[2]["error"] == ""  # a page of class normal

    as_json = run("classify", "--json", str(folder / "cart.dcm"), str(folder / "scans"),
                  cwd=elsewhere)
    assert as_json.returncode == 0, as_json.stderr
    items = json.loads(as_json.stdout)
    assert [Path(i["file"]).name for i in items][0] == "cart.dcm" and len(items) == 2
    assert all("error" not in i and i["model_version"] for i in items)
    assert as_json.stderr == ""  # the model's INFO lines are the service's, not a tool's


def test_exit_statuses_and_errors_without_traceback(tmp_path: Path, default_model: Path) -> None:
    missing = run("classify", "no-such.dcm", cwd=tmp_path)
    assert missing.returncode == 1 and "no-such.dcm: no such file" in missing.stderr
    assert missing.stdout == ""

    usage = run("classify", "--frobnicate", "x", cwd=tmp_path)
    assert usage.returncode == 2

    bad_setting = run("config", cwd=tmp_path, env=clean_env(ECG_DICOM_DICOM__PORT="eleven"))
    assert bad_setting.returncode == 2 and "dicom.port" in bad_setting.stderr

    no_site_file = run("--config", "nope.yaml", "config", cwd=tmp_path)
    assert no_site_file.returncode == 2 and "nope.yaml does not exist" in no_site_file.stderr

    no_model = run("classify", str(ECG), cwd=tmp_path,
                   env=clean_env(ECG_DICOM_MODEL__WEIGHTS="missing.pt"))
    assert no_model.returncode == 3, no_model.stderr
    assert str(tmp_path / "missing.pt") in no_model.stderr  # relative to the working folder

    no_folder = run("render", str(ECG), "-o", "missing/dir/page.png", cwd=tmp_path)
    assert no_folder.returncode == 2
    assert "folder missing/dir does not exist" in no_folder.stderr

    typo = run("render", "ecg.dmc", "-o", "page.png", cwd=tmp_path)
    assert typo.returncode == 1 and "ecg.dmc" in typo.stderr

    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    not_ecg = run("render", str(text), "-o", "page.png", cwd=tmp_path)
    assert not_ecg.returncode == 1 and "notes.txt" in not_ecg.stderr

    # Not readable as a file: a name pointing nowhere, a named pipe.
    (tmp_path / "moved.dcm").symlink_to(tmp_path / "gone" / "ecg.dcm")
    os.mkfifo(tmp_path / "pipe.dcm")
    odd = run("classify", "moved.dcm", "pipe.dcm", cwd=tmp_path)
    assert odd.returncode == 1 and odd.stdout == ""
    assert "moved.dcm: no such file" in odd.stderr and "pipe.dcm: not a file" in odd.stderr

    no_spool = run("jobs", "list", cwd=tmp_path,
                   env=clean_env(ECG_DICOM_STORAGE__SPOOL_DIR="no-spool"))
    assert no_spool.returncode == 2 and "no spool at" in no_spool.stderr

    rendered = run("render", str(ECG), "-o", "page.png", cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert (tmp_path / "page.png").read_bytes()[:4] == b"\x89PNG"


def test_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    """``ecg-dicom config | head -1``: the reader goes away; no traceback, no message."""
    proc = subprocess.Popen([str(ECG_DICOM), "config"], cwd=tmp_path, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command writes anything
    with proc.stderr:
        stderr = proc.stderr.read().decode()
    assert proc.wait(120) == 141, stderr  # as a shell reports SIGPIPE
    assert stderr == ""
    head = subprocess.run(f"'{ECG_DICOM}' config --defaults | head -2", shell=True, cwd=tmp_path,
                          env=clean_env(), capture_output=True, text=True, timeout=120,
                          check=False)
    assert head.stdout.splitlines()[0] == "dicom:" and head.stderr == ""


def test_progress_bar_on_a_terminal_only(tmp_path: Path, default_model: Path) -> None:
    pages = sorted((ECG_IMAGES_DIR / "normal").glob("*.jpg"))[:2]
    on_tty, drawn = on_terminal(["classify", "--csv", *map(str, pages)], cwd=tmp_path)
    assert on_tty.returncode == 0
    assert b"classify 2/2 [" in drawn and b"\r" in drawn, drawn
    assert len(list(csv.DictReader(io.StringIO(on_tty.stdout.decode())))) == 2
    piped = run("classify", "--csv", *map(str, pages), cwd=tmp_path)
    assert piped.returncode == 0 and "classify 2/2" not in piped.stderr


def test_sample_writes_a_real_ecg_and_says_how_to_send_it(tmp_path: Path) -> None:
    done = run("sample", "-o", "first/test", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sample = tmp_path / "first" / "test" / "sample-ecg.dcm"
    ds = pydicom.dcmread(sample)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.9.1.1"  # 12-lead ECG
    assert len(ds.WaveformSequence[0].ChannelDefinitionSequence) == 12
    assert f"storescu -aec ECGDICOM 127.0.0.1 11112 {Path('first/test/sample-ecg.dcm')}" \
        in done.stdout
    assert "http://127.0.0.1:8080/" in done.stdout
    (tmp_path / "a-file").write_text("")
    not_folder = run("sample", "-o", "a-file", cwd=tmp_path)
    assert not_folder.returncode == 2 and "not a folder" in not_folder.stderr


def test_paths_resolved_against_site_file_working_folder_or_checkout(tmp_path: Path) -> None:
    site_dir = tmp_path / "etc"
    site_dir.mkdir()
    site = site_dir / "site.yaml"
    site.write_text(yaml.safe_dump({"storage": {"spool_dir": "spool"},
                                    "model": {"export_cache_dir": "/opt/cache"}}))
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    shown = run("--config", str(site), "config", cwd=elsewhere,
                env=clean_env(ECG_DICOM_STORAGE__OUTPUT_DIR="out"))
    assert shown.returncode == 0, shown.stderr
    config = json.loads(shown.stdout)
    assert config["storage"]["spool_dir"] == str(site_dir / "spool")  # the site file's folder
    assert config["storage"]["output_dir"] == str(elsewhere / "out")  # the working folder
    assert config["model"]["export_cache_dir"] == "/opt/cache"  # absolute stays
    assert config["model"]["weights"] == str(ROOT / "weights" / "ecg-yolov8m.pt")  # checkout
    assert config["audit"]["path"] == str(ROOT / "var" / "audit" / "audit.log")
    home = run("config", cwd=elsewhere, env=clean_env(ECG_DICOM_HOME=str(tmp_path / "home")))
    assert json.loads(home.stdout)["storage"]["spool_dir"] == str(tmp_path / "home" / "var/spool")
