"""Runtime models derived from the shipped ``.pt``: ONNX, OpenVINO f32 and OpenVINO int8.

Only the ``.pt`` is committed.  Runtime exports are derived on the machine that
runs them and cached under ``<cache_dir>/<sha256 of the .pt>/`` (:func:`cache_target`),
so a changed ``.pt`` can never be served by a stale export.  The int8 model is the
f32 OpenVINO IR quantised by NNCF, calibrated on synthetic pages the service renders
(:mod:`ecg_dicom.model.synthetic`) unless a site re-derives it from its own pages
(``ecg-dicom export --calibration``).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecg_dicom.config import MODEL_RUNTIMES
from ecg_dicom.model.offline import prepare_offline, quiet_library_output
from ecg_dicom.model.preprocess import letterbox
from ecg_dicom.model.synthetic import int8_calibration_pages

# The logger keeps its v0.1 name (log consumers filter on it).
log = logging.getLogger("ecg_dicom.train.export")

#: The runtimes whose model is derived from the ``.pt`` (``ecg-dicom export --format``).
DERIVED_RUNTIMES: tuple[str, ...] = tuple(r for r in MODEL_RUNTIMES if r not in ("auto", "pytorch"))
#: Synthetic pages (see :mod:`ecg_dicom.model.synthetic`) used to calibrate int8.
INT8_CALIBRATION_PAGES = 48
#: Bumped whenever the calibration pages or the quantisation recipe change, so a
#: cached int8 model made the old way is never served.  2: full bias correction.
INT8_CALIBRATION_VERSION = 2
_EXPORT_LOCK = threading.Lock()
#: Seconds a first derivation takes for the shipped YOLOv8m (52 MB) on 2 CPU cores
#: (measured: int8 = the OpenVINO export + NNCF calibration, about 4 min); the
#: announced estimate scales it by the weights' size (:func:`derivation_estimate`).
DERIVATION_SECONDS = {"openvino-int8": 240.0, "openvino": 100.0, "onnx": 100.0}
_SHIPPED_WEIGHTS_BYTES = 52_077_148
_FORMAT_WORDS = {
    "openvino-int8": "the int8 model for this CPU",
    "openvino": "the OpenVINO model for this CPU",
    "onnx": "the ONNX model",
}


def cache_target(cache_dir: Path, checksum: str, fmt: str, shape: tuple[int, int]) -> Path:
    base = Path(cache_dir) / checksum
    size = f"{shape[0]}x{shape[1]}"
    if fmt == "onnx":
        return base / f"model-{size}.onnx"
    if fmt == "openvino-int8":
        return base / f"model-{size}-int8-c{INT8_CALIBRATION_VERSION}_openvino_model"
    return base / f"model-{size}_openvino_model"


@dataclass(frozen=True)
class Int8Calibration:
    """What an int8 model is calibrated on: ``pages`` (RGB, as the detector receives
    them) and where they came from (``source``, recorded in ``calibration.json``)."""

    pages: Sequence[np.ndarray]
    source: str


def quantize_openvino(
    f32_dir: Path, shape: tuple[int, int], out: Path, calibration: Int8Calibration | None = None
) -> Path:
    """An int8 OpenVINO IR of the f32 IR in ``f32_dir``, calibrated with NNCF.

    Calibration inputs are ``calibration.pages`` or, by default,
    :data:`INT8_CALIBRATION_PAGES` synthetic pages rendered by the service
    (:func:`ecg_dicom.model.synthetic.int8_calibration_pages`), letterboxed exactly as the
    detector does.  ``calibration.json`` beside the IR records ``source``, the page
    count and :data:`INT8_CALIBRATION_VERSION`.  The detection head's box decoding (DFL,
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

    core = ov.Core()
    xml = next(Path(f32_dir).glob("*.xml"))
    model = core.read_model(str(xml))
    if calibration is None:
        calibration = Int8Calibration(
            list(int8_calibration_pages(INT8_CALIBRATION_PAGES)), "synthetic"
        )
    pages, source = calibration.pages, calibration.source
    if not pages:
        raise ValueError("no calibration pages")
    inputs = [letterbox(page, shape)[0] for page in pages]
    with quiet_exporter_warnings():
        quantized = quantize_model(model, inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        staged = Path(tmp) / out.name
        staged.mkdir()
        ov.save_model(quantized, str(staged / "model.xml"))
        record = {"source": source, "pages": len(inputs), "version": INT8_CALIBRATION_VERSION}
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
        ignored_scope=nncf.IgnoredScope(
            names=[op.get_friendly_name() for op in ops if ignored(op)]
        ),
    )


def export_model(weights: Path, fmt: str, shape: tuple[int, int], out: Path) -> Path:
    """Export ``weights`` to ``fmt`` ("onnx" or "openvino") for input ``shape`` (h, w),
    into ``out``.

    Static shape, batch 1, f32 (the runtime chooses its own precision at load).
    ultralytics writes exports beside the weights, so the export runs on a copy in
    a temporary folder and the result is moved to ``out`` (atomic rename).
    """
    if fmt not in ("onnx", "openvino"):
        raise ValueError(f"unknown export format {fmt!r}: use onnx or openvino")
    prepare_offline()
    from ultralytics import YOLO

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        copy = Path(tmp) / "model.pt"
        shutil.copyfile(weights, copy)
        kwargs: dict[str, Any] = {"format": fmt, "imgsz": list(shape), "batch": 1}
        if fmt == "onnx":
            kwargs.update(simplify=True, dynamic=False)
        with quiet_exporter_warnings():
            produced = Path(YOLO(str(copy)).export(**kwargs))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        produced.rename(out)
    return out


@contextmanager
def quiet_exporter_warnings() -> Iterator[None]:
    """Silence what torch says about the exporters ultralytics drives (its TorchScript
    tracer and legacy ONNX exporter are announced for removal; the tracer warns about
    traced Python values). They concern ultralytics' code, not the operator, and a
    process run with warnings as errors (the test suite) must still derive its model."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.trace", FutureWarning)
        warnings.filterwarnings(
            "ignore", "You are using the legacy TorchScript-based ONNX export",
            DeprecationWarning,
        )
        warnings.filterwarnings(
            "ignore", "The feature will be removed. Please remove usage of this function",
            DeprecationWarning,
        )
        warnings.filterwarnings("ignore", "Converting a tensor to a Python boolean")
        yield


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
    calibration: Int8Calibration | None = None,
) -> Path:
    """Quantise the (cached, made if missing) f32 IR into the int8 target; caller holds the lock."""
    f32 = cache_target(cache_dir, checksum, "openvino", shape)
    if not f32.exists():
        export_model(Path(weights), "openvino", shape, f32)
    target = cache_target(cache_dir, checksum, "openvino-int8", shape)
    return quantize_openvino(f32, shape, target, calibration)


def derive_int8(
    weights: Path, checksum: str, shape: tuple[int, int], cache_dir: Path,
    calibration: Int8Calibration,
) -> Path:
    """(Re-)derive the cached int8 model calibrated on ``calibration``; it replaces the
    cached one, so ``model.runtime: openvino-int8`` serves it from now on."""
    with _cache_lock(cache_dir, checksum):
        return _derive_int8(weights, checksum, shape, cache_dir, calibration)


def cached_export(
    weights: Path, checksum: str, fmt: str, shape: tuple[int, int], cache_dir: Path
) -> Path:
    """The export of ``weights`` for ``fmt`` and input ``shape`` (h, w), made once and cached.

    The cache key is the weights' checksum (verified by the caller), the format and
    the input shape.
    """
    target = cache_target(cache_dir, checksum, fmt, shape)
    with _cache_lock(cache_dir, checksum):
        if not target.exists():
            log.info(
                "preparing %s (first start only, %s) ...",
                _FORMAT_WORDS.get(fmt, fmt), derivation_estimate(fmt, weights),
                extra={"format": fmt, "cache": str(target)},
            )
            with quiet_library_output():
                if fmt == "openvino-int8":
                    _derive_int8(weights, checksum, shape, cache_dir)
                else:
                    export_model(Path(weights), fmt, shape, target)
    return target


def derivation_estimate(fmt: str, weights: Path) -> str:
    """How long deriving ``fmt`` from ``weights`` takes, in words ("about 4 min")."""
    seconds = DERIVATION_SECONDS.get(fmt, 100.0) * (
        Path(weights).stat().st_size / _SHIPPED_WEIGHTS_BYTES
    )
    return "under a minute" if seconds < 60 else f"about {round(seconds / 60)} min"


def int8_calibration_record(model_dir: Path) -> dict[str, Any]:
    """What an int8 model in the cache was calibrated on (empty for older caches)."""
    path = Path(model_dir) / "calibration.json"
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")))
