"""The derivation cache's paths (model.derive.cache_target) are those of v0.1: caches
already derived under ``var/model-cache`` must still be found after an upgrade."""

from __future__ import annotations

from pathlib import Path

from ecg_dicom.model.derive import DERIVED_RUNTIMES, INT8_CALIBRATION_VERSION, cache_target


def test_cache_paths_are_unchanged() -> None:
    cache, checksum, shape = Path("var/model-cache"), "ab" * 32, (608, 832)
    base = cache / checksum
    assert cache_target(cache, checksum, "onnx", shape) == base / "model-608x832.onnx"
    assert cache_target(cache, checksum, "openvino", shape) == base / "model-608x832_openvino_model"
    assert INT8_CALIBRATION_VERSION == 2
    assert cache_target(cache, checksum, "openvino-int8", shape) == (
        base / "model-608x832-int8-c2_openvino_model"
    )


def test_derived_runtimes_are_the_configured_ones_but_auto_and_pytorch() -> None:
    assert DERIVED_RUNTIMES == ("onnx", "openvino", "openvino-int8")
