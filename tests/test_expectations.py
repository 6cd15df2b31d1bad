"""Known-failures files (opref/expectations.py): which lines are stale and why, and the errors
for a file that cannot be used."""

from __future__ import annotations

import pytest

from opref.expectations import NO_CASE, NO_RUNTIME, NOW_PASSES, parse_expected, read_expected, stale_lines

SUITE = ["seed_basic", "seed_stride2", "group2_c4_float32_random", "reject_negative_pads"]


def test_each_kind_of_stale_line_is_named_in_file_order():
    lines = parse_expected(
        "ort:cpu seed_* fail-values # listed, and it failed\n"
        "ort:cpux seed_* fail-values # misspelt runtime\n"
        "ort:cpu group3_* error # no such case in the suite\n"
        "ort:cpu reject_* accepted-invalid # fixed: it now rejects\n"
        "openvino seed_basic error # a runtime this run did not validate\n"
    )
    used = [lines[0]]
    got = stale_lines(lines, used, ["ort:cpu"], SUITE, SUITE)
    assert [(e.line, why) for e, why in got] == [
        (2, NO_RUNTIME),
        (3, NO_CASE),
        (4, NOW_PASSES),
        (5, NO_RUNTIME),
    ]


def test_a_line_about_cases_outside_the_selection_is_not_stale():
    lines = parse_expected("ort:cpu reject_* accepted-invalid # not run this time (--only seed_*)\n")
    assert stale_lines(lines, [], ["ort:cpu"], ["seed_basic"], SUITE) == []


def test_a_missing_or_unreadable_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"known-failures file .*missing.txt: no such file"):
        read_expected(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match=r"known-failures file .*: cannot be read"):
        read_expected(str(tmp_path))  # a directory
