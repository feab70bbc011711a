"""The ``ecg-dicom`` command line: a thin layer over the service and the pipeline.

Every option that matters in production is a setting (see :mod:`ecg_dicom.config`)
and can come from the site YAML or the environment; an option given here (``serve
--port``) is merged into the settings before they are validated.  Relative path
settings are made absolute once, here (:func:`ecg_dicom.config.paths.resolve_paths`),
so every command works from any folder.  Process-wide library settings are made
once, by :func:`ecg_dicom.startup.configure_process`.

Exit statuses, the same for every command (:data:`EXIT_STATUSES`, shown by
``--help``).  A mistake of the user (a missing file or folder, a bad setting, a
closed pipe) is one line on stderr, never a traceback.

The commands import what they run when they run (the model runtime loads torch
and OpenVINO), so ``--help`` and ``config`` answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ecg_dicom import __version__
from ecg_dicom.cli import commands
from ecg_dicom.cli.commands import UsageError
from ecg_dicom.config import Settings, load_command_settings
from ecg_dicom.errors import ConfigError, EcgDicomError, ModelError
from ecg_dicom.jobs import JobState
from ecg_dicom.startup import configure_process

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_MODEL", "EXIT_OK", "EXIT_USAGE",
           "build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_STATUSES = f"""exit status (every command):
  {EXIT_OK}    done
  {EXIT_FAILED}    done, but some input could not be read (classify, evaluate, render), a
       job could not be queued again (jobs retry) or a build or training failed
  {EXIT_USAGE}    usage or configuration error: an unknown option, a bad setting (the
       message names it), an output folder that does not exist
  {EXIT_MODEL}    the model is not available: weights missing or not matching their checksum
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)

Commands other than serve and worker log warnings and errors only (unless
logging.level is DEBUG).

Paths: relative settings in the site file are relative to its folder; in
ECG_DICOM_* variables, to the working folder; the defaults (var/spool,
weights/ecg-yolov8m.pt...) to the ecg-dicom home (ECG_DICOM_HOME, else the
checkout ecg-dicom runs from, else ~/.local/share/ecg-dicom)."""

CLASSIFY_EPILOG = """Folders are read recursively (hidden files and DICOMDIR left out). The table
(default) and --csv print one row per input as it is read; a progress bar is
drawn on stderr when stderr is a terminal. Errors go to stderr; in --csv and
--json a failed input keeps its row with the error. "Not interpretable" is an
answer (exit 0), a file that cannot be read is a failure (exit 1).
AI result, not for diagnostic use."""


def _classify(args: argparse.Namespace, settings: Any) -> int:
    from ecg_dicom.cli import classify

    return classify.run(args, settings)


def build_parser() -> argparse.ArgumentParser:
    from ecg_dicom.train import register as register_training_commands

    parser = argparse.ArgumentParser(
        prog="ecg-dicom",
        description="ECG AI node for PACS (AI output, not for diagnostic use). "
                    "First test: `ecg-dicom sample`, then send it to `ecg-dicom serve`.",
        epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ecg-dicom {__version__}")
    parser.add_argument("--config", metavar="FILE",
                        help="site YAML file (default: $ECG_DICOM_CONFIG, else the built-in "
                             "defaults; `ecg-dicom config --defaults` prints them)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str, epilog: str = EXIT_STATUSES) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("serve", "run the DICOM listener, the workers and the HTTP side (viewer, API)")
    p.add_argument("--port", type=int, help="DICOM port (setting dicom.port)")
    p.add_argument("--http-port", type=int, help="HTTP port (setting http.port)")
    p.set_defaults(func=commands.serve)

    p = add("worker", "run workers only, on the configured spool and queue")
    p.add_argument("--threads", type=int, default=0,
                   help="worker threads (default 0: queue.workers)")
    p.set_defaults(func=commands.worker)

    p = add("classify", "classify ECG files and folders offline: DICOM, PNG/JPEG or PDF",
            CLASSIFY_EPILOG + "\n\n" + EXIT_STATUSES)
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_FOLDER",
                   help="ECG files, or folders read recursively")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true",
                     help="print one JSON list of every result (full detail) at the end")
    fmt.add_argument("--csv", action="store_true",
                     help="print CSV: file,label,probability,class_name,class_display,"
                          "reason,error")
    p.set_defaults(func=_classify)

    p = add("render", "write the page the model will see as a PNG")
    p.add_argument("file", help="an ECG: DICOM, PNG/JPEG or PDF")
    p.add_argument("-o", "--output", required=True, metavar="PNG",
                   help="the PNG to write (its folder must exist)")
    p.set_defaults(func=commands.render)

    p = add("jobs", "list the service's jobs, or queue failed ones again")
    jobs_sub = p.add_subparsers(dest="jobs_command", required=True, metavar="list|retry")
    q = jobs_sub.add_parser("list", help="jobs in the spool, newest first")
    q.add_argument("--state", choices=[s.value for s in JobState], help="only jobs in this state")
    q.add_argument("--limit", type=int, default=100, help="most jobs listed (default 100)")
    q.add_argument("--json", action="store_true", help="print them as JSON")
    q = jobs_sub.add_parser("retry", help="queue failed jobs again")
    q.add_argument("job_ids", nargs="*", metavar="JOB", help="job ids (default: every failed job)")
    p.set_defaults(func=commands.jobs)

    p = add("spool", "spool maintenance: `spool clean` runs retention once")
    p.add_argument("spool_command", choices=["clean"], help="clean: one retention sweep now")
    p.set_defaults(func=commands.spool)

    p = add("config", "print the effective configuration (paths absolute, secrets masked)")
    p.add_argument("--defaults", action="store_true", help="print the embedded defaults as YAML")
    p.set_defaults(func=commands.config)

    p = add("sample", "write a real sample ECG (DICOM 12-lead) for a first test send")
    p.add_argument("-o", "--output", default=".", metavar="DIR",
                   help=f"folder to write {commands.SAMPLE_NAME} into (made when missing; "
                        "default: the working folder)")
    p.set_defaults(func=commands.sample)

    register_training_commands(sub, EXIT_STATUSES)
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


#: The commands that run the service; the others are tools a person runs.
SERVICES = frozenset({"serve", "worker"})


def _quiet(settings: Settings) -> Settings:
    """A tool's settings: its INFO lines (model loaded, calibration...) are the
    service's business, so the default level INFO becomes WARNING (DEBUG stays)."""
    if settings.logging.level != "INFO":
        return settings
    return settings.model_copy(
        update={"logging": settings.logging.model_copy(update={"level": "WARNING"})})


def _fail(message: str, status: int) -> int:
    print(f"ecg-dicom: {message}", file=sys.stderr)
    return status


def _closed_stdout() -> int:
    """stdout was closed by its reader (``ecg-dicom config | head``): stop quietly.
    Python would otherwise complain again when it flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 128 + 13  # what a shell reports for a process ended by SIGPIPE


def main(argv: list[str] | None = None) -> int:
    """The ``ecg-dicom`` entry point; returns the exit status."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        try:
            settings = load_command_settings(args.config, _command_line(args))
        except ConfigError as exc:
            return _fail(str(exc), EXIT_USAGE)
        configure_process(_quiet(settings) if args.command not in SERVICES else settings)
        status = int(args.func(args, settings))
        sys.stdout.flush()  # a closed pipe shows here, not in Python's exit
        return status
    except BrokenPipeError:
        return _closed_stdout()
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ModelError as exc:
        return _fail(f"the model is not available: {exc}", EXIT_MODEL)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except EcgDicomError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}", EXIT_USAGE)


if __name__ == "__main__":
    raise SystemExit(main())
