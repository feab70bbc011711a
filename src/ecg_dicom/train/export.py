"""Derive ONNX and OpenVINO models from the shipped ``.pt`` and check they agree with it.

Only the ``.pt`` is committed.  Runtime exports are derived on the machine that
runs them and cached under ``<cache_dir>/<sha256 of the .pt>/``, so a changed
``.pt`` can never be served by a stale export.  Before a faster runtime or a lower
precision becomes the default, :func:`agreement` shows on real pages how often it
reaches the same Normal / Abnormal decision as PyTorch f32, and how far the
confidences move.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ecg_dicom.config import ModelSettings

log = logging.getLogger(__name__)

FORMATS = ("onnx", "openvino", "openvino-int8")
#: Synthetic pages (see :mod:`ecg_dicom.model.synthetic`) used to calibrate int8.
CALIBRATION_PAGES = 48
#: Bumped whenever the calibration pages or the quantisation recipe change, so a
#: cached int8 model made the old way is never served.  2: full bias correction.
CALIBRATION_VERSION = 2
_EXPORT_LOCK = threading.Lock()


def _target(cache_dir: Path, checksum: str, fmt: str, shape: tuple[int, int]) -> Path:
    base = Path(cache_dir) / checksum
    size = f"{shape[0]}x{shape[1]}"
    if fmt == "onnx":
        return base / f"model-{size}.onnx"
    if fmt == "openvino-int8":
        return base / f"model-{size}-int8-c{CALIBRATION_VERSION}_openvino_model"
    return base / f"model-{size}_openvino_model"


def quantize_openvino(
    f32_dir: Path,
    shape: tuple[int, int],
    out: Path,
    pages: Sequence[np.ndarray] | None = None,
    source: str = "synthetic",
) -> Path:
    """An int8 OpenVINO IR of the f32 IR in ``f32_dir``, calibrated with NNCF.

    Calibration inputs are ``pages`` (RGB, as the detector receives them) or, by
    default, :data:`CALIBRATION_PAGES` synthetic pages rendered by the service
    (:func:`ecg_dicom.model.synthetic.calibration_pages`), letterboxed exactly as the
    detector does.  ``calibration.json`` beside the IR records ``source``, the page
    count and :data:`CALIBRATION_VERSION`.  The detection head's box decoding (DFL,
    the anchor arithmetic and the class sigmoids) stays in f32, as ultralytics' own
    int8 export does: quantising coordinates and scores there costs accuracy for no
    speed.  Preset MIXED: symmetric weights, asymmetric activations.  Full bias
    correction (``fast_bias_correction=False``): NNCF re-fits every quantised layer's
    bias on the calibration pages against the f32 outputs, layer by layer, instead of
    the one-step estimate -- twice the derivation time (about 80 s for the shipped
    model on 2 cores).  It was chosen on pages no other choice uses (synthetic ECGs
    of another seed, the real DICOM ECGs; ``scripts/int8_recipes.py``): it moves the
    abnormal score six times less than the fast estimate, and keeps every
    validation label where the fast estimate flipped one (see weights/MODEL_CARD.md).
    """
    import openvino as ov

    from ecg_dicom.model.detector import letterbox
    from ecg_dicom.model.synthetic import calibration_pages

    core = ov.Core()
    xml = next(Path(f32_dir).glob("*.xml"))
    model = core.read_model(str(xml))
    if pages is None:
        pages = list(calibration_pages(CALIBRATION_PAGES))
    if not pages:
        raise ValueError("no calibration pages")
    inputs = [letterbox(page, shape)[0] for page in pages]
    quantized = quantize_model(model, inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        staged = Path(tmp) / out.name
        staged.mkdir()
        ov.save_model(quantized, str(staged / "model.xml"))
        record = {"source": source, "pages": len(inputs), "version": CALIBRATION_VERSION}
        (staged / "calibration.json").write_text(json.dumps(record), encoding="utf-8")
        for extra in Path(f32_dir).glob("*.yaml"):
            shutil.copyfile(extra, staged / extra.name)
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)
    return out


def quantize_model(
    model: Any,
    inputs: Sequence[np.ndarray],
    *,
    fast_bias_correction: bool = False,
    head_f32: bool = False,
) -> Any:
    """The NNCF int8 version of the OpenVINO ``model`` (f32), calibrated on ``inputs``
    (letterboxed NCHW tensors).  The defaults are the shipped recipe (see
    :func:`quantize_openvino`); ``fast_bias_correction`` and ``head_f32`` (every
    convolution of the detection head left unquantised) are the alternatives compared
    by ``scripts/int8_recipes.py``."""
    import nncf

    # The head is the scope of the last Sigmoid (the class scores), as in ultralytics.
    ops = model.get_ordered_ops()
    sigmoids = [op.get_friendly_name() for op in ops if op.get_type_name() == "Sigmoid"]
    head = sigmoids[-1].split("/", 1)[0] if sigmoids else "\0"

    def ignored(op: Any) -> bool:
        name = op.get_friendly_name()
        if op.get_type_name() == "Sigmoid" or name.startswith((f"{head}/", f"{head}.dfl")):
            return True
        return head_f32 and op.get_type_name() == "Convolution" and name.startswith(f"{head}.")

    return nncf.quantize(
        model,
        nncf.Dataset(list(inputs)),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(inputs),
        fast_bias_correction=fast_bias_correction,
        ignored_scope=nncf.IgnoredScope(names=[op.get_friendly_name() for op in ops if ignored(op)]),
    )


def export_model(weights: Path, fmt: str, shape: tuple[int, int], out: Path) -> Path:
    """Export ``weights`` to ``fmt`` ("onnx" or "openvino") for input ``shape`` (h, w), into ``out``.

    Static shape, batch 1, f32 (the runtime chooses its own precision at load).
    ultralytics writes exports beside the weights, so the export runs on a copy in
    a temporary folder and the result is moved to ``out`` (atomic rename).
    """
    if fmt not in ("onnx", "openvino"):
        raise ValueError(f"unknown export format {fmt!r}: use onnx or openvino")
    from ecg_dicom.train.training import prepare_offline

    prepare_offline()
    from ultralytics import YOLO

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        copy = Path(tmp) / "model.pt"
        shutil.copyfile(weights, copy)
        kwargs: dict[str, Any] = {
            "format": fmt, "imgsz": list(shape), "batch": 1, "half": False
        }
        if fmt == "onnx":
            kwargs.update(simplify=True, dynamic=False)
        produced = Path(YOLO(str(copy)).export(**kwargs))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        produced.rename(out)
    return out


@contextmanager
def _cache_lock(cache_dir: Path, checksum: str) -> Iterator[None]:
    """Exclusive use of one checksum's cache folder, across threads and processes (a
    listener and an ``ecg-dicom worker`` starting together must not both derive the
    same export)."""
    import fcntl

    path = Path(cache_dir) / checksum / ".export.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _EXPORT_LOCK, path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _derive_int8(
    weights: Path,
    checksum: str,
    shape: tuple[int, int],
    cache_dir: Path,
    pages: Sequence[np.ndarray] | None = None,
    source: str = "synthetic",
) -> Path:
    """Quantise the (cached, made if missing) f32 IR into the int8 target; caller holds the lock."""
    f32 = _target(cache_dir, checksum, "openvino", shape)
    if not f32.exists():
        export_model(Path(weights), "openvino", shape, f32)
    target = _target(cache_dir, checksum, "openvino-int8", shape)
    return quantize_openvino(f32, shape, target, pages, source)


def cached_export(
    weights: Path, checksum: str, fmt: str, shape: tuple[int, int], cache_dir: Path
) -> Path:
    """The export of ``weights`` for ``fmt`` and input ``shape`` (h, w), made once and cached.

    The cache key is the weights' checksum (verified by the caller), the format and
    the input shape.
    """
    target = _target(cache_dir, checksum, fmt, shape)
    with _cache_lock(cache_dir, checksum):
        if not target.exists():
            log.info(
                "deriving the model for this runtime once (a minute or two on a small CPU)",
                extra={"format": fmt, "cache": str(target)},
            )
            if fmt == "openvino-int8":
                _derive_int8(weights, checksum, shape, cache_dir)
            else:
                export_model(Path(weights), fmt, shape, target)
    return target


def calibrate_int8(
    weights: Path,
    checksum: str,
    shape: tuple[int, int],
    cache_dir: Path,
    folder: Path,
    max_pages: int = 200,
) -> Path:
    """Re-derive the cached ``openvino-int8`` model, calibrated on a site's own pages.

    ``folder`` holds ECG pages in any form the service reads (DICOM waveforms or
    images, PNG/JPEG, PDF; searched recursively, at most ``max_pages``, evenly
    over the sorted names).  They are turned into pages exactly as the service does
    (a waveform is rendered and blanked outside its frame).  The result replaces the synthetic
    calibration in the cache, so ``model.runtime: openvino-int8`` serves it; its
    ``calibration.json`` names the folder.  Check the result with ``ecg-dicom
    evaluate --runtime openvino-int8`` on pages that were *not* used here.
    """
    from ecg_dicom.errors import EcgDicomError
    from ecg_dicom.model.detector import blank_outside_frame
    from ecg_dicom.pages.dispatch import page_from_file

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
    if not pages:
        raise ValueError(f"{folder} holds no page the service can read")
    with _cache_lock(cache_dir, checksum):
        return _derive_int8(
            weights, checksum, shape, cache_dir, pages, source=str(Path(folder).resolve())
        )


def calibration_record(model_dir: Path) -> dict[str, Any]:
    """What an int8 model in the cache was calibrated on (empty for older caches)."""
    path = Path(model_dir) / "calibration.json"
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")))


def agreement(
    settings: ModelSettings,
    images: Sequence[np.ndarray],
    runtimes: Sequence[tuple[str, str]] = (("onnx", "auto"), ("openvino", "auto"), ("openvino", "f32")),
) -> dict[str, dict[str, float]]:
    """Compare each (runtime, precision) with PyTorch f32 on the same RGB pages.

    For each runtime: ``agreement`` (share of pages with the same Normal / Abnormal /
    Not interpretable label), ``class_agreement`` (same top class), ``max_conf_diff`` (largest
    difference of the top-box confidence) and ``max_score_diff`` (of abnormal_score).
    """
    from ecg_dicom.model.detector import Detector

    reference = Detector(settings, runtime="pytorch")
    ref = [reference.detect(_page(image)) for image in images]
    report: dict[str, dict[str, float]] = {}
    for runtime, precision in runtimes:
        detector = Detector(settings, runtime=runtime, precision=precision)
        got = [detector.detect(_page(image)) for image in images]
        n = max(len(images), 1)
        report[f"{runtime}-{precision}"] = {
            "pages": float(len(images)),
            "agreement": sum(a.label == b.label for a, b in zip(ref, got)) / n,
            "class_agreement": sum(a.class_name == b.class_name for a, b in zip(ref, got)) / n,
            "max_conf_diff": max(
                (abs(a.confidence - b.confidence) for a, b in zip(ref, got)), default=0.0
            ),
            "max_score_diff": max(
                (abs(a.abnormal_score - b.abnormal_score) for a, b in zip(ref, got)), default=0.0
            ),
        }
    return report


def _page(image: np.ndarray) -> Any:
    from ecg_dicom.records import Page

    return Page(image=image, source_kind="image")


def load_rgb(path: Path) -> np.ndarray:
    """An image file as an RGB uint8 array (the form of ``Page.image``)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
