"""blank.py: the page of a signal that cannot be drawn: grid, frame, header and the
reason, no trace."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_dicom.errors import NotInterpretableError
from ecg_dicom.pages.blank import blank_page, not_interpretable_page
from ecg_dicom.pages.waveform import load_waveform
from variants import (
    MAC55,
    raw_reference,
    read_real,
    with_rhythm_samples,
)


def test_flat_line_copy_is_not_interpretable_and_gets_a_blank_page() -> None:
    ds = read_real(MAC55)
    ds = with_rhythm_samples(ds, np.zeros_like(raw_reference(ds)))
    with pytest.raises(NotInterpretableError, match="the recording is flat") as caught:
        load_waveform(ds)
    exc = caught.value
    assert "below 20 uV" in exc.reason and exc.page is None
    assert "GE MAC55" in exc.header[1]  # the cart's header still heads the page
    page = not_interpretable_page(exc)
    assert np.array_equal(page.image, not_interpretable_page(exc).image)  # pure
    assert page.image.shape == (1137, 1600, 3) and page.regions == () and page.header == exc.header
    # No trace: inside the frame, below the written reason, the page is the empty grid.
    assert page.frame is not None
    x0, y0, x1, y1 = (round(v) for v in page.frame)
    empty = blank_page(exc.header, "").image
    assert np.array_equal(page.image[y0 + 300:y1, x0:x1], empty[y0 + 300:y1, x0:x1])
    assert page.image[y0 + 300:y1, x0 + 3:x1 - 3].min() >= 150  # grid dots only, no ink
    # ... and the reason is written: another reason gives other pixels there.
    other = blank_page(exc.header, "another reason").image
    assert not np.array_equal(page.image[y0:y0 + 300], other[y0:y0 + 300])
    assert np.array_equal(page.image[:y0 - 2], other[:y0 - 2])  # same header
