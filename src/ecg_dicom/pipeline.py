"""The path of one ECG, written once: load -> render -> detect -> build (and keep).

Everything that turns an input into a result goes through here: the service's
workers (``ecg-dicom serve`` and ``ecg-dicom worker``), ``ecg-dicom classify``,
the upload page's ``/api/classify`` and ``ecg-dicom evaluate``.  So the figures
in the model card are the figures of the page reader and model the service runs.

A picture (image or PDF page) passes two more stages before detect:
``straighten`` (:mod:`ecg_dicom.pages.straighten`: tilt and perspective undone, so
the detector reads an upright chart like its training pages; what was done is
kept in :attr:`Reading.straightening`) and ``check``
(:mod:`ecg_dicom.pages.chart_check`: a picture that is not a readable 12-lead
page -- not an ECG, an empty grid, a 2-lead strip, too dark or blurred -- is
"Not interpretable" with the reason).

Each stage runs inside :func:`stage`, which times it (``ecgdicom_stage_seconds``)
and remembers its name in a :class:`Trace`, so a failure can say where it happened
("render: ...").  A signal the model cannot read is an answer, not a failure:
:class:`~ecg_dicom.errors.NotInterpretableError` from render or detect becomes a
"Not interpretable" result with the page that shows why.

Bounded work (``limits.*``): the page of a file or received instance is read
in a child process (:class:`~ecg_dicom.pages.PageReader`: killed past
``limits.stage_timeout``, ``limits.worker_memory_mb`` of address space), every
size its header declares checked before decoding.  What follows works on that
bounded page: detect (the model reads a fixed-size input) and build (text cut
to the width it is drawn in), so they stay in the calling thread.  With
``limits.isolate`` off, the page is read in the calling thread (same checks, no
time limit or memory budget).

The job state machine around this (attempts, ledger states, delivery) is the
worker's; this module knows nothing of spools or queues.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from pydicom import Dataset
from pydicom.errors import BytesLengthException

from ecg_dicom import metrics
from ecg_dicom.config import Settings
from ecg_dicom.errors import InputError, NotInterpretableError
from ecg_dicom.model import Detector, not_interpretable
from ecg_dicom.pages import (
    PageReader,
    not_interpretable_page,
    page_from_dataset,
    page_from_file,
    read_received,
)
from ecg_dicom.pages.chart_check import check_chart
from ecg_dicom.pages.straighten import straighten_page
from ecg_dicom.records import Classification, Outputs, Page, ResultHistory
from ecg_dicom.results import build_outputs, write_outputs

log = logging.getLogger("ecg_dicom.worker")


@dataclass
class Trace:
    """Where a run is: the stage that runs now (or failed)."""

    stage: str = "load"


@contextlib.contextmanager
def stage(trace: Trace, name: str) -> Iterator[None]:
    """Run one stage: named in ``trace`` (for a failure's reason), timed when it succeeds."""
    trace.stage = name
    started = time.perf_counter()
    yield
    metrics.STAGE_SECONDS.labels(stage=name).observe(time.perf_counter() - started)


@dataclass(frozen=True)
class Reading:
    """What the model read: the page it saw and its result (maybe Not interpretable)."""

    page: Page
    result: Classification
    #: What straightening did to a picture (``Straightened.describe()``, e.g.
    #: "rotation -7.02 deg" or "none"); empty for a rendered waveform.
    straightening: str = ""


#: Modules whose ValueError during build means "a value of the source cannot be
#: converted or written" (a date that is not a date, a character set highdicom
#: refuses): bad input, failed at once.  A ValueError from anywhere else is a bug.
_VALUE_MODULES = frozenset(
    {"pydicom.valuerep", "pydicom.charset", "pydicom.values", "highdicom.valuerep"}
)
#: ... and what they raise for a value whose bytes do not fit its VR, or a VR that
#: does not exist (a received element pydicom converts only when build copies it).
_VALUE_ERRORS = (ValueError, struct.error, BytesLengthException, NotImplementedError)


#: Values larger than this stay in the received file until used (the load stage):
#: the worker keeps an ECG's identity and context in memory, not a large picture's
#: pixels, which only the page reader decodes.
LOAD_DEFER_BYTES = 1 << 20


def load_dataset(path: Path) -> Dataset:
    """Read a received instance (the load stage), large values deferred."""
    return read_received(path, defer_size=LOAD_DEFER_BYTES)


def raised_in(exc: BaseException) -> str:
    """The module of the innermost frame ``exc`` was raised in ("" when unknown)."""
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", ""))


class Pipeline:
    """The stages, wired in one place.  The detector is loaded once per process.

    One pipeline serves every thread of a process (worker threads and HTTP
    uploads); the detector it holds is safe for concurrent calls (model/).
    ``detector`` may be given (tests, ``evaluate`` with its own weights); else it
    is loaded from ``settings.model`` on first use.
    """

    def __init__(self, settings: Settings, detector: Detector | None = None) -> None:
        self.settings = settings
        self._detector = detector
        self._detector_lock = threading.Lock()
        self._preparing = False
        self._model_error: str | None = None
        #: Where pages are read: child processes under ``limits`` (None: in this thread).
        self.reader = PageReader(settings.limits) if settings.limits.isolate else None

    @property
    def detector(self) -> Detector:
        """The model, loaded and verified on first use (once per process).

        Loading happens under a lock: threads asking at the same time wait for the
        one load instead of each loading (and holding) a model of their own.  A
        load that fails leaves nothing behind, so the next call tries again.
        """
        detector = self._detector
        if detector is None:
            with self._detector_lock:
                detector = self._detector
                if detector is None:
                    detector = self._detector = Detector(self.settings.model)
        return detector

    def prepare_model(self) -> Detector:
        """Load the model now (deriving its runtime export on a first start), recording
        the state :attr:`model_state` reports; ``serve`` calls it in a thread of its own
        so that the listener opens at once."""
        self._preparing = True
        try:
            detector = self.detector
        except Exception as exc:
            self._model_error = str(exc) or type(exc).__name__
            raise
        finally:
            self._preparing = False
        self._model_error = None
        return detector

    @property
    def model_state(self) -> str:
        """"ready", "preparing", "failed: <why>" or "not loaded" (loaded on first use)."""
        if self._detector is not None:
            return "ready"
        if self._preparing:
            return "preparing"
        return f"failed: {self._model_error}" if self._model_error else "not loaded"

    @property
    def loaded_detector(self) -> Detector | None:
        """The detector if it is loaded, without loading it (for health reports)."""
        return self._detector

    def close(self) -> None:
        """Stop the page-reading children (a later read starts new ones)."""
        if self.reader is not None:
            self.reader.close()

    # -- the path of one ECG ----------------------------------------------------
    def read_instance(self, path: Path, trace: Trace | None = None) -> tuple[Dataset, Reading]:
        """load -> render -> detect for a received instance (render: the child reads
        the file again, so nothing decoded in this process comes from the object)."""
        trace = trace or Trace()
        with stage(trace, "load"):
            ds = load_dataset(path)
        reader = self.reader
        if reader is None:
            return ds, self.read_dataset(ds, trace)
        return ds, self._read(lambda: reader.page(path, received=True), trace)

    def read_dataset(self, ds: Dataset, trace: Trace | None = None) -> Reading:
        """render -> detect for a dataset already loaded (in this thread)."""
        trace = trace or Trace()
        return self._read(lambda: page_from_dataset(ds, self.settings.limits), trace)

    def read_file(self, path: Path, trace: Trace | None = None) -> Reading:
        """load + render -> detect for a file of any accepted kind (DICOM, PNG/JPEG, PDF):
        the one page reader of ``classify``, ``/api/classify`` and ``evaluate``."""
        trace = trace or Trace()
        reader = self.reader
        if reader is None:
            return self._read(lambda: page_from_file(path, self.settings.limits), trace)
        return self._read(lambda: reader.page(path), trace)

    def build(
        self,
        ds: Dataset,
        reading: Reading,
        *,
        slot: int = 0,
        history: ResultHistory | None = None,
        keep_in: Path | None = None,
        trace: Trace | None = None,
    ) -> Outputs:
        """build (and keep): the SR and annotated SC of a reading, written to ``keep_in``
        (the job's results folder in the spool) before anything is sent.

        An input the results cannot be built from raises InputError naming why:
        the checks of results.check_source, and what pydicom or highdicom raise
        converting a source value (:data:`_VALUE_ERRORS` in :data:`_VALUE_MODULES`)."""
        with stage(trace or Trace(), "build"):
            try:
                outputs = build_outputs(
                    ds, reading.page, reading.result, self.settings, slot=slot,
                    history=history,
                )
            except _VALUE_ERRORS as exc:
                if raised_in(exc) not in _VALUE_MODULES:
                    raise
                raise InputError(
                    f"a value of the ECG cannot be written into the results: {exc}"
                ) from exc
            if keep_in is not None:
                write_outputs(outputs, keep_in)
        return outputs

    # -- stages -------------------------------------------------------------------
    def _read(self, render: Callable[[], Page], trace: Trace) -> Reading:
        straightening = ""
        try:
            with stage(trace, "render"):
                page = render()
            if page.source_kind != "waveform":
                # a picture of a paper ECG: made upright like the training pages, then
                # checked to be a readable 12-lead chart (a rendered waveform is both)
                with stage(trace, "straighten"):
                    page, done = straighten_page(page)
                    straightening = done.describe()
                with stage(trace, "check"):
                    check_chart(page)
            with stage(trace, "detect"):
                result = self.detector.detect(page)
        except NotInterpretableError as exc:
            # A signal that cannot be read is an answer, not a failure: the SR says
            # "not interpretable" with the reason, and the SC shows it.
            log.warning("not interpretable: %s", exc, extra={"stage": trace.stage})
            reading = self.not_interpretable(exc)
            return replace(reading, straightening=straightening,
                           result=replace(reading.result, straightening=straightening))
        # the result carries it too: the SR's Algorithm Parameters and the job record
        return Reading(page, replace(result, straightening=straightening), straightening)

    def not_interpretable(self, exc: NotInterpretableError) -> Reading:
        """The page and result for an input the model cannot read: the page the error
        carries (or a blank page stating the reason) and a "Not interpretable" result."""
        detector = self.detector
        result = not_interpretable(
            exc.reason,
            model_name=detector.name,
            model_version=detector.version,
            runtime=detector.runtime_label,
        )
        return Reading(not_interpretable_page(exc), result)

