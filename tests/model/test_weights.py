"""The weights checks (model.weights: verify_weights, weights_checksum)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ecg_dicom.config import ModelSettings
from ecg_dicom.errors import ModelError
from ecg_dicom.model.weights import verify_weights, weights_checksum


def write_weights(tmp_path: Path, content: bytes = b"not really a model") -> Path:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    return path


def test_checksum_is_sha256(tmp_path: Path) -> None:
    path = write_weights(tmp_path, b"x" * (3 << 20))
    assert weights_checksum(path) == hashlib.sha256(b"x" * (3 << 20)).hexdigest()


def test_verify_with_sidecar(tmp_path: Path) -> None:
    path = write_weights(tmp_path)
    digest = weights_checksum(path)
    (tmp_path / "model.pt.sha256").write_text(f"{digest}  model.pt\n")
    assert verify_weights(ModelSettings(weights=path)) == digest
    assert verify_weights(ModelSettings(weights=path, sha256=digest.upper())) == digest


def test_verify_with_setting_only(tmp_path: Path) -> None:
    path = write_weights(tmp_path)
    digest = weights_checksum(path)
    assert verify_weights(ModelSettings(weights=path, sha256=digest)) == digest


def test_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        verify_weights(ModelSettings(weights=tmp_path / "absent.pt"))


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    path = write_weights(tmp_path)
    (tmp_path / "model.pt.sha256").write_text(weights_checksum(path) + "  model.pt\n")
    path.write_bytes(b"something else")
    with pytest.raises(ModelError, match="model.pt.sha256 expects"):
        verify_weights(ModelSettings(weights=path))


def test_setting_and_sidecar_must_both_match(tmp_path: Path) -> None:
    path = write_weights(tmp_path)
    (tmp_path / "model.pt.sha256").write_text(weights_checksum(path) + "\n")
    with pytest.raises(ModelError, match="model.sha256 setting"):
        verify_weights(ModelSettings(weights=path, sha256="0" * 64))


def test_no_checksum_at_all_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no checksum"):
        verify_weights(ModelSettings(weights=write_weights(tmp_path)))
