"""Site calibration of the int8 model: re-derive it from a site's own ECG pages.

``ecg-dicom export --format openvino-int8 --calibration DIR``.  The shipped int8
model is calibrated on synthetic pages (:mod:`ecg_dicom.model.synthetic`); a site
can replace it with one calibrated on the pages its carts print.  Not to be confused
with the channel sensitivity of a waveform (pages) or the synthetic int8 pages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecg_dicom.errors import EcgDicomError
from ecg_dicom.model import Int8Calibration, blank_outside_frame, derive_int8
from ecg_dicom.pages import page_from_file


def site_pages(folder: Path, max_pages: int = 200) -> list[np.ndarray]:
    """The pages of ``folder`` as the detector receives them (white outside the frame).

    Files in any form the service reads (DICOM waveforms or images, PNG/JPEG, PDF;
    searched recursively, at most ``max_pages``, evenly over the sorted names); files
    the service cannot read as an ECG page are skipped.
    """
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    if len(files) > max_pages:  # evenly over the sorted names: every class folder is sampled
        files = [files[int(i * len(files) / max_pages)] for i in range(max_pages)]
    pages: list[np.ndarray] = []
    for path in files:
        try:
            page = page_from_file(path)
        except (EcgDicomError, OSError, ValueError):
            continue  # not an ECG page the service can read: not calibration material
        pages.append(blank_outside_frame(page.image, page.frame))
    return pages


def calibrate_int8_on_site(
    weights: Path,
    checksum: str,
    shape: tuple[int, int],
    cache_dir: Path,
    folder: Path,
    max_pages: int = 200,
) -> Path:
    """Re-derive the cached ``openvino-int8`` model, calibrated on a site's own pages.

    The pages (:func:`site_pages`) are turned into pages exactly as the service does
    (a waveform is rendered and blanked outside its frame).  The result replaces the
    synthetic calibration in the cache, so ``model.runtime: openvino-int8`` serves it;
    its ``calibration.json`` names the folder.  Check the result with ``ecg-dicom
    evaluate --runtime openvino-int8`` on pages that were *not* used here.
    """
    pages = site_pages(folder, max_pages)
    if not pages:
        raise ValueError(f"{folder} holds no page the service can read")
    calibration = Int8Calibration(pages, source=str(Path(folder).resolve()))
    return derive_int8(weights, checksum, shape, cache_dir, calibration)
