"""The typed configuration: defaults, site file, environment, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ecg_dicom.config import Settings, default_yaml, load_settings
from ecg_dicom.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_config_default_yaml_is_the_embedded_defaults() -> None:
    shipped = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    assert shipped == yaml.safe_load(default_yaml())
    # ...and loading it as a site file changes nothing.
    assert load_settings(ROOT / "config" / "default.yaml") == Settings()


def test_embedded_defaults_accept_only_this_machine() -> None:
    settings = Settings()
    assert settings.dicom.ae_title == "ECGDICOM" and settings.dicom.port == 11112
    assert settings.http.host == "127.0.0.1" and settings.http.port == 8080
    [rule] = settings.dicom.allowed_callers
    assert rule.ae_title == "*" and set(rule.hosts) == {"127.0.0.1", "::1"}


def test_site_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "dicom:\n  port: 104\n  ae_title: ECGAI\n"
        "delivery:\n  destinations:\n    CARDIO:\n      ae_title: PACS\n      host: pacs.local\n"
        "      port: 11112\n"
    )
    settings = load_settings(site)
    assert settings.dicom.port == 104 and settings.dicom.ae_title == "ECGAI"
    assert settings.delivery.destinations["CARDIO"].host == "pacs.local"
    assert settings.dicom.max_associations == 10  # untouched default

    monkeypatch.setenv("ECG_DICOM_DICOM__PORT", "2104")
    monkeypatch.setenv("ECG_DICOM_MODEL__RUNTIME", "openvino-int8")
    settings = load_settings(site)
    assert settings.dicom.port == 2104 and settings.model.runtime == "openvino-int8"
    assert settings.dicom.ae_title == "ECGAI"

    monkeypatch.setenv("ECG_DICOM_CONFIG", str(site))
    assert load_settings().dicom.ae_title == "ECGAI"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("dicom:\n  port: 0\n", "dicom.port"),
        ("dicom:\n  ae_title: A\\\\B\n", "dicom.ae_title"),
        ("model:\n  runtime: tensorrt\n", "model.runtime"),
        ("model:\n  precision: fp8\n", "model.precision"),
        ("output:\n  uid_root: 1.2.abc.\n", "output.uid_root"),
        ("dicom:\n  prot: 104\n", "dicom.prot"),
        ("delivery:\n  backoff_initial: 10\n  backoff_max: 1\n", "backoff_max"),
    ],
)
def test_invalid_settings_name_the_setting(tmp_path: Path, text: str, named: str) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(site)
    assert named in str(err.value)


def test_missing_or_broken_site_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("dicom: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(broken)


def test_masked_hides_redis_password() -> None:
    settings = Settings(queue={"redis_url": "redis://user:secret@cache:6379/0"})
    assert "secret" not in str(settings.masked())
