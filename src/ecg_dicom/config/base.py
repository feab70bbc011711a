"""What every section of the configuration shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_ae_title(value: str) -> str:
    """AE titles are 1-16 characters of the DICOM default repertoire, no backslash
    (PS3.5 6.2, VR AE)."""
    stripped = value.strip()
    if not stripped or len(stripped) > 16 or "\\" in stripped or not stripped.isprintable():
        raise ValueError(
            f"{value!r} is not a valid AE title: use 1 to 16 printable characters, no backslash"
        )
    return stripped
