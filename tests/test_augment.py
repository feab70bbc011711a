"""The training augmentation (issue 14): photo/scan defects change pixels, never the page's
geometry, and ultralytics' training transforms really apply them once installed."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from ecg_dicom.train import augment
from ecg_dicom.train.training import ECG_AUGMENTATION
from realdata import ECG_IMAGES_DIR


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    path = sorted((ECG_IMAGES_DIR / "normal").glob("*.jpg"))[0]
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None
    return cv2.resize(image, (832, 468), interpolation=cv2.INTER_AREA)


def test_every_defect_changes_pixels_and_keeps_the_shape(page: np.ndarray) -> None:
    for defect, _ in augment.DEFECTS:
        out = defect(page.copy(), random.Random(1))
        assert out.shape == page.shape and out.dtype == np.uint8, defect.__name__
        assert np.abs(out.astype(int) - page).mean() > 0.1, defect.__name__


def test_defects_are_reproducible_with_a_seed(page: np.ndarray) -> None:
    a = augment.photo_defects(page.copy(), random.Random(7))
    b = augment.photo_defects(page.copy(), random.Random(7))
    assert np.array_equal(a, b)


def test_settings_never_mirror_tile_or_erase() -> None:
    for key in ("mosaic", "mixup", "cutmix", "copy_paste", "fliplr", "flipud", "erasing"):
        assert ECG_AUGMENTATION[key] == 0.0, key
    assert 0 < ECG_AUGMENTATION["degrees"] <= 10


def test_install_puts_the_defects_into_ultralytics_training_step(page: np.ndarray) -> None:
    from ultralytics.data.augment import Albumentations

    original = Albumentations.__call__
    try:
        augment.install(p=1.0)
        step = Albumentations(p=1.0)
        random.seed(3)
        labels = step({"img": page.copy()})
        assert labels["img"].shape == page.shape
        assert not np.array_equal(labels["img"], page)
        augment.install(p=0.0)
        assert np.array_equal(step({"img": page.copy()})["img"], page)
    finally:
        Albumentations.__call__ = original  # type: ignore[method-assign]


def test_the_gpu_script_loads_the_same_module_by_path() -> None:
    """scripts/train_folds_gpu.py loads augment.py by its path (no project install on the
    GPU machine): that file must import nothing from the project."""
    source = Path(augment.__file__).read_text(encoding="utf-8")
    assert "ecg_dicom" not in "".join(
        line for line in source.splitlines() if line.startswith(("import", "from"))
    )
