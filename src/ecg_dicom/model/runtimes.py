"""The three runtimes a model can run on, and which one runs it here.

* :func:`resolve_runtime` turns ``model.runtime`` ("auto" or one of
  :data:`~ecg_dicom.config.MODEL_RUNTIMES`) into the runtime and precision that
  will run, with the reason (logged, and shown by ``/healthz``).
* :func:`torch_device` is the one rule for ``model.device`` (and ``train --device``).
* :class:`TorchRuntime`, :class:`OnnxRuntime` and :class:`OpenVinoRuntime` each turn
  a letterboxed tensor into the raw network output.

Concurrency: one :class:`~ecg_dicom.model.detector.Detector` serves every thread of a
process (the worker threads and the HTTP uploads at once), so each runtime is safe for
any number of concurrent callers and returns an array that it owns -- never a buffer
that the next call overwrites.  Each runtime class says how.  A result therefore
belongs to the page it was computed from, whatever runs beside it.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecg_dicom.config import ModelSettings
from ecg_dicom.errors import ModelError
from ecg_dicom.model.offline import prepare_offline


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
        raise ModelError(
            f"model.device is {device!r} but no CUDA GPU is available: use auto or cpu"
        )
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


class TorchRuntime:
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


class OnnxRuntime:
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


class OpenVinoRuntime:
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
