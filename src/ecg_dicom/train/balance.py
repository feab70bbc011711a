"""Class balance for training: small classes repeated in the training list.

Acute MI has about 19 training pages beside 140 of heart block; listing each page of
a small class several times makes ultralytics draw it several times per epoch (each
time augmented differently), which balances the loss without a custom sampler.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from ecg_dicom.records import CLASS_NAMES
from ecg_dicom.train.dataset import images_in


def oversampled_train_list(data_yaml: Path, out_txt: Path, seed: int = 0) -> dict[str, int]:
    """Write a train list where each class appears about as often as the largest one.

    ultralytics accepts a .txt of image paths as a split; listing a page several
    times makes it be drawn several times per epoch (with different augmentation),
    which balances the loss across classes without a custom sampler.  Returns the
    number of entries per class.
    """
    meta = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    root = Path(meta["path"])
    images = images_in(root / meta["train"])
    by_class: dict[int, list[Path]] = {}
    for image in images:
        label = root / "labels" / "train" / (image.stem + ".txt")
        first = label.read_text(encoding="utf-8").split() if label.exists() else []
        if first:
            by_class.setdefault(int(first[0]), []).append(image)
    largest = max(len(v) for v in by_class.values())
    rng = random.Random(seed)
    entries: list[Path] = []
    counts: dict[str, int] = {}
    for class_id, members in sorted(by_class.items()):
        repeat, extra = divmod(largest, len(members))
        chosen = members * repeat + rng.sample(members, extra)
        entries += chosen
        counts[CLASS_NAMES[class_id]] = len(chosen)
    rng.shuffle(entries)
    # absolute() and not resolve(): ultralytics finds a label by swapping /images/ for
    # /labels/ in the listed path, so the symlink inside the dataset must be listed.
    out_txt.write_text("".join(f"{p.absolute()}\n" for p in entries), encoding="utf-8")
    return counts


def balanced_data_yaml(data_yaml: Path, seed: int = 0) -> Path:
    """A sibling data yaml whose train split is the class-balanced list of images."""
    meta = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    root = Path(meta["path"])
    listing = root / "train_balanced.txt"
    counts = oversampled_train_list(data_yaml, listing, seed=seed)
    balanced = dict(meta, train=str(listing))
    out = data_yaml.with_name("data-balanced.yaml")
    out.write_text(yaml.safe_dump(balanced, sort_keys=False), encoding="utf-8")
    (root / "train_balanced.json").write_text(json.dumps(counts), encoding="utf-8")
    return out
