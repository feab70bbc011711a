"""Results: the annotated Secondary Capture and the TID 1500 Structured Report.

One call builds both for a processed ECG (:func:`build_outputs`); their UIDs
follow their content (:func:`content_key`, :func:`result_uids`).  The modules,
one job each:

* build: the SC then the SR, UIDs and series numbers chosen (the worker's call);
* source: what the source must hold first (identity UIDs, convertible values, sane
  nesting), else InputError naming the attribute;
* uids: the content key and every derived UID, the Series Numbers per slot;
* sc: the SC document; compression: its transfer syntax and lossy history;
* annotate: the picture (boxes and bands); canvas: where the page sits in it;
  captions: what it says in words; text: Unicode fonts;
* sr: the SR document; measurements: its content tree; codes: its vocabulary;
* equipment: Contributing Equipment (the source device, the algorithm);
* context: identity and order context copied from the source, with charset,
  timezone, orders and valid (strict writing);
* files: Part 10 encoding, the kept files, the sending order (SC before SR).
"""

from ecg_dicom.results.annotate import draw_result
from ecg_dicom.results.build import build_outputs
from ecg_dicom.results.canvas import Layout, layout_for, to_sc_pixels
from ecg_dicom.results.captions import DISPLAY_NAMES, decision_line, identity_line
from ecg_dicom.results.codes import FINDING_CODES, LABEL_CODES, PROBABILITY, finding_code
from ecg_dicom.results.compression import SC_TRANSFER_SYNTAX, sc_for_transfer_syntax, syntax_of
from ecg_dicom.results.files import (
    encode_part10,
    read_kept,
    safe_uid,
    sending_order,
    write_outputs,
)
from ecg_dicom.results.sc import build_sc
from ecg_dicom.results.source import MAX_SEQUENCE_DEPTH, check_source, tag_name
from ecg_dicom.results.sr import build_sr
from ecg_dicom.results.uids import (
    OUTPUT_FORMAT,
    ResultUIDs,
    content_key,
    result_uids,
    series_numbers,
    sr_uid_for_class,
)

__all__ = [
    "DISPLAY_NAMES",
    "FINDING_CODES",
    "LABEL_CODES",
    "MAX_SEQUENCE_DEPTH",
    "OUTPUT_FORMAT",
    "PROBABILITY",
    "SC_TRANSFER_SYNTAX",
    "Layout",
    "ResultUIDs",
    "build_outputs",
    "build_sc",
    "build_sr",
    "check_source",
    "tag_name",
    "content_key",
    "decision_line",
    "draw_result",
    "encode_part10",
    "finding_code",
    "identity_line",
    "layout_for",
    "read_kept",
    "result_uids",
    "safe_uid",
    "sc_for_transfer_syntax",
    "sending_order",
    "series_numbers",
    "sr_uid_for_class",
    "syntax_of",
    "to_sc_pixels",
    "write_outputs",
]
