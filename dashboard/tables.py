"""Tables as the pages show them: numbers formatted, and no cell ever reads ``None``.

A value that should exist but is not known (a cost without a price, a confidence the backend
did not give) reads "unknown", and the reason stands in the column beside it or in the
column's help (shown on hover); a value that does not apply to a row (a row nobody ran, the
reference compared with itself) reads "—". The formatting is a pandas Styler, so Streamlit
shows these words while sorting a column by its numbers.
"""

from __future__ import annotations

from typing import Any, Iterable

UNKNOWN = "unknown"
"""Shown for a value that exists but is not known."""
NOT_APPLICABLE = "—"
"""Shown for a value that does not apply to the row."""


def styled(frame: Any, formats: dict[str, str] | None = None, *, not_applicable: Iterable[Any] = ()) -> Any:
    """``frame`` as a Styler: the columns of ``formats`` formatted with their format strings
    (``"{:.2f}"``, ``"${:,.2f}"``), the others as they are; in every column a missing value reads
    `UNKNOWN`, or `NOT_APPLICABLE` in the rows whose index is in ``not_applicable``."""
    import pandas as pd

    formats = formats or {}
    skip = [i for i in not_applicable if i in frame.index]
    rows = [i for i in frame.index if i not in set(skip)]
    styler = frame.style
    for column in frame.columns:
        for subset, word in ((rows, UNKNOWN), (skip, NOT_APPLICABLE)):
            if subset:
                styler = styler.format(formats.get(column), subset=pd.IndexSlice[subset, [column]], na_rep=word)
    return styler
