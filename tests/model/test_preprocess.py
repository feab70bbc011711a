"""What the network is given (model.preprocess): input shape, letterbox, frame blanking."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_dicom.model.preprocess import blank_outside_frame, input_shape, letterbox


def test_input_shape_is_landscape_multiple_of_stride() -> None:
    assert input_shape(832) == (608, 832)  # the shipped model: a 1600 x 1137 page fills it
    assert input_shape(640) == (480, 640)
    assert input_shape(384) == (288, 384)
    assert input_shape(512) == (384, 512)
    assert input_shape(64) == (64, 64)
    assert input_shape(32) == (32, 32)


def test_letterbox_geometry() -> None:
    tensor, scale, pad = letterbox(np.zeros((120, 160, 3), np.uint8), (64, 64))
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32
    assert scale == pytest.approx(0.4) and pad == (0.0, 8.0)
    assert tensor[0, :, 0, 0] == pytest.approx([114 / 255] * 3)  # grey padding
    assert tensor[0, :, 32, 32] == pytest.approx([0.0] * 3)


def test_blank_outside_frame() -> None:
    image = np.zeros((10, 20, 3), np.uint8)
    assert blank_outside_frame(image, None) is image
    out = blank_outside_frame(image, (2.0, 3.0, 12.5, 8.0))
    assert (out[3:8, 2:13] == 0).all()
    assert out[:3].min() == 255 and out[8:].min() == 255
    assert out[:, :2].min() == 255 and out[:, 13:].min() == 255
    assert image.max() == 0  # the page itself is untouched
