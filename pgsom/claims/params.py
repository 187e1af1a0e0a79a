"""The statistics notebook's parameters, checked before anything runs."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["validate_parameters"]


def validate_parameters(**params: Any) -> dict[str, Any]:
    """The statistics notebook's parameters: its own (``fpr_variant``: a variant name;
    ``fpr_trials``: int >= 100) checked here, the others by
    :func:`pgsom.experiments.validate_parameters`. A bad value raises
    :class:`pgsom.experiments.ParameterError` (one line in a notebook)."""
    from pgsom import experiments as ex

    own = {k: params.pop(k) for k in ("fpr_variant", "fpr_trials") if k in params}
    out = ex.validate_parameters(**params)
    if "fpr_trials" in own:
        v = own["fpr_trials"]
        if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 100):
            raise ex.ParameterError(f"fpr_trials must be an int >= 100 (simulated pairs of groups), got {v!r}")
        out["fpr_trials"] = int(v)
    if "fpr_variant" in own:
        v = own["fpr_variant"]
        allowed = out.get("variants") or list(ex.all_variants())
        if v not in allowed:
            raise ex.ParameterError(f"fpr_variant must be one of the variants {list(allowed)}, got {v!r}")
        out["fpr_variant"] = v
    return out
