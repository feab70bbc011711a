"""What the network is given: a page scaled, padded and blanked as the model was trained.

Every runtime shares this pre-processing (and :func:`ecg_dicom.model.detector.boxes_on_page`
afterwards), so the runtimes differ only in the arithmetic of the network.
:func:`blank_outside_frame` is the one place a page is painted white outside its chart
frame: the detector, the int8 calibration pages and the site calibration all use it.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Height / width of the network input.  ECG prints are landscape: the training pages
#: and the service's own renderings are 1600 x 1137 (1.41 : 1), which at 832 px wide is
#: 832 x 591 and fits 832 x 608 (the next multiple of the stride) -- the same input
#: ultralytics' own predict builds for such a page.  A square input would spend 27 %
#: of the arithmetic on padding; the network is fully convolutional.
INPUT_ASPECT = 0.73
#: Network stride: input sides are multiples of it.
STRIDE = 32


def input_shape(imgsz: int) -> tuple[int, int]:
    """Network input (h, w) for ``model.imgsz``: ``imgsz`` wide, ``INPUT_ASPECT`` high,
    rounded up to the stride."""
    height = -(-round(imgsz * INPUT_ASPECT) // STRIDE) * STRIDE
    return max(height, STRIDE), imgsz


def resize_page(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` at ``width`` x ``height``: area averaging when shrinking (a 1-2 px trace
    survives a 2.5x reduction, where bilinear sampling skips pixels), bilinear when
    enlarging.  The training pages are shrunk with this too (``dataset build --width``)."""
    shrink = width < image.shape[1]
    return cv2.resize(
        image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def letterbox(
    image: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping the aspect ratio and pad with grey (114) to ``size`` (h, w).

    Returns the NCHW float32 RGB tensor in [0, 1], the scale and the (x, y) padding,
    which map boxes back to page pixels.  Same geometry as ultralytics' LetterBox
    (which samples bilinearly; here a page is shrunk with area averaging).
    """
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
        np.multiply(
            padded[..., channel], np.float32(1 / 255), out=tensor[0, channel], casting="unsafe"
        )
    return tensor, scale, (float(left), float(top))


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
