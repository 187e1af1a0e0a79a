"""The paper's own words and numbers, transcribed by hand: the one place they are typed.

* :data:`PAPER_TABLE1`: Table 1 (final-episode return, mean and std over
  :data:`PAPER_TABLE1_SEEDS` seeds per variant), as printed;
* :data:`PAPER_CLAIMS`: the text's claims C1-C13 (``docs/design.md``, 'The claims'): where
  the paper says it, a short name, the quoted statement and the numbers it gives;
* :data:`CLAIM_IDS`: the claims' ids in order.

Everything here is the paper's, not ours, and is labelled as the paper's wherever it is shown
(:mod:`pgsom.report` for Table 1, :mod:`pgsom.claims` for the claims report). Every other
number of the artifact comes from the runs. This module imports nothing of pgsom, so both
reports (and the training-free tests) can read it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PAPER_TABLE1", "PAPER_TABLE1_SEEDS", "PAPER_CLAIMS", "CLAIM_IDS", "PAPER_LR",
           "PAPER_CLIP_NORM", "PAPER_CLIP_LR_SCALE", "PAPER_ENTROPY_COEF"]

PAPER_LR = 0.002
"""The learning rate of every method (paper 4.1)."""
PAPER_CLIP_NORM = 50.0
"""The gradient-norm clipping threshold of the ``+clip`` rows (paper 4.1)."""
PAPER_CLIP_LR_SCALE = 2.0
"""The ``+clip`` rows double the learning rate (paper 4.1)."""
PAPER_ENTROPY_COEF = 0.01
"""The entropy bonus coefficient beta_H of the ``+entropy`` rows (paper 4.1)."""

PAPER_TABLE1: dict[str, tuple[float, float]] = {
    # variant: (mean, std) of the final-episode return over 5 seeds, as printed in the
    # paper's Table 1 ("Model | Mean | Std"). Transcribed by hand; the paper's, not ours.
    "pg": (202.70, 23.99),               # Policy Gradient
    "pg+clip": (370.51, 38.72),          # Policy Gradient + clip
    "pg+entropy": (239.90, 58.98),       # Policy Gradient + entropy
    "pg+baseline": (218.84, 47.17),      # Policy Gradient + baseline
    "hessian": (147.00, 24.53),          # Hessian Policy Gradient
    "hessian+clip": (392.79, 0.55),      # Hessian Policy Gradient + clip
    "hessian+entropy": (274.99, 112.73),  # Hessian Policy Gradient + entropy
    "hessian+baseline": (208.43, 115.63),  # Hessian Policy Gradient + baseline
    "rk": (314.18, 66.33),               # Runge–Kutta
    "rk+clip": (383.09, 7.15),           # Runge–Kutta + clip
    "rk+entropy": (314.75, 95.46),       # Runge–Kutta + entropy
    "rk+baseline": (328.21, 65.32),      # Runge–Kutta + baseline
}
"""Table 1 of the paper: variant -> (mean, std) of the final-episode return."""
PAPER_TABLE1_SEEDS = 5
"""The paper runs each variant 5 times (paper 4.1)."""

PAPER_CLAIMS: dict[str, dict[str, Any]] = {
    # Transcribed by hand from the paper's text (section in "where"); the paper's words and
    # numbers, not ours. Table 1's numbers are PAPER_TABLE1 above. Numbers are kept as
    # printed (strings) where their precision matters (C12).
    "C1": {"where": "Abstract", "short": "sample efficiency vs first-order and Fisher baselines",
           "text": "Numerical experiments on standard control benchmarks show up to a 2.1x "
                   "increase in sample efficiency ... compared to first-order and "
                   "Fisher-matrix baselines.",
           "ratio": 2.1},
    "C2": {"where": "Abstract", "short": "variance reduction vs the same baselines",
           "text": "... and a substantial reduction in variance compared to first-order and "
                   "Fisher-matrix baselines."},
    "C3": {"where": "Abstract; Lemma 3.1", "short": "the diagonal Hessian estimator is unbiased",
           "text": "We ... establish that the diagonal Hessian estimator is unbiased"},
    "C4": {"where": "Abstract; Section 3.1", "short": "the estimator is positive-definite",
           "text": "... and positive-definite under mild regularity assumptions"},
    "C5": {"where": "Abstract; Section 3.1", "short": "the update is an ascent direction in expectation",
           "text": "... and prove that the resulting update is a descent direction in expectation"},
    "C6": {"where": "Lemma 3.2", "short": "the score does not involve the transition kernel",
           "text": "The policy-gradient score term depends only on the policy's "
                   "log-probabilities ... and thus does not involve the unknown transition kernel"},
    "C7": {"where": "Section 3.7; Abstract", "short": "cost: one extra backward pass, O(d) memory, slower wall clock",
           "text": "PG-SOM adds one extra backward pass for the diagonal Hessian ... yet keeping "
                   "memory overhead negligible. Empirically, this translates to a wall-clock "
                   "slowdown"},
    "C8": {"where": "Section 4.2 (Figure 2)", "short": "episodes to reach 200: RK ~250, PG ~350, Hessian PG ~400",
           "text": "Runge-Kutta (RK) reaches the reward threshold of 200 after ~250 episodes, "
                   "whereas Policy Gradient (PG) requires ~350 episodes and Hessian PG almost 400.",
           "threshold": 200, "episodes": {"rk": 250, "pg": 350, "hessian": 400}},
    "C9": {"where": "Section 4.2 (Figure 2)", "short": "RK's band narrows steadily; Hessian PG's stays wide",
           "text": "RK's confidence band narrows steadily, indicating consistent improvement "
                   "across random seeds. In contrast, Hessian PG exhibits wide bands until late "
                   "in training"},
    "C10": {"where": "Sections 4.2, 4.3 (Table 1)", "short": "clipping raises the mean and cuts the variance of every method",
            "text": "Across the board, gradient clipping boosts the mean return and slashes variance"},
    "C11": {"where": "Table 1", "short": "Table 1's twelve means and stds",
            "text": "Table 1: final-episode return, mean and std over 5 seeds per variant"},
    "C12": {"where": "Abstract; Sections 4.2, 4.3 vs Table 1", "short": "the text's numbers and comparisons vs its own Table 1",
            "text": "The text's statements about Table 1's variants",
            # (section, quote, variant, statistic, value as printed)
            "numbers": [
                ("4.2", "RK+clip attains the highest score (mean 389.6, std 7.2)", "rk+clip", "mean", "389.6"),
                ("4.2", "RK+clip attains the highest score (mean 389.6, std 7.2)", "rk+clip", "std", "7.2"),
                ("4.2", "followed by Hessian PG+clip (mean 378.4, std 0.6)", "hessian+clip", "mean", "378.4"),
                ("4.2", "followed by Hessian PG+clip (mean 378.4, std 0.6)", "hessian+clip", "std", "0.6"),
                ("4.3", "the mean return leaps from 202.7 to 370.5", "pg", "mean", "202.7"),
                ("4.3", "the mean return leaps from 202.7 to 370.5", "pg+clip", "mean", "370.5"),
                ("4.3", "the standard deviation remains comparable (24.0 38.7)", "pg", "std", "24.0"),
                ("4.3", "the standard deviation remains comparable (24.0 38.7)", "pg+clip", "std", "38.7"),
                ("4.3", "clipping pushes the mean from just 147.0 to 392.8", "hessian", "mean", "147.0"),
                ("4.3", "clipping pushes the mean from just 147.0 to 392.8", "hessian+clip", "mean", "392.8"),
                ("4.3", "slashes the std from 24.5 to 0.6", "hessian", "std", "24.5"),
                ("4.3", "slashes the std from 24.5 to 0.6", "hessian+clip", "std", "0.6"),
                ("4.3", "climbing from 314.2 to 383.1", "rk", "mean", "314.2"),
                ("4.3", "climbing from 314.2 to 383.1", "rk+clip", "mean", "383.1"),
                ("4.3", "std from 66.3 to 7.2", "rk", "std", "66.3"),
                ("4.3", "std from 66.3 to 7.2", "rk+clip", "std", "7.2"),
                ("4.3", "raises the mean from 202.7 to 239.9", "pg", "mean", "202.7"),
                ("4.3", "raises the mean from 202.7 to 239.9", "pg+entropy", "mean", "239.9"),
                ("4.3", "increases the variance (std 24.0 59.0)", "pg", "std", "24.0"),
                ("4.3", "increases the variance (std 24.0 59.0)", "pg+entropy", "std", "59.0"),
                ("4.3", "A baseline reduces stochastic noise somewhat (mean → 218.8, std → 47.2)", "pg+baseline", "mean", "218.8"),
                ("4.3", "A baseline reduces stochastic noise somewhat (mean → 218.8, std → 47.2)", "pg+baseline", "std", "47.2"),
                ("4.3", "the entropy improves the mean to 275.0 ... (std 112.7)", "hessian+entropy", "mean", "275.0"),
                ("4.3", "the entropy improves the mean to 275.0 ... (std 112.7)", "hessian+entropy", "std", "112.7"),
                ("4.3", "a baseline yields only marginal benefit (mean 208.4, std 115.6)", "hessian+baseline", "mean", "208.4"),
                ("4.3", "a baseline yields only marginal benefit (mean 208.4, std 115.6)", "hessian+baseline", "std", "115.6"),
                ("4.3", "strong mean performance (383.1) and low variance (7.2)", "rk+clip", "mean", "383.1"),
                ("4.3", "strong mean performance (383.1) and low variance (7.2)", "rk+clip", "std", "7.2"),
                # an integer's trailing zeros are not significant: "200" is 200 +- 50
                ("4.3", "Without stabilizers, PG stagnates at 200", "pg", "mean", "200"),
            ],
            # (section, quote, from variant, to variant, percent change as printed)
            "percents": [
                ("4.3", "an increase of 83 %", "pg", "pg+clip", "83"),
                ("4.3", "a 167 % jump", "hessian", "hessian+clip", "167"),
                ("4.3", "a 22 % boost", "rk", "rk+clip", "22"),
                ("4.3", "raises the mean ... (+18 %)", "pg", "pg+entropy", "18"),
                ("4.3", "the entropy improves the mean to 275.0 ( +87 %)", "hessian", "hessian+entropy", "87"),
            ],
            # (section, quote, relation, operands): each comparison the text makes between
            # Table 1's rows, one thing it asserts per entry (a sentence asserting several
            # things is several entries). The relations are read as the code reads them
            # (pgsom.claims.builders.SELF_CHECKS): "higher mean" A B, "higher sd" A B,
            # "lower sd" A B, "much lower sd" A B ('slashes', 'substantial': by more than the
            # medium factor), "comparable sd" A B, "little mean change" A B, "slight gain"
            # A B (above, by less than a medium effect), "smaller gain" A B C D and "larger
            # gain" A B C D (mean A - mean B against mean C - mean D), "highest mean" A,
            # "mean rank" A k, "lowest mean" A, "lowest sd" A, "broad sd" A, "not dominated" A.
            "comparisons": [
                *(("4.2", "Across the board, gradient clipping boosts the mean return", "higher mean", (f"{m}+clip", m))
                  for m in ("pg", "hessian", "rk")),
                *(("4.2", "Across the board, gradient clipping ... slashes variance", "much lower sd", (f"{m}+clip", m))
                  for m in ("pg", "hessian", "rk")),
                ("4.2", "RK+clip attains the highest score", "highest mean", ("rk+clip",)),
                ("4.2", "followed by Hessian PG+clip", "mean rank", ("hessian+clip", 2)),
                ("4.2", "Entropy regularisation improves PG", "higher mean", ("pg+entropy", "pg")),
                ("4.2", "Entropy regularisation improves ... RK", "higher mean", ("rk+entropy", "rk")),
                ("4.2", "but has little effect on Hessian PG", "little mean change", ("hessian+entropy", "hessian")),
                *(("4.2", "the simple baseline offers modest gains", "higher mean", (f"{m}+baseline", m))
                  for m in ("pg", "hessian", "rk")),
                *(("4.2", "the simple baseline offers ... comparable variance", "comparable sd", (f"{m}+baseline", m))
                  for m in ("pg", "hessian", "rk")),
                *(("4.3", "Applying gradient-norm clipping yields dramatic gains across all methods", "higher mean",
                   (f"{m}+clip", m)) for m in ("pg", "hessian", "rk")),
                ("4.3", "the standard deviation remains comparable (24.0 38.7)", "comparable sd", ("pg+clip", "pg")),
                ("4.3", "The effect is even more pronounced for Hessian PG", "larger gain",
                 ("hessian+clip", "hessian", "pg+clip", "pg")),
                ("4.3", "slashes the std from 24.5 to 0.6", "much lower sd", ("hessian+clip", "hessian")),
                ("4.3", "tightening its band (std from 66.3 to 7.2)", "lower sd", ("rk+clip", "rk")),
                *(("4.3", "Entropy regularization and simple baselines offer more modest improvements", "smaller gain",
                   (f"{m}+{s}", m, f"{m}+clip", m)) for m in ("pg", "hessian", "rk") for s in ("entropy", "baseline")),
                ("4.3", "but actually increases the variance (std 24.0 59.0)", "higher sd", ("pg+entropy", "pg")),
                ("4.3", "A baseline reduces stochastic noise somewhat", "lower sd", ("pg+baseline", "pg")),
                ("4.3", "but its gains pale beside clipping", "smaller gain", ("pg+baseline", "pg", "pg+clip", "pg")),
                ("4.3", "For Hessian PG, the entropy improves the mean ... but with very high variance", "higher sd",
                 ("hessian+entropy", "hessian")),
                ("4.3", "For Hessian PG, ... a baseline yields only marginal benefit", "slight gain", ("hessian+baseline", "hessian")),
                ("4.3", "Runge–Kutta+entropy and +baseline ...: entropy gives little net gain in mean", "little mean change", ("rk+entropy", "rk")),
                ("4.3", "Runge–Kutta+entropy and +baseline ...: entropy ... incurs large std", "higher sd", ("rk+entropy", "rk")),
                ("4.3", "Runge–Kutta+entropy and +baseline ...: a baseline offers slight mean uplifts", "slight gain", ("rk+baseline", "rk")),
                ("4.3", "Runge–Kutta+entropy and +baseline ...: a baseline ... remains noisy", "comparable sd", ("rk+baseline", "rk")),
                ("4.3", "Vanilla PG: Without stabilizers, PG ... suffers a broad std band", "broad sd", ("pg",)),
                ("4.3", "Clipping transforms it into a competent learner, almost matching RK's unclipped performance",
                 "slight gain", ("rk", "pg+clip")),
                ("4.3", "Hessian PG alone performs worst of all", "lowest mean", ("hessian",)),
                ("4.3", "Clipping rescues it spectacularly, yielding the highest mean", "highest mean", ("hessian+clip",)),
                ("4.3", "Clipping rescues it spectacularly, yielding ... the narrowest band of any variant", "lowest sd",
                 ("hessian+clip",)),
                ("4.3", "Even the unclipped RK comfortably surpasses PG's clipped version.", "higher mean", ("rk", "pg+clip")),
                ("4.3", "Combining RK with clipping yields the best overall trade-off", "not dominated", ("rk+clip",)),
                ("Abstract", "a substantial reduction in variance compared to first-order ... baselines", "much lower sd",
                 ("hessian", "pg")),
            ],
            },
    "C13": {"where": "Section 1 (contributions)", "short": "gains across five widely used benchmarks",
            "text": "(iii) empirically improves both sample efficiency and final return across "
                    "five widely used benchmarks."},
}
"""The paper's text claims, transcribed by hand (the only place they are typed)."""

CLAIM_IDS: tuple[str, ...] = tuple(PAPER_CLAIMS)
"""The claims' ids, C1-C13, in the paper's order (the order of every claims table)."""
