"""Build the two result objects for one processed ECG: the one call the worker makes.

The SC is built first because the SR points into it: its image regions are in
the SC's pixel space and reference the SC's SOP Instance UID, and the SC is
evidence of the SR (PS3.3 C.17.2.2).  Both are pure functions of the source,
the page, the result and the settings; their UIDs follow that content
(:func:`ecg_dicom.results.uids.content_key`), so the same ECG with the same model and
settings always gives the same objects, and anything else gives new ones.

Two facts come from the ledger, not from the ECG, and are passed in by the worker:

* ``slot``: the ECG's place among the ECGs of its study that got results, which
  chooses the Series Numbers (:func:`ecg_dicom.results.uids.series_numbers`), so
  several ECGs of one study never share a result series number;
* ``history``: the result the ECG was last delivered with.  When the content has
  changed since (new weights, runtime, decision settings, renderer...), the UIDs
  differ and the new SR names the delivered one in its Predecessor Documents
  Sequence (PS3.3 C.17.2.3).  When it has not, the SR is the very same object as
  before, predecessor included (a re-send must never change an object under its UID).
"""

from __future__ import annotations

from pydicom import Dataset

from ecg_dicom.config import Settings
from ecg_dicom.records import Classification, Outputs, Page, ResultHistory
from ecg_dicom.results.sc import build_sc
from ecg_dicom.results.source import check_source
from ecg_dicom.results.sr import build_sr
from ecg_dicom.results.uids import series_numbers, uids_for


def build_outputs(
    source: Dataset,
    page: Page,
    result: Classification,
    settings: Settings,
    *,
    slot: int = 0,
    history: ResultHistory | None = None,
) -> Outputs:
    """The annotated SC and the TID 1500 SR for ``source``, in that order.

    Raises :class:`~ecg_dicom.errors.InputError` naming the attribute when the
    source lacks what results need (:func:`ecg_dicom.results.source.check_source`).
    """
    check_source(source)
    out = settings.output
    uids = uids_for(source, page, result, settings)
    predecessor = history.predecessor_of(uids.sr_sop) if history else None
    sc_number, sr_number = series_numbers(out.series_number_sc, out.series_number_sr, slot)
    sc = build_sc(source, page, result, settings, uids=uids, series_number=sc_number)
    sr = build_sr(
        source, sc, page, result, settings,
        uids=uids, series_number=sr_number, predecessor=predecessor,
    )
    return Outputs(sc=sc, sr=sr)
