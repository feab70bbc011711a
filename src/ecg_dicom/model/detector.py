"""The detect stage: verified weights, one decision rule, and a fast runtime.

* :func:`verify_weights` checks the shipped ``.pt`` against its SHA-256 before the
  service starts; the checksum is the algorithm version reported in every result.
* :func:`decide` is the **one** decision rule, used by the service and by
  evaluation alike, so the figures in the model card are the service's figures.
* :class:`Detector` loads the model once (PyTorch, ONNX Runtime or OpenVINO) and
  turns a :class:`~ecg_dicom.records.Page` into a :class:`~ecg_dicom.records.Classification`.
  All three runtimes share the same letterbox pre-processing and the same
  non-maximum suppression, so they differ only in the arithmetic of the network.
  ONNX and OpenVINO models are derived from the ``.pt`` and cached under
  ``settings.export_cache_dir/<checksum>/`` (see :mod:`ecg_dicom.train.export`).

Concurrency: one :class:`Detector` serves every thread of a process (the worker
threads and the HTTP uploads at once), so each runtime is safe for any number of
concurrent callers and returns an array that it owns -- never a buffer that the next
call overwrites.  Each runtime class says how.  A result therefore belongs to the page
it was computed from, whatever runs beside it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecg_dicom.errors import ModelError
from ecg_dicom.records import CLASS_NAMES, NORMAL_CLASS, Classification, Detection, Page

if TYPE_CHECKING:  # annotations only: pre-processing and decide() need no configuration
    from ecg_dicom.config import ModelSettings

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.detect")

#: Height / width of the network input.  ECG prints are landscape: the training pages
#: and the service's own renderings are 1600 x 1137 (1.41 : 1), which at 832 px wide is
#: 832 x 591 and fits 832 x 608 (the next multiple of the stride) -- the same input
#: ultralytics' own predict builds for such a page.  A square input would spend 27 %
#: of the arithmetic on padding; the network is fully convolutional.
INPUT_ASPECT = 0.73
#: Network stride: input sides are multiples of it.
STRIDE = 32
#: Non-maximum suppression IoU (ultralytics' default) and most boxes kept per page.
NMS_IOU = 0.7
MAX_DETECTIONS = 20


# --- weights ---------------------------------------------------------------------------------


def weights_checksum(path: Path) -> str:
    """SHA-256 (lower-case hex) of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def verify_weights(settings: ModelSettings) -> str:
    """Check the weights file and return its SHA-256 (the algorithm version).

    The expected checksum is ``settings.sha256`` when set, else the first word of
    the ``<weights>.sha256`` file beside the weights (``sha256sum`` format).  When
    both exist both must match.  Raises :class:`ModelError` naming the file, what
    was expected and what to do when the file is missing, unreadable, or differs.
    """
    path = Path(settings.weights)
    if not path.is_file():
        raise ModelError(
            f"model weights {path} not found: install the shipped weights or set model.weights"
        )
    try:
        actual = weights_checksum(path)
    except OSError as exc:
        raise ModelError(f"model weights {path} cannot be read: {exc}") from exc
    expected: list[tuple[str, str]] = []
    if settings.sha256:
        expected.append(("model.sha256 setting", settings.sha256.strip().lower()))
    sidecar = _sidecar(path)
    if sidecar.is_file():
        words = sidecar.read_text(encoding="utf-8").split()
        expected.append((str(sidecar), words[0].lower() if words else ""))
    if not expected:
        raise ModelError(
            f"no checksum to verify {path} against: set model.sha256 or ship {sidecar}"
        )
    for origin, value in expected:
        if value != actual:
            raise ModelError(
                f"model weights {path} have SHA-256 {actual}, but {origin} expects "
                f"{value or '(empty)'}: the file is corrupt or not the validated model"
            )
    return actual


# --- the decision rule -----------------------------------------------------------------------


#: The reason given when the detector finds no box: the page shows no chart it knows.
NO_CHART_REASON = "the model found no ECG chart on the page"


def decide(
    detections: Iterable[Detection],
    *,
    model_name: str,
    model_version: str,
    threshold: float = 0.5,
    runtime: str = "",
) -> Classification:
    """Reduce the boxes found on one page to Normal / Abnormal.

    * ``normal`` = highest confidence of a Normal-ECG box (0 if none);
      ``abnormal`` = highest confidence of a box of any other class (0 if none).
    * ``abnormal_score = abnormal / (abnormal + normal)``: the share of the
      evidence that is abnormal, in [0, 1]; it is the score AUROC is computed on.
    * Label "Abnormal" iff ``abnormal_score >= threshold``, else "Normal".
    * No box at all: "Not interpretable" (:func:`not_interpretable`, reason
      :data:`NO_CHART_REASON`; class None, confidence 0, score 0), never Normal:
      the model saw nothing it was trained on, which says nothing about the heart.
    * ``class_name`` / ``confidence`` are those of the most confident box of the
      side the label names (a Normal-ECG box for Normal, any other class for
      Abnormal), so the named class never contradicts the label; with the default
      threshold 0.5 that is the single most confident box.
    * Only the boxes carrying ``normal`` and ``abnormal`` count; the result names
      them (:attr:`~ecg_dicom.records.Classification.decisive`), and only they become
      coded findings in the SR.  ``probability`` is the score, or 1 minus it for Normal.
    * ``runtime`` (what computed the boxes) is carried into the result as given.

    Why a ratio and not the top box alone: the detector often puts boxes of two
    classes on the same chart frame; the ratio uses both, and the threshold then
    trades sensitivity for specificity on one continuous score.
    """
    boxes = tuple(sorted(detections, key=lambda d: d.confidence, reverse=True))
    if not boxes:
        return not_interpretable(NO_CHART_REASON, model_name, model_version, runtime)
    normal = max((d.confidence for d in boxes if d.class_name == NORMAL_CLASS), default=0.0)
    abnormal = max((d.confidence for d in boxes if d.class_name != NORMAL_CLASS), default=0.0)
    total = normal + abnormal
    score = abnormal / total if total > 0 else 0.5
    abnormal_call = score >= threshold
    # A threshold of 0 (or above 1) can name a side without a box: then the top box.
    side = [d for d in boxes if (d.class_name != NORMAL_CLASS) == abnormal_call]
    named = (side or list(boxes))[0]
    return Classification(
        label="Abnormal" if abnormal_call else "Normal",
        class_name=named.class_name,
        confidence=float(named.confidence),
        abnormal_score=float(score),
        detections=boxes,
        model_name=model_name,
        model_version=model_version,
        runtime=runtime,
    )


def not_interpretable(
    reason: str, model_name: str, model_version: str, runtime: str = ""
) -> Classification:
    """The result for a page or signal the model cannot interpret: label
    "Not interpretable" with ``reason``, no class, no box, no probability.

    The worker uses it for an input the renderer refused
    (:class:`~ecg_dicom.errors.NotInterpretableError`); :func:`decide` for a page
    without any box.
    """
    return Classification(
        label="Not interpretable",
        class_name=None,
        confidence=0.0,
        abnormal_score=0.0,
        detections=(),
        model_name=model_name,
        model_version=model_version,
        runtime=runtime,
        reason=reason,
    )


# --- pre- and post-processing shared by every runtime ----------------------------------------


def input_shape(imgsz: int) -> tuple[int, int]:
    """Network input (h, w) for ``model.imgsz``: ``imgsz`` wide, ``INPUT_ASPECT`` high, rounded up to the stride."""
    height = -(-round(imgsz * INPUT_ASPECT) // STRIDE) * STRIDE
    return max(height, STRIDE), imgsz


def resize_page(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` at ``width`` x ``height``: area averaging when shrinking (a 1-2 px trace
    survives a 2.5x reduction, where bilinear sampling skips pixels), bilinear when
    enlarging.  The training pages are shrunk with this too (``dataset build --width``)."""
    import cv2

    shrink = width < image.shape[1]
    return cv2.resize(
        image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping the aspect ratio and pad with grey (114) to ``size`` (h, w).

    Returns the NCHW float32 RGB tensor in [0, 1], the scale and the (x, y) padding,
    which map boxes back to page pixels.  Same geometry as ultralytics' LetterBox
    (which samples bilinearly; here a page is shrunk with area averaging).
    """
    import cv2

    h, w = image.shape[:2]
    scale = min(size[0] / h, size[1] / w)
    new_w, new_h = round(w * scale), round(h * scale)
    pad_x, pad_y = (size[1] - new_w) / 2, (size[0] - new_h) / 2
    if (new_w, new_h) != (w, h):
        image = resize_page(image, new_w, new_h)
    top, bottom = round(pad_y - 0.1), round(pad_y + 0.1)
    left, right = round(pad_x - 0.1), round(pad_x + 0.1)
    padded = cv2.copyMakeBorder(
        image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114)
    )
    # HWC uint8 -> NCHW float32 in [0, 1], one pass per channel (3x faster than a
    # transpose-copy followed by a division on a 832 x 608 page).
    tensor = np.empty((1, 3, *padded.shape[:2]), np.float32)
    for channel in range(3):
        np.multiply(padded[..., channel], np.float32(1 / 255), out=tensor[0, channel], casting="unsafe")
    return tensor, scale, (float(left), float(top))


def postprocess(
    raw: np.ndarray,
    scale: float,
    pad: tuple[float, float],
    page_shape: tuple[int, int],
    conf: float,
    names: tuple[str, ...] = CLASS_NAMES,
) -> tuple[Detection, ...]:
    """Raw network output (1, 4 + nc, anchors) -> boxes in page pixels, after NMS.

    Per-class NMS (not class-agnostic): boxes of different classes on the same
    frame are all kept, which is what :func:`decide` weighs against each other.
    """
    import torch
    from ultralytics.utils.nms import non_max_suppression

    pred = torch.from_numpy(np.asarray(raw, dtype=np.float32))
    kept = non_max_suppression(pred, conf_thres=conf, iou_thres=NMS_IOU, max_det=MAX_DETECTIONS)[0]
    out: list[Detection] = []
    height, width = page_shape
    for x0, y0, x1, y1, score, cls in kept.tolist():
        box = (
            min(max((x0 - pad[0]) / scale, 0.0), float(width)),
            min(max((y0 - pad[1]) / scale, 0.0), float(height)),
            min(max((x1 - pad[0]) / scale, 0.0), float(width)),
            min(max((y1 - pad[1]) / scale, 0.0), float(height)),
        )
        out.append(Detection(class_name=names[int(cls)], confidence=float(score), box=box))
    return tuple(out)


def blank_outside_frame(
    image: np.ndarray, frame: tuple[float, float, float, float] | None
) -> np.ndarray:
    """A copy of ``image`` painted white outside ``frame`` (x0, y0, x1, y1); as is when None."""
    if frame is None:
        return image
    height, width = image.shape[:2]
    x0, y0 = max(int(frame[0]), 0), max(int(frame[1]), 0)
    x1, y1 = min(int(np.ceil(frame[2])), width), min(int(np.ceil(frame[3])), height)
    out = np.full_like(image, 255)
    out[y0:y1, x0:x1] = image[y0:y1, x0:x1]
    return out


# --- runtimes ---------------------------------------------------------------------------------


def torch_device(device: str, cuda_available: bool) -> str:
    """``model.device`` -> a torch device string: "auto" is the first GPU when there is
    one, else the CPU; "0" / "cuda:1" name a GPU; "cpu" is the CPU.  A GPU asked for on a
    machine without one is refused (a silent fall-back would hide a misconfiguration)."""
    if device in ("auto", ""):
        return "cuda:0" if cuda_available else "cpu"
    if device == "cpu":
        return "cpu"
    name = device if device.startswith("cuda") else f"cuda:{device}"
    if not cuda_available:
        raise ModelError(f"model.device is {device!r} but no CUDA GPU is available: use auto or cpu")
    return name


@dataclass(frozen=True)
class RuntimeChoice:
    """Which runtime serves the model here, and why (logged, and shown by ``/healthz``)."""

    runtime: str
    precision: str
    reason: str


def openvino_cpu_capabilities() -> tuple[str, ...]:
    """What OpenVINO's CPU plugin reports it can compute natively (e.g. "BF16", "INT8")."""
    import openvino as ov

    return tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def resolve_runtime(
    settings: ModelSettings,
    *,
    cuda_available: bool | None = None,
    cpu_capabilities: Iterable[str] | None = None,
) -> RuntimeChoice:
    """``model.runtime`` -> the runtime and precision that will run, with the reason.

    An explicit runtime is taken as set.  ``auto`` takes the fastest runtime shown
    to give the same Normal / Abnormal label as PyTorch f32 on every one of the 74
    validation pages (``bench/bench_inference.py``; weights/MODEL_CARD.md):

    1. a CUDA GPU (unless ``model.device`` is ``cpu``): ``pytorch`` on it, f32;
    2. a CPU whose OpenVINO plugin computes INT8 (every x86-64 CPU it supports;
       AVX-512 VNNI / AMX make it fastest), unless ``model.precision`` is ``f32``:
       ``openvino-int8``, the NNCF int8 model derived once on this machine;
    3. otherwise ``onnx`` (ONNX Runtime f32).

    ``cuda_available`` / ``cpu_capabilities`` default to what this machine reports.
    """
    if settings.runtime != "auto":
        precision = "f32"
        if settings.runtime == "openvino" and settings.precision == "auto":
            precision = "auto"
        elif settings.runtime == "openvino-int8":
            precision = "int8"
        return RuntimeChoice(settings.runtime, precision, "model.runtime")
    if cuda_available is None:
        import torch

        cuda_available = bool(torch.cuda.is_available())
    if cuda_available and settings.device != "cpu":
        return RuntimeChoice("pytorch", "f32", "auto: a CUDA GPU is present")
    if settings.precision == "f32":
        return RuntimeChoice("onnx", "f32", "auto: model.precision is f32")
    if cpu_capabilities is None:
        cpu_capabilities = openvino_cpu_capabilities()
    if "INT8" in set(cpu_capabilities):
        return RuntimeChoice("openvino-int8", "int8", "auto: the CPU computes int8")
    return RuntimeChoice("onnx", "f32", "auto: the CPU has no int8 support in OpenVINO")


def _threads(settings: ModelSettings) -> int:
    return settings.threads or os.cpu_count() or 1


class _TorchRuntime:
    """The .pt through PyTorch (f32, fused), on the GPU when asked and present.

    Thread safety: inference runs under a lock, one page at a time.  An ultralytics
    model is not documented as safe to call from several threads (its Detect head
    caches the anchor grid on the module during ``forward``), and nothing is gained
    without the lock: on a GPU the kernels of one process run on one stream in turn,
    and on a CPU one call already uses every intra-op thread.  The returned array is
    copied out of the output tensor, so it is the caller's own.
    """

    def __init__(self, weights: Path, settings: ModelSettings) -> None:
        import torch

        from ecg_dicom.train.training import prepare_offline

        prepare_offline(_threads(settings))
        from ultralytics import YOLO

        self.device = torch.device(torch_device(settings.device, torch.cuda.is_available()))
        model: Any = YOLO(str(weights)).model
        if model is None or isinstance(model, str):
            raise ModelError(f"{weights} holds no PyTorch model")
        self.names = tuple(model.names[i] for i in sorted(model.names))
        self.model = model.float().fuse(verbose=False).eval().to(self.device)
        self._lock = threading.Lock()

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        import torch

        with self._lock, torch.inference_mode():
            out = self.model(torch.from_numpy(tensor).to(self.device))
            out = out[0] if isinstance(out, (list, tuple)) else out
            return np.array(out.float().cpu().numpy(), copy=True)


class _OnnxRuntime:
    """An ONNX export through ONNX Runtime (CUDA provider when present).

    Thread safety: ``InferenceSession.run`` may be called from any number of threads
    at once on one session (ONNX Runtime's documented threading contract: the session
    is immutable once created, every ``run`` allocates its own outputs), so no lock.
    """

    def __init__(self, model_path: Path, settings: ModelSettings) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads(settings)
        providers = ["CPUExecutionProvider"]
        if settings.device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(model_path), options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        # A copy: ``run`` hands back a view of the OrtValue it allocated for this call
        # (a PyCapsule base); the caller gets an array that owns its memory.
        return np.array(self.session.run(None, {self.input_name: tensor})[0], copy=True)


class _OpenVinoRuntime:
    """An OpenVINO IR through the OpenVINO CPU plugin.

    ``precision`` "auto" lets OpenVINO choose (bf16 on CPUs with AVX-512 bf16);
    "f32" forces full precision.

    Thread safety: an ``InferRequest`` serves one inference at a time (a second
    ``infer`` on it while the first runs fails with "Infer Request is busy"), and its
    output tensor is overwritten by its next inference.  So each call takes an idle
    request from a pool for the whole inference and gives it back after copying the
    output: requests are created on demand (``CompiledModel.create_infer_request`` is
    thread-safe) up to ``max_requests``, after which callers wait for one to be
    free.  The default bound is OpenVINO's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` for
    the compiled model, at least 2: more requests would only hold more memory, as
    the plugin's streams run that many at once.
    """

    def __init__(
        self,
        model_dir: Path,
        settings: ModelSettings,
        precision: str = "auto",
        *,
        max_requests: int | None = None,
    ) -> None:
        import openvino as ov

        core = ov.Core()
        xml = next(Path(model_dir).glob("*.xml"))
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": _threads(settings),
        }
        if precision == "f32":
            config["INFERENCE_PRECISION_HINT"] = ov.Type.f32
        self.compiled = core.compile_model(core.read_model(str(xml)), "CPU", config)
        #: The precision OpenVINO computes the non-int8 layers in ("bf16" or "f32").
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())
        if max_requests is None:
            optimal = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            max_requests = max(2, optimal)
        #: At most this many infer requests exist (and run) at once.
        self.max_requests = max(1, max_requests)
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(self.max_requests)
        self._idle.put(self.compiled.create_infer_request())  # the first, made at load

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        with self._slots:  # at most max_requests callers past here, each with its own request
            try:
                request = self._idle.get_nowait()
            except queue.Empty:
                request = self.compiled.create_infer_request()
            try:
                result = request.infer({0: tensor}, share_outputs=True)
                # share_outputs: a view of the request's output tensor, copied once here
                # before the request can run again.
                return np.array(next(iter(result.values())), copy=True)
            finally:
                self._idle.put(request)


class Detector:
    """The loaded model: verified once, then ``detect(page)`` per page.

    ``name`` is ``settings.name``; ``version`` is the weights' SHA-256.  The
    runtime is ``settings.runtime`` (``runtime`` overrides it, e.g. for benchmarks),
    resolved by :func:`resolve_runtime` when it is "auto"; ``precision`` overrides
    ``settings.precision`` for OpenVINO ("auto" or "f32").  After loading,
    ``runtime`` is the runtime that runs, ``precision`` the arithmetic it runs in
    ("f32", "bf16", "int8") and ``choice`` why it was chosen.
    """

    def __init__(
        self,
        settings: ModelSettings,
        *,
        runtime: str | None = None,
        precision: str | None = None,
    ) -> None:
        self.settings = settings
        self.version = verify_weights(settings)
        self.name = settings.name
        overrides = {
            k: v for k, v in (("runtime", runtime), ("precision", precision)) if v is not None
        }
        effective = settings.model_copy(update=overrides)
        self.choice = resolve_runtime(effective)
        self.runtime = self.choice.runtime
        self.precision = self.choice.precision
        self.input_shape = input_shape(settings.imgsz)
        self.names: tuple[str, ...] = CLASS_NAMES
        weights = Path(settings.weights)
        self._run: Any
        if self.runtime == "pytorch":
            torch_runtime = _TorchRuntime(weights, settings)
            self.names = torch_runtime.names
            self._run = torch_runtime
        elif self.runtime in ("onnx", "openvino", "openvino-int8"):
            from ecg_dicom.train.export import cached_export

            exported = cached_export(
                weights, self.version, self.runtime, self.input_shape, settings.export_cache_dir
            )
            if self.runtime == "openvino-int8":
                from ecg_dicom.train.export import calibration_record

                log.info("int8 model calibration", extra={"calibration": calibration_record(exported)})
            if self.runtime == "onnx":
                self._run = _OnnxRuntime(exported, settings)
            else:  # f32 IR, or the int8 IR (its int8 layers run int8 at any precision hint)
                openvino = _OpenVinoRuntime(exported, settings, effective.precision)
                self.precision = "int8" if self.runtime == "openvino-int8" else openvino.precision
                self._run = openvino
        else:
            raise ModelError(
                f"unknown model runtime {self.runtime!r}: "
                "use auto, pytorch, onnx, openvino or openvino-int8"
            )
        if set(self.names) != set(CLASS_NAMES):
            raise ModelError(f"model classes {self.names} are not the expected {CLASS_NAMES}")
        #: What every result records as having computed it (SR Algorithm Parameters).
        self.runtime_label = f"{self.runtime} {self.precision}"
        log.info(
            "model loaded",
            extra={
                "model": self.name,
                "version": self.version,
                "runtime": self.runtime,
                "precision": self.precision,
                "runtime_reason": self.choice.reason,
            },
        )

    def detections(self, image: np.ndarray) -> tuple[Detection, ...]:
        """The boxes on an RGB page image (H x W x 3 uint8), in page pixels."""
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        tensor, scale, pad = letterbox(np.ascontiguousarray(image[..., :3]), self.input_shape)
        raw = self._run(tensor)
        return postprocess(raw, scale, pad, image.shape[:2], self.settings.conf, self.names)

    def detect(self, page: Page) -> Classification:
        """Classify one page with :func:`decide` at ``settings.abnormal_threshold``.

        When the page's chart frame is known (rendered waveforms), everything
        outside it is painted white first: the training pages were prepared that
        way, so header text must not reach the model (it could not have learned
        from it, and it is not what it was validated on).
        """
        return decide(
            self.detections(blank_outside_frame(page.image, page.frame)),
            model_name=self.name,
            model_version=self.version,
            threshold=self.settings.abnormal_threshold,
            runtime=self.runtime_label,
        )
