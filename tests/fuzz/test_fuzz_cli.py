"""Mutants of the real ECGs through ``ecg-dicom classify``: each file gets its own
answer (a label, or a clear error), the exit status is 1 when any file failed, and
no traceback is ever printed."""

from __future__ import annotations

from pathlib import Path

from fuzz.campaign import classify, cli_config
from fuzz.mutants import make

#: The quick mix: mostly files that fail before inference; those with a broken
#: File Meta included.
COUNT, SEED = 40, 21


def test_classify_gives_every_mutant_a_clear_answer_without_traceback(
    tmp_path: Path, default_model: Path
) -> None:
    folder = tmp_path / "mutants"
    folder.mkdir()
    paths = [m.write(folder) for m in make(COUNT, SEED, quick=True)]
    run = classify(paths, cli_config(tmp_path / "cli"))
    assert not run.traceback, run.output
    assert sorted(run.answers) == sorted(map(str, paths)), run.output
    errors = [a for a in run.answers.values() if a.startswith("error: ")]
    assert all(len(e) > len("error: ") + 10 for e in errors), errors
    assert run.returncode == (1 if errors else 0), run.output
    print(f"\nfuzz classify: {len(paths)} files, {len(errors)} errors, rc {run.returncode}, "
          f"{run.seconds:.0f} s")
