"""docs/conformance.md says what the code does: its SOP class and transfer syntax tables
are parsed and compared with the sets the SCP negotiates (sop.py) and with what the SCU
proposes (negotiation.py, sc.py).  Adding a class to the code without the document, or the other
way round, fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from ecg_dicom import sop
from ecg_dicom.dicom import negotiation
from ecg_dicom.results import SC_TRANSFER_SYNTAX

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)+$")


def table(name: str) -> list[dict[str, str]]:
    """The markdown table that follows ``<!-- table: name -->``, as rows by header."""
    text = DOC.read_text(encoding="utf-8")
    marker = f"<!-- table: {name} -->"
    assert text.count(marker) == 1, f"{marker} missing or repeated in {DOC}"
    lines = text.split(marker, 1)[1].strip().splitlines()
    rows: list[list[str]] = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, rule, *body = rows
    assert all(set(cell) <= set("-: ") for cell in rule), f"{name}: no header rule"
    assert body, f"{name}: empty table"
    return [dict(zip(header, row, strict=True)) for row in body]


def uids(cell: str) -> list[str]:
    found = [part.strip() for part in cell.split(",")]
    for uid in found:
        assert UID_RE.match(uid), f"{uid!r} is not a UID"
    return found


def test_ecg_inputs_table_is_the_code_s_set() -> None:
    rows = table("scp-ecg-inputs")
    documented = [r["SOP Class UID"] for r in rows]
    assert len(documented) == len(set(documented))
    assert set(documented) == {str(u) for u in sop.ECG_INPUT_SOP_CLASSES}
    for row in rows:
        assert row["SOP Class Name"] == sop.sop_class_name(row["SOP Class UID"])


def test_transfer_syntaxes_of_each_ecg_input_class() -> None:
    syntaxes = table("scp-transfer-syntaxes")
    columns = {"Native": [], "Image": []}  # type: dict[str, list[str]]
    for row in syntaxes:
        for column, listed in columns.items():
            assert row[column] in ("Yes", "No"), row
            if row[column] == "Yes":
                listed.append(row["Transfer Syntax UID"])
    for row in table("scp-ecg-inputs"):
        expected = [str(ts) for ts in sop.transfer_syntaxes_for(row["SOP Class UID"])]
        assert columns[row["Transfer Syntaxes"]] == expected, row["SOP Class Name"]


def test_other_storage_classes_table_is_the_code_s_set() -> None:
    rows = table("scp-other-storage")
    documented = [r["SOP Class UID"] for r in rows]
    assert len(documented) == len(set(documented))
    assert set(documented) == {str(u) for u in sop.NON_ECG_SOP_CLASSES}
    assert not set(documented) & {str(u) for u in sop.ECG_INPUT_SOP_CLASSES}
    for row in rows:
        assert row["SOP Class Name"] == sop.sop_class_name(row["SOP Class UID"])
        assert [str(t) for t in sop.transfer_syntaxes_for(row["SOP Class UID"])] == [
            r["Transfer Syntax UID"] for r in table("any-transfer-syntax")]


def _sc() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = SC_TRANSFER_SYNTAX
    return ds


def test_scu_table_is_what_the_scu_proposes() -> None:
    rows = {r["SOP Class UID"]: uids(r["Transfer Syntaxes, in order of preference"])
            for r in table("scu-classes")}
    sent = {str(sop.SECONDARY_CAPTURE), *map(str, negotiation.SR_CLASSES)}
    assert set(rows) == sent
    assert list(rows)[1:] == [str(c) for c in negotiation.SR_CLASSES]  # the SR classes in order
    assert rows[str(sop.SECONDARY_CAPTURE)] == [str(t) for t in negotiation.image_syntaxes(_sc())]
    assert rows[str(sop.SECONDARY_CAPTURE)][1] == DeflatedExplicitVRLittleEndian
    for sr_class in negotiation.SR_CLASSES:
        assert rows[str(sr_class)] == [str(t) for t in negotiation.UNCOMPRESSED]


@pytest.mark.parametrize("role", ["User of Service (SCU)", "Provider of Service (SCP)"])
def test_overview_agrees_with_the_detailed_tables(role: str) -> None:
    rows = [r for r in table("overview") if UID_RE.match(r["SOP Class UID"])]
    yes = {r["SOP Class UID"] for r in rows if r[role] == "Yes"}
    if role.endswith("(SCU)"):
        assert yes == {str(sop.SECONDARY_CAPTURE), *map(str, negotiation.SR_CLASSES)}
    else:
        assert yes == {"1.2.840.10008.1.1", *map(str, sop.ECG_INPUT_SOP_CLASSES)}
        accepted = {r["SOP Class UID"] for r in rows if r[role] == "Accepted, not processed"}
        assert accepted <= {str(u) for u in sop.NON_ECG_SOP_CLASSES}
    for row in rows:
        assert UID(row["SOP Class UID"]).name == row["SOP Classes"], row
