"""The examples in the filter docstrings run and give what they show."""

from __future__ import annotations

import doctest

from subcell.segment.filters import _common, detection, intensity, morphology, smoothing


def test_filter_docstring_examples_hold() -> None:
    attempted = 0
    for module in (_common, detection, intensity, morphology, smoothing):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, module.__name__
        attempted += result.attempted
    assert attempted >= 7
