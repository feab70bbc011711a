"""Pages: any accepted input -> the :class:`~ecg_dicom.records.Page` the model reads.

Modules, in the order one ECG goes through them:

* ``dispatch``    by SOP Class UID (or a file's first bytes): waveform, picture or PDF
* ``samples``     Waveform Data bytes -> raw sample values (every PS3.3 encoding)
* ``multiplex``   one multiplex group: channels named, their sensitivity applied (µV)
* ``waveform``    the rhythm group, the channels drawn, the header -> Signals
* ``header_text`` the header lines above the chart frame
* ``quality``     every "Not interpretable" rule (signal and 12-lead page)
* ``layout``      page geometry, scales and rows; ``render`` draws them (OpenCV)
* ``blank``       the page shown for a not-interpretable input
* ``images``      DICOM pictures, PNG/JPEG and PDF -> page
* ``straighten``  a picture's chart made upright (tilt, perspective), like the training pages
* ``chart_check`` whether a straightened picture is a readable 12-lead page (else the reason)
* ``limits``      what a header declares, checked before decoding (``limits.*``)
* ``sandbox``     pages read in a child process: time limit, memory budget
"""

from ecg_dicom.pages.blank import BLANK_TITLE, blank_page, not_interpretable_page
from ecg_dicom.pages.dispatch import (
    MALFORMED_VALUE_ERRORS,
    page_from_dataset,
    page_from_file,
    read_received,
)
from ecg_dicom.pages.images import page_from_image_bytes, page_from_pdf_bytes
from ecg_dicom.pages.layout import (
    FRAME,
    GAIN_MM_MV,
    PAGE_SIZE,
    PAPER_SPEED_MM_S,
    PX_PER_MM,
    plan_rows,
    px_per_microvolt,
    px_per_second,
    row_baselines,
)
from ecg_dicom.pages.limits import (
    COPIED_TEXT,
    check_image_dataset,
    check_image_geometry,
    check_text_values,
    check_waveform_dataset,
    clip_text,
)
from ecg_dicom.pages.quality import FLAT_MICROVOLTS, MIN_TWELVE_LEAD_SECONDS, interpretable_page
from ecg_dicom.pages.render import render_page, write_page_png
from ecg_dicom.pages.sandbox import PageReader, PageReaderError
from ecg_dicom.pages.waveform import load_waveform

__all__ = [
    "BLANK_TITLE",
    "COPIED_TEXT",
    "FLAT_MICROVOLTS",
    "FRAME",
    "GAIN_MM_MV",
    "MALFORMED_VALUE_ERRORS",
    "MIN_TWELVE_LEAD_SECONDS",
    "PAGE_SIZE",
    "PAPER_SPEED_MM_S",
    "PX_PER_MM",
    "PageReader",
    "PageReaderError",
    "blank_page",
    "check_image_dataset",
    "check_image_geometry",
    "check_text_values",
    "check_waveform_dataset",
    "clip_text",
    "interpretable_page",
    "load_waveform",
    "not_interpretable_page",
    "page_from_dataset",
    "page_from_file",
    "page_from_image_bytes",
    "page_from_pdf_bytes",
    "plan_rows",
    "px_per_microvolt",
    "px_per_second",
    "read_received",
    "render_page",
    "row_baselines",
    "write_page_png",
]
