"""A result belongs to its page whatever runs beside it (issue 10, item 2).

One :class:`~ecg_dicom.model.Detector` serves the worker threads and the HTTP
uploads of a process at once.  These tests call it from many threads with distinct
pages and require exactly what the same pages give one after the other, and they
require every runtime to return arrays of its own (not a buffer the next call
overwrites).

* The shipped model with the default runtime (``model.runtime: auto``: the int8
  OpenVINO model on a CPU, derived once by the ``default_model`` fixture in tests/conftest.py)
  on real pages from ``../shared/data/ecg-images``.
* The runtime classes themselves, hammered by many threads, on toy networks built
  here (an OpenVINO model from its opset, an ONNX graph from onnx.helper) so that
  thousands of calls take seconds.

Before the fix, the OpenVINO runtime shared one infer request between threads:
concurrent calls failed with "Infer Request is busy".
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import serve_proc
from ecg_dicom.config import ModelSettings
from ecg_dicom.model.detector import Detector
from ecg_dicom.model.preprocess import letterbox
from ecg_dicom.model.runtimes import OnnxRuntime, OpenVinoRuntime
from ecg_dicom.pages import page_from_file
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.records import Classification, Page
from realdata import ECG_IMAGES_DIR

#: Distinct real pages: the first two (by name) of each of the four classes.
PAGES_PER_CLASS = 2
THREADS = 4
PAGES_PER_THREAD = 4
#: Toy networks: threads x calls per thread.
TOY_THREADS = 6
TOY_CALLS = 60
TOY_SHAPE = (1, 3, 96, 128)


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(i)`` in ``count`` threads released together; re-raise the first error."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            target(index)
        except BaseException as exc:  # noqa: BLE001 (reported below, in the test's thread)
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]


# --- the shipped model, default runtime, real pages -------------------------------------------


def model_settings() -> ModelSettings:
    return ModelSettings(weights=serve_proc.WEIGHTS, export_cache_dir=serve_proc.MODEL_CACHE)


@pytest.fixture(scope="module")
def detector(default_model: Path) -> Detector:
    return Detector(model_settings())


@pytest.fixture(scope="module")
def pages() -> list[Page]:
    paths = [
        path
        for folder in sorted(p for p in ECG_IMAGES_DIR.iterdir() if p.is_dir())
        for path in sorted(folder.glob("*.jpg"))[:PAGES_PER_CLASS]
    ]
    assert len(paths) == 4 * PAGES_PER_CLASS, f"expected real pages under {ECG_IMAGES_DIR}"
    return [page_from_file(path) for path in paths]


@pytest.fixture(scope="module")
def sequential(detector: Detector, pages: list[Page]) -> list[Classification]:
    return [detector.detect(page) for page in pages]


def test_real_pages_give_distinct_results(sequential: list[Classification]) -> None:
    """Otherwise a swap between pages could not be seen by the tests below."""
    assert len({(r.abnormal_score, r.detections) for r in sequential}) == len(sequential)
    assert all(r.detections for r in sequential)


def test_many_threads_give_exactly_the_sequential_results(
    detector: Detector, pages: list[Page], sequential: list[Classification]
) -> None:
    got: dict[tuple[int, int], Classification] = {}

    def classify(thread: int) -> None:
        # Each thread classifies half the pages from its own start: at any moment
        # the threads are on different pages, and every page is classified twice.
        for step in range(PAGES_PER_THREAD):
            index = (thread * PAGES_PER_THREAD // 2 + step) % len(pages)
            got[(thread, index)] = detector.detect(pages[index])

    run_threads(THREADS, classify)
    assert len(got) == THREADS * PAGES_PER_THREAD
    assert {index for _, index in got} == set(range(len(pages)))
    for (thread, index), result in sorted(got.items()):
        # Classification is a frozen dataclass: labels, classes, scores and every
        # box (class, confidence, coordinates) compared exactly.
        assert result == sequential[index], (thread, index)


def test_detector_returns_arrays_it_owns(detector: Detector, pages: list[Page]) -> None:
    first_in, _, _ = letterbox(pages[0].image, detector.input_shape)
    second_in, _, _ = letterbox(pages[1].image, detector.input_shape)
    first = detector._run(first_in)
    kept = first.copy()
    second = detector._run(second_in)
    assert first.flags.owndata and second.flags.owndata
    assert not np.shares_memory(first, second)
    assert np.array_equal(first, kept), "the second call changed the first call's output"
    assert not np.array_equal(first, second)


def test_pipeline_loads_one_detector_for_threads_asking_at_once(default_model: Path) -> None:
    from ecg_dicom.config import Settings

    pipeline = Pipeline(Settings(model=model_settings()))
    seen: list[Detector] = []

    def ask(_: int) -> None:
        seen.append(pipeline.detector)

    run_threads(THREADS, ask)
    assert len(seen) == THREADS
    assert all(d is seen[0] for d in seen), "several threads loaded a model of their own"


# --- the runtime classes, hammered with toy networks -------------------------------------------


def toy_inputs(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(TOY_SHAPE, dtype=np.float32) for _ in range(count)]


def toy_weights() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((8, 3, 3, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def toy_openvino(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3x3 convolution to 8 channels, flattened like a detector's (1, 8, anchors) output."""
    import openvino as ov
    from openvino import opset13 as ops

    images = ops.parameter(list(TOY_SHAPE), np.float32, name="images")
    conv = ops.convolution(images, ops.constant(toy_weights()), [1, 1], [1, 1], [1, 1], [1, 1])
    out = ops.reshape(conv, ops.constant(np.array([1, 8, -1], np.int64)), False)
    folder = tmp_path_factory.mktemp("toy-openvino")
    # Weights kept f32 (save_model stores them as f16 by default).
    ov.save_model(ov.Model([out], [images], "toy"), str(folder / "toy.xml"), compress_to_fp16=False)
    return folder


@pytest.fixture(scope="module")
def toy_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same convolution as an ONNX graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["images", "w"], ["conv"], pads=[1, 1, 1, 1]),
            helper.make_node("Reshape", ["conv", "shape"], ["out"]),
        ],
        "toy",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(TOY_SHAPE))],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(toy_weights(), "w"),
            numpy_helper.from_array(np.array([1, 8, -1], np.int64), "shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = tmp_path_factory.mktemp("toy-onnx") / "toy.onnx"
    onnx.save(model, str(path))
    return path


def hammer(runtime: Callable[[np.ndarray], np.ndarray]) -> None:
    """TOY_THREADS threads x TOY_CALLS distinct inputs: each output must be exactly the
    one the same input gives alone, and stay so after the thread's later calls."""
    inputs = [toy_inputs(TOY_CALLS, seed) for seed in range(TOY_THREADS)]
    expected = [[runtime(x) for x in thread_inputs] for thread_inputs in inputs]
    got: list[list[np.ndarray]] = [[] for _ in range(TOY_THREADS)]

    def calls(thread: int) -> None:
        for x in inputs[thread]:
            got[thread].append(runtime(x))

    run_threads(TOY_THREADS, calls)
    for thread in range(TOY_THREADS):
        assert len(got[thread]) == TOY_CALLS
        for call, (out, ref) in enumerate(zip(got[thread], expected[thread], strict=True)):
            assert np.array_equal(out, ref), f"thread {thread} call {call}: another input's output"


def assert_owned(runtime: Callable[[np.ndarray], np.ndarray]) -> None:
    first_in, second_in = toy_inputs(2, seed=99)
    first = runtime(first_in)
    kept = first.copy()
    second = runtime(second_in)
    assert first.flags.owndata and second.flags.owndata
    assert not np.shares_memory(first, second)
    assert np.array_equal(first, kept), "the second call changed the first call's output"


def toy_settings() -> ModelSettings:
    return ModelSettings(threads=1)


@pytest.mark.parametrize("max_requests", [None, 1, 2])
def test_openvino_runtime_many_threads(toy_openvino: Path, max_requests: int | None) -> None:
    bound = {} if max_requests is None else {"max_requests": max_requests}
    runtime = OpenVinoRuntime(toy_openvino, toy_settings(), "f32", **bound)
    hammer(runtime)
    # Never more infer requests than the bound, whatever the number of threads.
    assert runtime._idle.qsize() <= runtime.max_requests
    if max_requests is not None:
        assert runtime.max_requests == max_requests


def test_openvino_runtime_returns_arrays_it_owns(toy_openvino: Path) -> None:
    # Sequential calls: the pool hands the same infer request to both.
    assert_owned(OpenVinoRuntime(toy_openvino, toy_settings(), "f32"))


def test_onnx_runtime_many_threads(toy_onnx: Path) -> None:
    hammer(OnnxRuntime(toy_onnx, toy_settings()))


def test_onnx_runtime_returns_arrays_it_owns(toy_onnx: Path) -> None:
    assert_owned(OnnxRuntime(toy_onnx, toy_settings()))


def test_toy_networks_compute_the_convolution(toy_openvino: Path, toy_onnx: Path) -> None:
    """The hammered runtimes compute what they should, not merely the same thing twice."""
    import torch

    x = toy_inputs(1, seed=5)[0]
    reference = torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(toy_weights()), padding=1
    ).reshape(1, 8, -1).numpy()
    runtimes: list[Any] = [
        OpenVinoRuntime(toy_openvino, toy_settings(), "f32"),
        OnnxRuntime(toy_onnx, toy_settings()),
    ]
    for runtime in runtimes:
        np.testing.assert_allclose(runtime(x), reference, rtol=1e-4, atol=1e-4)
