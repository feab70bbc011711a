"""The service-side commands: ``serve``, ``worker``, ``render``, ``jobs``, ``spool``,
``config`` and ``sample``.  Each takes ``(args, settings)`` and returns the exit
status (:mod:`ecg_dicom.cli` documents them); what a command runs is imported when
it runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from ecg_dicom.config import Settings, default_yaml

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: The sample ECG ``ecg-dicom sample`` writes (see :func:`sample`).
SAMPLE_NAME = "sample-ecg.dcm"


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from ecg_dicom.service import Service

    return Service(settings).run()


def worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run only workers (no listener): for more worker processes on one spool."""
    from ecg_dicom.service import run_worker

    return run_worker(settings, args.threads)


def writable_file(name: str) -> Path:
    """An output file's path, or a usage error when its folder does not exist."""
    path = Path(name)
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {name}: folder {folder} does not exist")
    if path.is_dir():
        raise UsageError(f"cannot write {name}: it is a folder")
    return path


class UsageError(Exception):
    """A mistake in what the command was told (exit status 2, no traceback)."""


def render(args: argparse.Namespace, settings: Settings) -> int:
    from ecg_dicom.errors import InputError
    from ecg_dicom.pages import page_from_file, write_page_png

    output = writable_file(args.output)
    source = Path(args.file)
    if not source.is_file():
        print(f"ecg-dicom render: {args.file}: no such file", file=sys.stderr)
        return EXIT_FAILED
    try:
        page = page_from_file(source, settings.limits)
    except (InputError, OSError) as exc:
        print(f"ecg-dicom render: {args.file}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        write_page_png(page, output)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"{output}: {page.image.shape[1]}x{page.image.shape[0]} px"
          + (f", {page.px_per_mm:.3f} px/mm" if page.px_per_mm else ""))
    return EXIT_OK


def jobs(args: argparse.Namespace, settings: Settings) -> int:
    from ecg_dicom.jobs import JobQueue, Spool, not_retried_because, retry_failed

    if not Path(settings.storage.spool_dir).is_dir():
        print(f"ecg-dicom jobs: no spool at {settings.storage.spool_dir} (storage.spool_dir); "
              "has serve run with this configuration?", file=sys.stderr)
        return EXIT_USAGE
    spool = Spool(settings.storage.spool_dir, fsync=settings.storage.fsync)
    if args.jobs_command == "list":
        found = spool.list_jobs(args.state, args.limit)
        if args.json:
            print(json.dumps([j.to_dict() for j in found], indent=2))
        else:
            for j in found:
                print(f"{j.job_id}  {j.state:<10} {j.calling_ae:<16} {j.sop_instance_uid}  "
                      f"{j.reason}")
        return EXIT_OK
    queued = retry_failed(spool, JobQueue(settings), args.job_ids or None)
    print(f"queued again: {len(queued)} job(s)")
    for job_id in queued:
        print(job_id)
    refused = [j for j in dict.fromkeys(args.job_ids or []) if j not in queued]
    for job_id in refused:
        print(not_retried_because(spool, job_id), file=sys.stderr)
    return EXIT_FAILED if refused else EXIT_OK


def spool(args: argparse.Namespace, settings: Settings) -> int:
    """``spool clean``: one retention sweep now (serve sweeps by itself)."""
    from ecg_dicom.service import clean_spool

    print(clean_spool(settings).summary())
    return EXIT_OK


def config(args: argparse.Namespace, settings: Settings) -> int:
    if args.defaults:
        print(default_yaml(), end="")
    else:
        print(json.dumps(settings.masked(), indent=2))
    return EXIT_OK


def sample_source() -> Path:
    """The sample ECG: pydicom's ``waveform_ecg.dcm``, a real 12-lead ECG (Mortara
    ELI 250, 12 leads x 1000 Hz x 10 s, anonymised, "ECG NORMALE") shipped inside
    pydicom (MIT licence), which ecg-dicom depends on.  Nothing is downloaded and
    the project ships no patient data of its own."""
    from pydicom import examples

    return Path(examples.get_path("waveform"))


def sample(args: argparse.Namespace, settings: Settings) -> int:
    """Write the sample ECG into ``-o DIR`` (made when missing) and say how to send it."""
    folder = Path(args.output)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{args.output} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / SAMPLE_NAME
        shutil.copyfile(sample_source(), target)
    except OSError as exc:
        raise UsageError(f"cannot write into {args.output}: {exc.strerror or exc}") from None
    dicom, http = settings.dicom, settings.http
    print(f"{target}: a real 12-lead ECG (Mortara ELI 250, from pydicom's examples, MIT).")
    print("Send it to a running `ecg-dicom serve`:")
    print(f"  TCP_NODELAY=1 storescu -aec {dicom.ae_title} 127.0.0.1 {dicom.port} {target}")
    if http.enabled:
        print(f"and see its result at http://127.0.0.1:{http.port}/")
    return EXIT_OK
