"""Reading torch files that may be damaged or hostile: errors without torch's bad advice.

``torch.load(..., weights_only=True)`` refuses pickled code, but its error message suggests
``weights_only=False``, which would run it. ``describe_load_error`` says what went wrong instead.
"""

from __future__ import annotations

import re


def describe_load_error(error: Exception) -> str:
    """What torch.load's error says, without its advice to unpickle arbitrary code."""
    text = str(error)
    if "Weights only load failed" in text:
        match = re.search(r"GLOBAL ([\w.]*\w)", text)
        if match:
            return (
                f"it holds a pickled {match.group(1)}, not only tensors and plain values "
                f"(nothing from it was run)"
            )
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
        return (
            f"it is not a file of tensors and plain values "
            f"({detail.group(1).strip() + '; ' if detail else ''}nothing from it was run)"
        )
    first = text.strip().splitlines()[0].split(". ")[0].rstrip(".") if text.strip() else ""
    if "weights_only" in first:
        first = ""
    return f"torch cannot read it ({type(error).__name__}{': ' + first if first else ''})"
