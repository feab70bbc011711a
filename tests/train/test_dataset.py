"""Dataset building: chart-frame boxes, the seeded stratified split, both input layouts.

Pages are synthesised here (a white page with a pink grid inside a known frame), so
the expected box is known exactly; one test also reads a real page from
``../shared/data/ecg-images`` when it is present (Khan & Hussain 2021, CC BY 4.0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ecg_dicom.records import CLASS_NAMES
from ecg_dicom.train.balance import oversampled_train_list
from ecg_dicom.train.dataset import (
    FOLDER_CLASSES,
    build_dataset,
    find_chart_frame,
    resize_to_width,
    stratified_split,
    yolo_label,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "ecg-images"


def synthetic_page(
    frame: tuple[int, int, int, int], size: tuple[int, int] = (400, 300)
) -> np.ndarray:
    """A white page with a pink 5-px grid filling ``frame`` and a black trace inside."""
    width, height = size
    page = np.full((height, width, 3), 255, np.uint8)
    x0, y0, x1, y1 = frame
    page[y0:y1, x0:x1] = (252, 240, 240)  # faint pink paper: not ink by itself
    page[y0:y1:5, x0:x1] = (240, 180, 180)
    page[y0:y1, x0:x1:5] = (240, 180, 180)
    page[y0:y1, x0] = page[y0:y1, x1 - 1] = (230, 150, 150)
    page[y0, x0:x1] = page[y1 - 1, x0:x1] = (230, 150, 150)
    mid = (y0 + y1) // 2
    page[mid - 1 : mid + 1, x0 + 10 : x1 - 10] = 0
    page[5, 5] = 0  # a stray dark speck on the margin must not widen the box
    return page


def write_folders(root: Path, per_class: dict[str, int]) -> dict[str, tuple[int, int, int, int]]:
    frames: dict[str, tuple[int, int, int, int]] = {}
    for i, (folder, count) in enumerate(per_class.items()):
        (root / folder).mkdir(parents=True)
        for k in range(count):
            frame = (20 + i, 40 + k, 380 - i, 280 - k % 3)
            name = f"{folder}-{k:03d}.png"
            Image.fromarray(synthetic_page(frame)).save(root / folder / name)
            frames[name] = frame
    return frames


def test_find_chart_frame_on_synthetic_page() -> None:
    assert find_chart_frame(synthetic_page((30, 50, 370, 260))) == (30, 50, 370, 260)


def test_blank_page_gives_whole_page() -> None:
    assert find_chart_frame(np.full((100, 200, 3), 255, np.uint8)) == (0, 0, 200, 100)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared ECG images not present")
def test_find_chart_frame_on_a_real_page() -> None:
    page = np.asarray(Image.open(next((SHARED / "normal").iterdir())).convert("RGB"))
    x0, y0, x1, y1 = find_chart_frame(page)
    height, width = page.shape[:2]
    # The chart spans nearly the full width and the lower ~80 % of the prepared pages.
    assert x0 < 0.05 * width and x1 > 0.95 * width
    assert 0.1 * height < y0 < 0.25 * height and y1 > 0.9 * height
    # The frame line itself is ink: the column just inside the left edge is not white.
    assert page[y0:y1, x0].min() < 230


def test_yolo_label_is_normalised_centre_and_size() -> None:
    assert yolo_label(2, (100, 50, 300, 250), 400, 300) == "2 0.500000 0.500000 0.500000 0.666667"


def test_stratified_split_is_seeded_and_stratified() -> None:
    items = {name: [Path(f"{name}-{i}.jpg") for i in range(n)]
             for name, n in zip(CLASS_NAMES, (50, 20, 6, 30), strict=True)}
    train, val = stratified_split(items, 0.2, seed=3)
    again = stratified_split(items, 0.2, seed=3)
    other = stratified_split(items, 0.2, seed=4)
    assert (train, val) == again
    assert val != other[1]
    val_counts = {n: sum(1 for c, _ in val if c == n) for n in CLASS_NAMES}
    assert val_counts == {"ECG HB": 10, "History_MI": 4, "MI-ECG": 1, "Normal-ECG": 6}
    assert not {p for _, p in train} & {p for _, p in val}
    assert len(train) + len(val) == 106


def test_build_from_class_folders(tmp_path: Path) -> None:
    frames = write_folders(
        tmp_path / "src", {"heart_block": 6, "history_mi": 4, "mi": 2, "normal": 5}
    )
    summary = build_dataset(tmp_path / "src", tmp_path / "out", val_fraction=0.25, seed=0)
    assert summary.layout == "folders"
    assert summary.counts["val"] == {"ECG HB": 2, "History_MI": 1, "MI-ECG": 1, "Normal-ECG": 1}
    meta = yaml.safe_load(summary.data_yaml.read_text())
    assert list(meta["names"].values()) == list(CLASS_NAMES)
    for split in ("train", "val"):
        for image in (tmp_path / "out" / "images" / split).iterdir():
            label_file = tmp_path / "out" / "labels" / split / (image.stem + ".txt")
            label = label_file.read_text().split()
            folder = image.name.split("-")[0]
            assert int(label[0]) == CLASS_NAMES.index(FOLDER_CLASSES[folder])
            x0, y0, x1, y1 = frames[image.name]
            cx, cy, w, h = map(float, label[1:])
            assert cx == pytest.approx((x0 + x1) / 800, abs=1e-5)
            assert cy == pytest.approx((y0 + y1) / 600, abs=1e-5)
            assert w == pytest.approx((x1 - x0) / 400, abs=1e-5)
            assert h == pytest.approx((y1 - y0) / 300, abs=1e-5)
    # A rebuild with another seed leaves no stale images behind.
    build_dataset(tmp_path / "src", tmp_path / "out", val_fraction=0.25, seed=1)
    n_images = sum(1 for _ in (tmp_path / "out" / "images").rglob("*.png"))
    assert n_images == 17


def test_build_at_a_width_shrinks_pages_and_keeps_labels_and_split(tmp_path: Path) -> None:
    write_folders(tmp_path / "src", {"heart_block": 4, "history_mi": 3, "mi": 2, "normal": 3})
    full = build_dataset(tmp_path / "src", tmp_path / "full", val_fraction=0.25, seed=3)
    small = build_dataset(
        tmp_path / "src", tmp_path / "small", val_fraction=0.25, seed=3, width=200
    )
    assert small.counts == full.counts
    for split in ("train", "val"):
        names = sorted(p.name for p in (tmp_path / "full" / "images" / split).iterdir())
        assert names == sorted(p.name for p in (tmp_path / "small" / "images" / split).iterdir())
        for name in names:
            image = tmp_path / "small" / "images" / split / name
            assert not image.is_symlink()
            with Image.open(image) as im:
                assert im.size == (200, 150)
                shrunk = np.asarray(im.convert("RGB"))
            stem = Path(name).stem
            assert (tmp_path / "small" / "labels" / split / f"{stem}.txt").read_text() == (
                tmp_path / "full" / "labels" / split / f"{stem}.txt"
            ).read_text()
            # The 2-px black trace is still a dark line at half size (the averaging
            # itself is measured in test_resize_to_width_uses_area_averaging).
            assert shrunk[:, 20:180].min() < 160


def test_resize_to_width_uses_area_averaging() -> None:
    page = np.full((300, 400, 3), 255, np.uint8)
    page[:, 201] = 0  # a 1-px line on an odd column
    shrunk = resize_to_width(page, 100)
    assert shrunk.shape == (75, 100, 3)
    # Averaged over 4 x 4 source pixels the line leaves a quarter-dark column.
    assert shrunk[:, 50].mean() == pytest.approx(255 * 3 / 4, abs=2)
    assert resize_to_width(page, 400) is page


def test_oversampled_list_balances_classes(tmp_path: Path) -> None:
    write_folders(tmp_path / "src", {"heart_block": 9, "history_mi": 4, "mi": 2, "normal": 5})
    summary = build_dataset(tmp_path / "src", tmp_path / "out", val_fraction=0.0, seed=0)
    counts = oversampled_train_list(summary.data_yaml, tmp_path / "list.txt")
    assert counts == {name: 9 for name in CLASS_NAMES}
    lines = (tmp_path / "list.txt").read_text().split()
    assert len(lines) == 36
    # Listed through the dataset's images/ folder, so ultralytics finds labels/ beside it.
    assert all("/images/train/" in line for line in lines)
    assert sum(Path(line).name.startswith("mi-") for line in lines) == 9


def test_build_from_roboflow_export_remaps_classes(tmp_path: Path) -> None:
    src = tmp_path / "rf"
    roboflow_names = ["Normal-ECG", "MI-ECG", "ECG HB", "History_MI"]  # not our order
    (src).mkdir()
    (src / "data.yaml").write_text(yaml.safe_dump({"nc": 4, "names": roboflow_names}))
    for folder in ("train", "valid"):
        (src / folder / "images").mkdir(parents=True)
        (src / folder / "labels").mkdir(parents=True)
        for k in range(len(roboflow_names)):
            Image.fromarray(synthetic_page((20, 40, 380, 280))).save(
                src / folder / "images" / f"{folder}{k}.jpg"
            )
            (src / folder / "labels" / f"{folder}{k}.txt").write_text(
                f"{k} 0.5 0.5 0.9 0.8\n"
            )
    summary = build_dataset(src, tmp_path / "out")
    assert summary.layout == "roboflow"
    assert summary.counts["train"] == {name: 1 for name in CLASS_NAMES}
    for k, name in enumerate(roboflow_names):
        line = (tmp_path / "out" / "labels" / "val" / f"valid{k}.txt").read_text().split()
        assert int(line[0]) == CLASS_NAMES.index(name)
        assert line[1:] == ["0.5", "0.5", "0.9", "0.8"]
    meta = yaml.safe_load(summary.data_yaml.read_text())
    assert meta["val"] == "images/val" and list(meta["names"].values()) == list(CLASS_NAMES)


def test_roboflow_export_with_unknown_class_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "rf"
    (src / "train" / "images").mkdir(parents=True)
    (src / "data.yaml").write_text(yaml.safe_dump({"names": ["Normal-ECG", "Cat"]}))
    with pytest.raises(ValueError, match="Cat"):
        build_dataset(src, tmp_path / "out")


def test_cli_dataset_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import json

    from ecg_dicom.train.commands import register

    write_folders(tmp_path / "src", {"heart_block": 3, "normal": 3})
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["dataset", "build", str(tmp_path / "src"), str(tmp_path / "out"), "--seed", "2",
         "--val-fraction", "0.34", "--copy"]
    )
    assert args.func(args, None) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["counts"]["val"]["ECG HB"] == 1 and printed["seed"] == 2
    assert not any(p.is_symlink() for p in (tmp_path / "out" / "images").rglob("*.png"))
    bad = parser.parse_args(["dataset", "build", str(tmp_path / "nowhere"), str(tmp_path / "o")])
    assert bad.func(bad, None) == 1
