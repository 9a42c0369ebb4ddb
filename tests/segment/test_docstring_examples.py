"""The examples in the filter docstrings run and give what they show."""

from __future__ import annotations

import doctest

from subcell.segment import filters


def test_filter_docstring_examples_hold() -> None:
    result = doctest.testmod(filters, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 7 and result.failed == 0
