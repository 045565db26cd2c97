"""Numbers of the report as text and as JSON.

JSON encoding of a report: finite floats are plain floats, +inf is the string ``"inf"``, -inf is
``"-inf"`` (a diverged accuracy: 1 − inf), NaN / "not available" is ``None``. So in a surface,
``None`` means "no run here" and ``"inf"`` means "diverged"; ``json.dumps(report, allow_nan=False)``
always works. Learning rates print like 1e-1, 5e-2, 1.25e-2 (:func:`fmt_lr`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def as_float(x: Any) -> float | None:
    """Read back a value that may be JSON-encoded ('inf', '-inf', None)."""
    if x is None:
        return None
    if isinstance(x, str):
        return {"inf": math.inf, "-inf": -math.inf}.get(x)
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def fmt_lr(x: Any) -> str:
    """Learning rate as compact scientific text: 0.1 -> '1e-1', 0.05 -> '5e-2', 0.0123 -> '1.23e-2'."""
    x = as_float(x)
    if x is None or math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    mant, exp = f"{x:.2e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


def fmt_num(x: Any, spec: str = ".4g") -> str:
    """A report number for display: "-" for missing/NaN, "inf"/"-inf", else ``format(x, spec)``."""
    v = as_float(x)
    if v is None or math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    out = format(v, spec)
    zero = format(0.0, spec)
    return zero if out.lstrip("+-") == zero.lstrip("+-") else out  # no "-0.00"


def signed(x: Any) -> str:
    """A shift or slope with its sign and 2 decimals: '+1.00', '-0.35', '+0.00'."""
    return fmt_num(x, "+.2f")


def fmt_pct(x: Any) -> str:
    v = as_float(x)
    if v is None or math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf"
    return f"{100 * v:.1f}%"


def fmt_regret(x: Any, unit: str = "relative") -> str:
    """A regret in its unit: relative -> '12.3%', accuracy points -> '1.2 pp'."""
    if unit == "relative":
        return fmt_pct(x)
    v = as_float(x)
    if v is None or math.isnan(v):
        return "-"
    return "inf" if math.isinf(v) else f"{100 * v:.1f} pp"


def fmt_regret_ci(ci: Any, unit: str = "relative") -> str:
    """'[lo, hi]' of a confidence interval, '' when there is none."""
    if not ci or len(ci) != 2:
        return ""
    return f"[{fmt_regret(ci[0], unit)}, {fmt_regret(ci[1], unit)}]"


def to_json(obj: Any) -> Any:
    """Recursively convert to plain Python; +inf -> 'inf', -inf -> '-inf', NaN -> None."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist())
    if obj is None or isinstance(obj, (bool, np.bool_)):
        return None if obj is None else bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    if obj is pd.NA or obj is pd.NaT:
        return None
    return str(obj)


def scalar(v: Any) -> Any:
    """Group-key value -> plain JSON scalar (ints stay ints, NaN -> None)."""
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        if math.isnan(f):
            return None
        return int(f) if f.is_integer() else f
    if v is None or v is pd.NA:
        return None
    return str(v)
