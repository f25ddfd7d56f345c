"""OpenCV where it is installed (the ``seg`` extra brings it): a faster copy of what numpy does, never other values.

The image path needs no OpenCV; where ``cv2`` imports, two of its plain memory operations are used
because they measured faster on the 2-core VM of benchmarks/RESULTS.md (data_pipeline): a 256-entry
look-up (``cv2.LUT``, :mod:`.normalisation`) and a left-right mirror (``cv2.flip``, :mod:`.images`).
Both move bytes or table entries without arithmetic, and the tests compare them with numpy's.
"""
from __future__ import annotations

from typing import Any, Optional

_MISSING = object()
_cv2: Any = _MISSING


def cv2_or_none() -> Optional[Any]:
    """The ``cv2`` module, imported on first use; None where OpenCV is not installed."""
    global _cv2
    if _cv2 is _MISSING:
        try:
            import cv2
        except ImportError:
            cv2 = None
        _cv2 = cv2
    return _cv2
