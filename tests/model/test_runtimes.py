"""Which runtime runs, on which device (model.runtimes: resolve_runtime, torch_device)."""

from __future__ import annotations

import pytest

from ecg_dicom.config import ModelSettings
from ecg_dicom.errors import ModelError
from ecg_dicom.model.runtimes import resolve_runtime, torch_device


@pytest.mark.parametrize(
    ("settings", "cuda", "caps", "expected"),
    [
        ({}, False, ("BF16", "FP32", "INT8"), ("openvino-int8", "int8")),
        ({}, False, ("FP32", "INT8"), ("openvino-int8", "int8")),
        ({}, False, ("FP32",), ("onnx", "f32")),
        ({}, True, ("BF16", "FP32", "INT8"), ("pytorch", "f32")),
        ({"device": "cpu"}, True, ("FP32", "INT8"), ("openvino-int8", "int8")),
        ({"precision": "f32"}, False, ("BF16", "FP32", "INT8"), ("onnx", "f32")),
        ({"runtime": "onnx"}, True, ("BF16",), ("onnx", "f32")),
        ({"runtime": "openvino"}, False, ("BF16",), ("openvino", "auto")),
        ({"runtime": "openvino", "precision": "f32"}, False, ("BF16",), ("openvino", "f32")),
        ({"runtime": "openvino-int8"}, False, ("BF16", "INT8"), ("openvino-int8", "int8")),
    ],
)
def test_resolve_runtime(
    settings: dict[str, str], cuda: bool, caps: tuple[str, ...], expected: tuple[str, str]
) -> None:
    """auto: GPU -> PyTorch f32; a CPU OpenVINO runs int8 on -> openvino-int8; else ONNX
    f32 (also when model.precision is f32).  An explicit runtime is taken as set."""
    choice = resolve_runtime(ModelSettings(**settings), cuda_available=cuda, cpu_capabilities=caps)
    assert (choice.runtime, choice.precision) == expected
    assert choice.reason


def test_torch_device_choice() -> None:
    assert torch_device("auto", False) == "cpu"
    assert torch_device("auto", True) == "cuda:0"
    assert torch_device("cpu", True) == "cpu"
    assert torch_device("1", True) == "cuda:1"
    assert torch_device("cuda:0", True) == "cuda:0"
    with pytest.raises(ModelError, match="no CUDA GPU"):
        torch_device("0", False)
