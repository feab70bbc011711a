"""Bounds on the work one object may cost, checked before the work is done.

See docs/configuration.md and ``ecg_dicom.pages.limits``: each size is checked
from the object's header before anything is decoded; an object over a limit is
refused at C-STORE (0xC002 with the limit named in Error Comment) where its
header shows it, otherwise its job fails at once (an input error, never retried)
with the limit named in the reason; an upload or ``classify`` says the same.
"""

from __future__ import annotations

from pydantic import Field

from ecg_dicom.config.base import Section


class LimitsSettings(Section):
    """An object over a limit fails with the limit named in its reason (a DICOM
    object over a header-checkable limit is refused at C-STORE)."""

    #: Pixels of one decoded image frame, PNG/JPEG or rendered PDF page (rows x
    #: columns; 40 M: an A4 page scanned at 600 dpi is 35 M).  A PDF page that
    #: would be larger at the training pages' width is rendered smaller instead.
    max_pixels: int = Field(40_000_000, ge=1)
    #: Pixels of the page handed on from a picture or PDF: a larger decoded page is
    #: scaled down to this (area interpolation) before detect and build, which run
    #: in the worker (a 12 MP photo or a 300-dpi A4 scan is kept as it is).
    max_page_pixels: int = Field(12_000_000, ge=1_000_000)
    #: Frames an image object may declare (only the first is read).
    max_frames: int = Field(16, ge=1)
    #: Samples of one waveform (channels x samples, all multiplex groups; a 10 s
    #: 12-lead ECG at 500 Hz is 60,000).
    max_waveform_samples: int = Field(4_000_000, ge=1)
    #: Characters of one text value: a longer identity value (Patient's Name, ID,
    #: Study Description...) is refused at C-STORE; text drawn on a page is cut
    #: to this length with an ellipsis.
    max_text_chars: int = Field(1024, ge=16)
    #: Seconds reading one object's page (load + decode or render) may take
    #: before the reader is killed and the job fails with this reason.
    stage_timeout: float = Field(120.0, gt=0)
    #: MB of address space (RLIMIT_AS) of the process that reads one object's
    #: page; its libraries take about 700 MB of it before any object is read.
    worker_memory_mb: int = Field(3072, ge=1024)
    #: Read each object's page in a child process (needed for stage_timeout and
    #: worker_memory_mb to be enforced); off: in the worker thread, header checks only.
    isolate: bool = True
