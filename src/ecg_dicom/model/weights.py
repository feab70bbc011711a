"""The shipped weights, verified: their SHA-256 is the algorithm version of every result.

:func:`verify_weights` checks the ``.pt`` against its expected SHA-256 before the
service starts (``model.sha256``, or the ``<weights>.sha256`` file beside them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ecg_dicom.config import ModelSettings
from ecg_dicom.errors import ModelError


def weights_checksum(path: Path) -> str:
    """SHA-256 (lower-case hex) of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_sidecar(path: Path) -> Path:
    """The ``sha256sum``-format file beside the weights: ``<weights>.sha256``."""
    return path.with_name(path.name + ".sha256")


def verify_weights(settings: ModelSettings) -> str:
    """Check the weights file and return its SHA-256 (the algorithm version).

    The expected checksum is ``settings.sha256`` when set, else the first word of
    the ``<weights>.sha256`` file beside the weights (``sha256sum`` format).  When
    both exist both must match.  Raises :class:`ModelError` naming the file, what
    was expected and what to do when the file is missing, unreadable, or differs.
    """
    path = Path(settings.weights)
    if not path.is_file():
        raise ModelError(
            f"model weights {path} not found: install the shipped weights or set model.weights"
        )
    try:
        actual = weights_checksum(path)
    except OSError as exc:
        raise ModelError(f"model weights {path} cannot be read: {exc}") from exc
    expected: list[tuple[str, str]] = []
    if settings.sha256:
        expected.append(("model.sha256 setting", settings.sha256.strip().lower()))
    sidecar = checksum_sidecar(path)
    if sidecar.is_file():
        words = sidecar.read_text(encoding="utf-8").split()
        expected.append((str(sidecar), words[0].lower() if words else ""))
    if not expected:
        raise ModelError(
            f"no checksum to verify {path} against: set model.sha256 or ship {sidecar}"
        )
    for origin, value in expected:
        if value != actual:
            raise ModelError(
                f"model weights {path} have SHA-256 {actual}, but {origin} expects "
                f"{value or '(empty)'}: the file is corrupt or not the validated model"
            )
    return actual
