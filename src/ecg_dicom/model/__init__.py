"""The model runtime: weights, the decision rule, the detector and its derived models.

Modules, each with one job:

* :mod:`~ecg_dicom.model.weights`: the shipped ``.pt`` verified against its SHA-256;
* :mod:`~ecg_dicom.model.decision`: the one decision rule (:func:`decide`);
* :mod:`~ecg_dicom.model.preprocess`: page -> network input (letterbox, frame blanking);
* :mod:`~ecg_dicom.model.runtimes`: PyTorch / ONNX Runtime / OpenVINO, and which runs here;
* :mod:`~ecg_dicom.model.derive`: ONNX / OpenVINO / int8 models derived once and cached;
* :mod:`~ecg_dicom.model.synthetic`: synthetic ECG pages that calibrate int8;
* :mod:`~ecg_dicom.model.offline`: ultralytics without a network;
* :mod:`~ecg_dicom.model.detector`: :class:`Detector`, a page -> a classification.

Nothing here imports :mod:`ecg_dicom.train`: training sits above the runtime.
"""

from ecg_dicom.model.decision import NO_CHART_REASON, decide, not_interpretable
from ecg_dicom.model.derive import (
    DERIVED_RUNTIMES,
    INT8_CALIBRATION_PAGES,
    INT8_CALIBRATION_VERSION,
    Int8Calibration,
    cache_target,
    cached_export,
    derive_int8,
    int8_calibration_record,
    quantize_model,
    quantize_openvino,
)
from ecg_dicom.model.detector import Detector, boxes_on_page
from ecg_dicom.model.offline import prepare_offline
from ecg_dicom.model.preprocess import blank_outside_frame, input_shape, letterbox, resize_page
from ecg_dicom.model.runtimes import (
    RuntimeChoice,
    openvino_cpu_capabilities,
    resolve_runtime,
    torch_device,
)
from ecg_dicom.model.synthetic import int8_calibration_pages, synthetic_signals
from ecg_dicom.model.weights import verify_weights, weights_checksum

__all__ = [
    "DERIVED_RUNTIMES",
    "INT8_CALIBRATION_PAGES",
    "INT8_CALIBRATION_VERSION",
    "NO_CHART_REASON",
    "Detector",
    "Int8Calibration",
    "RuntimeChoice",
    "blank_outside_frame",
    "boxes_on_page",
    "cache_target",
    "cached_export",
    "decide",
    "derive_int8",
    "input_shape",
    "int8_calibration_pages",
    "int8_calibration_record",
    "letterbox",
    "not_interpretable",
    "openvino_cpu_capabilities",
    "prepare_offline",
    "quantize_model",
    "quantize_openvino",
    "resize_page",
    "resolve_runtime",
    "synthetic_signals",
    "torch_device",
    "verify_weights",
    "weights_checksum",
]
