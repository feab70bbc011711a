"""Bounds on the work one object may cost, checked before the work is done."""

from __future__ import annotations

from pydantic import Field

from ecg_dicom.config.base import Section


class LimitsSettings(Section):
    """An object over a limit fails with the limit named in its reason (a DICOM
    object over a header-checkable limit is refused at C-STORE)."""

    #: Pixels of one decoded image frame or rendered PDF page (rows x columns).
    max_pixels: int = Field(40_000_000, ge=1)
    #: Frames of one image object.
    max_frames: int = Field(16, ge=1)
    #: Samples of one waveform (channels x samples, all multiplex groups).
    max_waveform_samples: int = Field(4_000_000, ge=1)
    #: Characters of one text value drawn on a page or written into a result.
    max_text_chars: int = Field(1024, ge=16)
    #: Seconds one stage (load, page, detect, build) may take before the job fails.
    stage_timeout: float = Field(120.0, gt=0)
    #: MB of memory one worker may use while reading an object.
    worker_memory_mb: int = Field(3072, ge=256)
