"""The ``ecg-dicom`` command line: a thin layer over the service and the pipeline.

Every option that matters in production is a setting (see config.py) and can
come from the site YAML or the environment; an option given here (``serve
--port``) is merged into the settings before they are validated.  Process-wide
library settings are made once, by :func:`ecg_dicom.startup.configure_process`.

The commands import what they run when they run (the model runtime loads torch
and OpenVINO), so ``--help`` and ``config`` answer at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ecg_dicom import __version__
from ecg_dicom.config import Settings, default_yaml, load_settings
from ecg_dicom.errors import EcgDicomError
from ecg_dicom.jobs import JobState
from ecg_dicom.startup import configure_process
from ecg_dicom.train import register as register_training_commands


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from ecg_dicom.service import Service

    return Service(settings).run()


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run only workers (no listener): for more worker processes on one spool."""
    from ecg_dicom.service import run_worker

    return run_worker(settings, args.threads)


def _classify(args: argparse.Namespace, settings: Settings) -> int:
    from ecg_dicom.pipeline import Pipeline

    pipeline = Pipeline(settings)
    results = []
    failures = 0
    for name in args.files:
        try:
            result = pipeline.read_file(Path(name)).result
            results.append({"file": name, **result.to_dict()})
        except EcgDicomError as exc:
            failures += 1
            results.append({"file": name, "error": str(exc)})
        except Exception as exc:  # a bug on one file: say so, and go on with the others
            failures += 1
            error = f"unexpected error: {type(exc).__name__}: {exc}"
            results.append({"file": name, "error": error})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for item in results:
            if "error" in item:
                print(f"{item['file']}: ERROR {item['error']}")
            else:
                print(
                    f"{item['file']}: {item['label']} (class {item['class_name']}, "
                    f"confidence {item['confidence']:.3f}, abnormal score "
                    f"{item['abnormal_score']:.3f}) - AI result, not for diagnostic use"
                )
    return 1 if failures else 0


def _render(args: argparse.Namespace, settings: Settings) -> int:
    from ecg_dicom.pages import page_from_file, write_page_png

    page = page_from_file(Path(args.file))
    write_page_png(page, Path(args.output))
    print(f"{args.output}: {page.image.shape[1]}x{page.image.shape[0]} px"
          + (f", {page.px_per_mm:.3f} px/mm" if page.px_per_mm else ""))
    return 0


def _jobs(args: argparse.Namespace, settings: Settings) -> int:
    from ecg_dicom.jobs import JobQueue, Spool, not_retried_because, retry_failed

    spool = Spool(settings.storage.spool_dir, fsync=settings.storage.fsync)
    if args.jobs_command == "list":
        jobs = spool.list_jobs(args.state, args.limit)
        if args.json:
            print(json.dumps([j.to_dict() for j in jobs], indent=2))
        else:
            for j in jobs:
                print(f"{j.job_id}  {j.state:<10} {j.calling_ae:<16} {j.sop_instance_uid}  "
                      f"{j.reason}")
        return 0
    queued = retry_failed(spool, JobQueue(settings), args.job_ids or None)
    print(f"queued again: {len(queued)} job(s)")
    for job_id in queued:
        print(job_id)
    for job_id in dict.fromkeys(args.job_ids or []):
        if job_id not in queued:
            print(not_retried_because(spool, job_id), file=sys.stderr)
    return 0


def _spool(args: argparse.Namespace, settings: Settings) -> int:
    """``spool clean``: one retention sweep now (serve sweeps by itself)."""
    from ecg_dicom.service import clean_spool

    print(clean_spool(settings).summary())
    return 0


def _config(args: argparse.Namespace, settings: Settings) -> int:
    if args.defaults:
        print(default_yaml(), end="")
    else:
        print(json.dumps(settings.masked(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecg-dicom",
        description="ECG AI node for PACS (AI output, not for diagnostic use).",
    )
    parser.add_argument("--version", action="version", version=f"ecg-dicom {__version__}")
    parser.add_argument("--config", help="site YAML file (also ECG_DICOM_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the DICOM listener, workers and HTTP side")
    p.add_argument("--port", type=int, help="DICOM port (dicom.port)")
    p.add_argument("--http-port", type=int, help="HTTP port (http.port)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("worker", help="run workers only, on the configured queue")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=_worker)

    p = sub.add_parser("classify", help="classify DICOM files or page images offline")
    p.add_argument("files", nargs="+")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_classify)

    p = sub.add_parser("render", help="write the page the model will see as PNG")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=_render)

    p = sub.add_parser("jobs", help="list jobs or queue failed ones again")
    jobs_sub = p.add_subparsers(dest="jobs_command", required=True)
    q = jobs_sub.add_parser("list")
    q.add_argument("--state", choices=[s.value for s in JobState])
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--json", action="store_true")
    q = jobs_sub.add_parser("retry")
    q.add_argument("job_ids", nargs="*", help="default: every failed job")
    p.set_defaults(func=_jobs)

    p = sub.add_parser("spool", help="spool maintenance: `spool clean` runs retention once")
    p.add_argument("spool_command", choices=["clean"])
    p.set_defaults(func=_spool)

    p = sub.add_parser("config", help="print the effective configuration")
    p.add_argument("--defaults", action="store_true", help="print the embedded defaults as YAML")
    p.set_defaults(func=_config)

    register_training_commands(sub)
    return parser


def _command_line(args: argparse.Namespace) -> dict[str, Any]:
    """Options that are settings, as nested sections (merged before validation)."""
    sections: dict[str, dict[str, Any]] = {}
    for option, (section, key) in {"port": ("dicom", "port"),
                                   "http_port": ("http", "port")}.items():
        value = getattr(args, option, None)
        if value is not None:
            sections.setdefault(section, {})[key] = value
    return sections


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, _command_line(args))
    except EcgDicomError as exc:
        print(f"ecg-dicom: {exc}", file=sys.stderr)
        return 2
    configure_process(settings)
    try:
        return int(args.func(args, settings))
    except EcgDicomError as exc:
        print(f"ecg-dicom: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
