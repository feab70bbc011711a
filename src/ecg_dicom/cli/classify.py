"""``ecg-dicom classify``: files and folders of ECGs -> Normal / Abnormal, offline.

Inputs are files (DICOM, PNG/JPEG, PDF) and folders, read recursively (hidden
files and ``DICOMDIR`` left out), each read by the service's own page reader and
model (:meth:`ecg_dicom.pipeline.Pipeline.read_file`).  Output on stdout:

* a table (default), one row per input as soon as it is read;
* ``--csv``: a header and one row per input, also as they come;
* ``--json``: one list of every result at the end.

In the CSV and JSON every input has a record; one that could not be read has its
``error``.  Every error is also written to stderr.  Exit status: 0 when every input
was read (a "Not interpretable" page is an answer), 1 when at least one could not
be, 3 when the model could not be loaded (see ``ecg-dicom --help``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecg_dicom.config import Settings
from ecg_dicom.errors import EcgDicomError, ModelError
from ecg_dicom.progress import Progress

if TYPE_CHECKING:  # the pipeline (and the model runtime) is imported when classify runs
    from ecg_dicom.pipeline import Pipeline

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL = 0, 1, 2, 3

#: Columns of ``--csv`` (and keys of every ``--json`` record besides the full result).
CSV_COLUMNS = ("file", "label", "probability", "class_name", "class_display", "reason", "error")
#: Files inside a folder that are never inputs.
NOT_INPUTS = frozenset({"DICOMDIR"})


def expand(inputs: Iterable[str]) -> tuple[list[Path], list[str]]:
    """(files to read, errors): files as given, folders' files recursively, sorted.

    A name that does not exist is an error (the others are still read)."""
    files: list[Path] = []
    errors: list[str] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.name not in NOT_INPUTS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                errors.append(f"{name}: folder holds no files")
            files += found
        elif path.is_file():
            files.append(path)
        elif path.exists():
            errors.append(f"{name}: not a file or folder")
        else:
            errors.append(f"{name}: no such file or folder")
    return list(dict.fromkeys(files)), errors


def record(path: Path, result: dict[str, Any] | None, error: str = "") -> dict[str, Any]:
    """One input's record: the CSV columns, plus the full result for ``--json``."""
    row: dict[str, Any] = {"file": str(path), "label": "", "probability": None,
                           "class_name": "", "class_display": "", "reason": "", "error": error}
    if result is not None:
        from ecg_dicom.results.captions import display_name

        row.update(result)
        row["class_display"] = display_name(result["class_name"]) if result["class_name"] else ""
    return row


def _read_all(pipeline: Pipeline, files: list[Path]) -> Iterator[dict[str, Any]]:
    """Each file's record, in order (a ModelError stops everything)."""
    for path in files:
        try:
            result = pipeline.read_file(path).result.to_dict()
            yield record(path, result)
        except ModelError:
            raise
        except EcgDicomError as exc:
            yield record(path, None, str(exc))
        except OSError as exc:
            yield record(path, None, exc.strerror or str(exc))
        except Exception as exc:  # a bug on one file: say so, go on with the others
            yield record(path, None, f"unexpected error: {type(exc).__name__}: {exc}")


class Table:
    """The default output: aligned columns, written row by row."""

    def __init__(self, files: list[Path]) -> None:
        self.width = min(max((len(str(p)) for p in files), default=4), 60)
        self.header = False

    def _cut(self, name: str) -> str:
        return name if len(name) <= self.width else "..." + name[-(self.width - 3):]

    def write(self, row: dict[str, Any]) -> None:
        if row["error"]:
            return  # on stderr
        if not self.header:
            print(f"{'FILE':<{self.width}}  {'RESULT':<17}  {'PROB.':>5}  CLASS")
            self.header = True
        probability = "" if row["probability"] is None else f"{row['probability']:.2f}"
        what = row["class_display"] or row["reason"]
        print(f"{self._cut(row['file']):<{self.width}}  {row['label']:<17}  "
              f"{probability:>5}  {what}", flush=True)

    def close(self, counts: dict[str, int]) -> None:
        if self.header:
            summary = ", ".join(f"{n} {label}" for label, n in counts.items() if n)
            print(f"\n{summary}. AI result, not for diagnostic use.")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The ``classify`` command."""
    files, missing = expand(args.inputs)
    for message in missing:
        print(f"ecg-dicom classify: {message}", file=sys.stderr)
    if not files:
        print("ecg-dicom classify: nothing to read", file=sys.stderr)
        return EXIT_FAILED
    writer = csv.DictWriter(sys.stdout, CSV_COLUMNS, extrasaction="ignore") if args.csv else None
    table = None if args.json or args.csv else Table(files)
    from ecg_dicom.pipeline import Pipeline

    pipeline = Pipeline(settings)
    try:
        return _classify(args, pipeline, files, missing, writer, table)
    finally:
        pipeline.close()


def _classify(args: argparse.Namespace, pipeline: Pipeline, files: list[Path],
              missing: list[str], writer: csv.DictWriter[str] | None,
              table: Table | None) -> int:
    rows: list[dict[str, Any]] = []
    counts = {"Normal": 0, "Abnormal": 0, "Not interpretable": 0, "failed": 0}
    tty = sys.stderr.isatty()
    if tty:
        print(f"loading the model {pipeline.settings.model.weights.name} ...",
              file=sys.stderr, end="", flush=True)
    pipeline.detector  # noqa: B018 - load and verify the model before the first page
    if tty:
        print("\r\033[K", file=sys.stderr, end="", flush=True)
    if writer is not None:
        writer.writeheader()
    with Progress("classify", len(files)) as bar:
        for row in _read_all(pipeline, files):
            bar.clear()
            if row["error"]:
                counts["failed"] += 1
                error = row["error"]
                named = error if row["file"] in error else f"{row['file']}: {error}"
                print(f"ecg-dicom classify: {named}", file=sys.stderr)
            else:
                counts[row["label"]] = counts.get(row["label"], 0) + 1
            if writer is not None:
                writer.writerow(row)
                sys.stdout.flush()
            elif table is not None:
                table.write(row)
            else:
                rows.append({k: v for k, v in row.items() if k != "error" or v})
            bar.advance()
    if args.json:
        print(json.dumps(rows, indent=2))
    elif table is not None:
        table.close(counts)
    return EXIT_FAILED if counts["failed"] or missing else EXIT_OK
