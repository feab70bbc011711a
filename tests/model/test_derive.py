"""Derived runtime models (model.derive) and their agreement with PyTorch f32, on a tiny
model trained here -- so every test here is ``slow``.

The model (YOLOv8n from its yaml, 64 px, one epoch on synthetic pages) is
meaningless as a classifier; what is tested is that the exported runtimes compute
the same network as the ``.pt`` through the same pre- and post-processing, that the
cache finds them again, that int8 is quantised and close, and that a site's own
pages can re-calibrate it (train.site_int8).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ecg_dicom.config import ModelSettings
from ecg_dicom.model.derive import (
    INT8_CALIBRATION_VERSION,
    cached_export,
    int8_calibration_record,
)
from ecg_dicom.model.detector import Detector
from ecg_dicom.model.preprocess import input_shape, letterbox
from ecg_dicom.model.runtimes import openvino_cpu_capabilities
from ecg_dicom.model.weights import weights_checksum
from ecg_dicom.train.agreement import agreement
from ecg_dicom.train.site_int8 import calibrate_int8_on_site
from tiny_model import tiny_page, train_tiny_weights

pytestmark = [
    pytest.mark.slow,
    # ultralytics exports through torch's TorchScript tracer and its legacy ONNX
    # exporter; torch announces their end and warns about traced Python values.
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.trace:FutureWarning"),
    pytest.mark.filterwarnings(
        "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:The feature will be removed. Please remove usage of this function"
        ":DeprecationWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:Converting a tensor to a Python boolean:torch.jit.TracerWarning"
    ),
]

page = tiny_page  # the tiny model's training page, reused as test input


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_weights(tmp_path_factory.mktemp("tiny"))


def settings_for(weights: Path, cache: Path) -> ModelSettings:
    return ModelSettings(weights=weights, imgsz=128, conf=0.0, threads=2, export_cache_dir=cache)


def assert_int8_close(raw: np.ndarray, reference: np.ndarray) -> None:
    """Raw outputs (1, 4 + nc, anchors) at 128 px within int8 noise of the reference:
    box coordinates off by < 5 % of the input on average, class scores by < 0.1."""
    assert raw.shape == reference.shape and np.isfinite(raw).all()
    boxes, scores = slice(0, 4), slice(4, None)
    assert np.abs(raw[:, boxes] - reference[:, boxes]).mean() < 0.05 * 128
    assert np.abs(raw[:, scores] - reference[:, scores]).max() < 0.1


def test_exports_agree_with_pytorch(tiny_weights: Path, tmp_path: Path) -> None:
    settings = settings_for(tiny_weights, tmp_path / "cache")
    images = [page(100 + k) for k in range(6)]
    reference = Detector(settings, runtime="pytorch")
    tensor = letterbox(images[0], input_shape(128))[0]
    assert tensor.shape == (1, 3, 96, 128)
    raw_ref = reference._run(tensor)
    for runtime, precision in (("onnx", "auto"), ("openvino", "f32")):
        raw = Detector(settings, runtime=runtime, precision=precision)._run(tensor)
        assert raw.shape == raw_ref.shape
        assert np.abs(raw - raw_ref).max() < 1e-3 * max(1.0, float(np.abs(raw_ref).max()))
    # Boxes are found (conf 0) and lie on the page, in page pixels.
    found = reference.detections(images[0])
    assert found and all(0 <= d.box[0] <= d.box[2] <= 160 for d in found)
    report = agreement(settings, images, runtimes=(("onnx", "auto"), ("openvino", "f32")))
    for name in ("onnx-auto", "openvino-f32"):
        assert report[name]["pages"] == 6
        assert report[name]["agreement"] == 1.0
        assert report[name]["max_conf_diff"] < 1e-3


def test_export_is_cached_by_checksum(tiny_weights: Path, tmp_path: Path) -> None:
    checksum = weights_checksum(tiny_weights)
    first = cached_export(tiny_weights, checksum, "onnx", (32, 64), tmp_path)
    assert first.parent.name == checksum and first.is_file()
    stamp = first.stat().st_mtime_ns
    again = cached_export(tiny_weights, checksum, "onnx", (32, 64), tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    assert not list(tiny_weights.parent.glob("*.onnx"))  # nothing written beside the .pt


def test_int8_export_is_quantised_and_close_to_f32(tiny_weights: Path, tmp_path: Path) -> None:
    """openvino-int8: NNCF inserts int8 quantisers, calibrated on the service's own
    synthetic pages, and the network still computes nearly the f32 outputs."""
    import openvino as ov

    settings = settings_for(tiny_weights, tmp_path / "cache")
    int8_dir = cached_export(
        tiny_weights, weights_checksum(tiny_weights), "openvino-int8", input_shape(128),
        tmp_path / "cache",
    )
    assert int8_dir.name.endswith(f"-int8-c{INT8_CALIBRATION_VERSION}_openvino_model")
    model = ov.Core().read_model(str(next(int8_dir.glob("*.xml"))))
    ops = model.get_ordered_ops()
    kinds = [op.get_type_name() for op in ops]
    assert kinds.count("FakeQuantize") >= 10
    # The head's score arithmetic stays in f32: no quantiser feeds a class Sigmoid.
    sigmoids = [op for op in ops if op.get_type_name() == "Sigmoid"]
    assert sigmoids
    for op in sigmoids:
        assert op.input_value(0).get_node().get_type_name() != "FakeQuantize"
    tensor = letterbox(page(7), input_shape(128))[0]
    raw_f32 = Detector(settings, runtime="openvino", precision="f32")._run(tensor)
    raw_int8 = Detector(settings, runtime="openvino-int8")._run(tensor)
    assert_int8_close(raw_int8, raw_f32)


def test_int8_can_be_calibrated_on_a_sites_own_pages(tiny_weights: Path, tmp_path: Path) -> None:
    """``ecg-dicom export --format openvino-int8 --calibration DIR``: the cached int8 model
    is re-derived from the site's pages, says so, and is what the runtime then serves."""
    checksum = weights_checksum(tiny_weights)
    cache = tmp_path / "cache"
    synthetic = cached_export(tiny_weights, checksum, "openvino-int8", input_shape(128), cache)
    assert int8_calibration_record(synthetic) == {
        "source": "synthetic", "pages": 48, "version": INT8_CALIBRATION_VERSION
    }
    site = tmp_path / "site" / "cart"
    site.mkdir(parents=True)
    for k in range(5):
        Image.fromarray(page(200 + k)).save(site / f"page{k}.png")
    (site / "notes.txt").write_text("not a page")  # skipped, not fatal
    path = calibrate_int8_on_site(
        tiny_weights, checksum, input_shape(128), cache, tmp_path / "site"
    )
    assert path == synthetic
    record = int8_calibration_record(path)
    assert record["pages"] == 5 and record["source"] == str((tmp_path / "site").resolve())
    settings = settings_for(tiny_weights, cache)
    raw = Detector(settings, runtime="openvino-int8")._run(letterbox(page(3), input_shape(128))[0])
    assert np.isfinite(raw).all()
    with pytest.raises(ValueError, match="no page"):
        calibrate_int8_on_site(
            tiny_weights, checksum, input_shape(128), cache, tmp_path / "site" / "none"
        )


def test_auto_runtime_on_this_machine(tiny_weights: Path, tmp_path: Path) -> None:
    """The default runtime, as this machine resolves it from what torch and OpenVINO
    report, loads and computes nearly PyTorch f32's outputs."""
    import torch

    settings = settings_for(tiny_weights, tmp_path / "cache")
    assert settings.runtime == "auto"
    detector = Detector(settings)
    if torch.cuda.is_available():
        assert (detector.runtime, detector.precision) == ("pytorch", "f32")
    elif "INT8" in openvino_cpu_capabilities():
        assert (detector.runtime, detector.precision) == ("openvino-int8", "int8")
    else:
        assert (detector.runtime, detector.precision) == ("onnx", "f32")
    assert detector.choice.reason.startswith("auto: ")
    tensor = letterbox(page(11), input_shape(128))[0]
    raw = detector._run(tensor)
    raw_ref = Detector(settings, runtime="pytorch")._run(tensor)
    assert_int8_close(raw, raw_ref)


def test_openvino_precision_is_what_the_cpu_computes(tiny_weights: Path, tmp_path: Path) -> None:
    """runtime openvino reports the arithmetic OpenVINO compiled it for: bf16 on a CPU
    with native bf16 (unless model.precision is f32), f32 elsewhere."""
    settings = settings_for(tiny_weights, tmp_path / "cache")
    native_bf16 = "BF16" in openvino_cpu_capabilities()
    assert Detector(settings, runtime="openvino").precision == ("bf16" if native_bf16 else "f32")
    assert Detector(settings, runtime="openvino", precision="f32").precision == "f32"
