"""scripts/mutation_check.py stays in step with the code: each break's text is in its file once,
and the tests meant to catch it exist."""

from __future__ import annotations

from pipeline.params import REPO
from tests.helpers import load_script


def test_every_break_applies_once_and_names_tests_that_exist() -> None:
    breaks = load_script("mutation_check").BREAKS
    assert len(breaks) >= 30
    for brk in breaks:
        assert (REPO / brk.file).read_text().count(brk.old) == 1, (brk.file, brk.what)
        assert brk.new != brk.old, brk.what
        for test in brk.tests:
            path, _, name = test.partition("::")
            assert (REPO / path).is_file(), test
            assert not name or f"def {name}(" in (REPO / path).read_text(), test
