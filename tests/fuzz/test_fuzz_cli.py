"""Mutants of the real ECGs through ``ecg-dicom classify``: each file gets its own
answer (a label, or a clear error: never "unexpected error", the CLI's word for a bug),
the exit status is 1 when any file failed, and no traceback is ever printed.

Besides the quick mix, the mutants the on-demand run (scripts/fuzz.py) found breaking
it stay here by name."""

from __future__ import annotations

from pathlib import Path

from fuzz.campaign import classify, cli_config
from fuzz.mutants import make, mutant, parse_name

#: The quick mix: mostly files that fail before inference; those with a broken
#: File Meta included.
COUNT, SEED = 40, 21
#: Found by ``scripts/fuzz.py --count 1000 --cli 100``: a traceback from classify.
FOUND = ["nesting/ge-mac55/13.22", "vr/ge-muse-mv360/13.32", "nesting/page-rgb/13.63",
         "nesting/page-pdf/13.73"]


def test_classify_gives_every_mutant_a_clear_answer_without_traceback(
    tmp_path: Path, default_model: Path
) -> None:
    folder = tmp_path / "mutants"
    folder.mkdir()
    found = [mutant(seed, index, only=mutator)
             for mutator, seed, index in map(parse_name, FOUND)]
    paths = [m.write(folder) for m in make(COUNT, SEED, quick=True) + found]
    run = classify(paths, cli_config(tmp_path / "cli"))
    assert sorted(run.answers) == sorted(map(str, paths)), run.output
    bugs = {Path(file).name: answer.strip().splitlines()[-1][:200]
            for file, answer in run.answers.items()
            if answer.startswith("error: unexpected") or "Traceback (most recent" in answer}
    assert bugs == {}, f"unexpected errors or tracebacks as answers: {bugs}"
    assert not run.traceback, run.output
    errors = [a for a in run.answers.values() if a.startswith("error: ")]
    assert all(len(e) > len("error: ") + 10 for e in errors), errors
    assert run.returncode == (1 if errors else 0), run.output
    print(f"\nfuzz classify: {len(paths)} files, {len(errors)} errors, rc {run.returncode}, "
          f"{run.seconds:.0f} s")
