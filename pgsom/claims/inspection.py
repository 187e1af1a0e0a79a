"""The code inspection behind claim C7's memory part: the optimiser state an update rule keeps.

Deterministic and run-free: :func:`optimizer_state_floats` counts the floats of the state of
``transforms.make_rule(...)`` for one run; :func:`state_memory` tabulates them at three
policy sizes, per method, to show whether they are linear in d (O(d) memory by construction).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

__all__ = ["optimizer_state_floats", "state_memory"]


def optimizer_state_floats(method: str, d: int) -> int:
    """Floats a run keeps between updates in ``method``'s update rule for a policy of ``d``
    parameters: the numel of every tensor of ``transforms.make_rule(...).init`` for one run
    (Adam / PG-SOM: m, v and a step count; RK: k1; pg, npg: none)."""
    import torch

    from pgsom.config import AlgoConfig
    from pgsom.transforms import make_rule

    state = make_rule(AlgoConfig(method=method)).init(torch.zeros(1, d, dtype=torch.float64))

    def count(s) -> int:
        if isinstance(s, torch.Tensor):
            return int(s.numel())
        if isinstance(s, tuple):
            return sum(count(t) for t in s)
        return 0

    return count(state)


def state_memory(methods: Sequence[str] = ("pg", "hessian", "rk", "adam", "npg"),
                 d: int | None = None) -> pd.DataFrame:
    """Per method: ``d`` (CartPole policy parameters, default config), the state floats at
    d, 2d and 3d, ``per_param`` (the slope) and ``constant``, and ``linear`` (exactly
    a d + b: O(d) memory, by construction)."""
    if d is None:
        from pgsom.config import RunConfig
        from pgsom.policy import PolicySpec

        d = PolicySpec(4, 2, RunConfig().hidden).n_params  # CartPole: 4 observations, 2 actions
    rows = []
    for m in methods:
        f1, f2, f3 = (optimizer_state_floats(m, k * d) for k in (1, 2, 3))
        a = (f2 - f1) / d
        rows.append({"method": m, "d": d, "floats": f1, "per_param": a, "constant": f1 - a * d,
                     "linear": (f3 - f2) == (f2 - f1)})
    return pd.DataFrame(rows)
