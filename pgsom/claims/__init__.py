"""The claims report: each claim of the paper (``docs/design.md``, 'The claims', C1-C13)
against our runs.

Pure functions from the tidy data of :func:`pgsom.experiments.load_experiment` (``finals``:
one row per run; ``curves``: one row per run and episode), the derivations notebook's table
(``paper/derivations.csv``) and the paper's own numbers to ``claims.md``, ``claims.csv``,
``numbers.tex`` and ``comparisons.csv``, deterministic for a fixed ``seed``. The package, in
the order the data flows:

=================================  =========================================================
:mod:`pgsom.paper`                 the paper's words and numbers: :data:`PAPER_CLAIMS` and
                                   Table 1 (:data:`PAPER_TABLE1`), typed nowhere else
:mod:`pgsom.claims.data`           selecting runs from the tidy frames; the rng per row
:mod:`pgsom.claims.comparisons`    the family of pairwise tests (:data:`COMPARISONS`,
                                   :func:`comparison_family`): Welch + Holm, Hedges' g,
                                   P(A > B), Brown-Forsythe, power and seeds needed
:mod:`pgsom.claims.rows`           :class:`Row` (immutable) and its makers, one per kind of
                                   test (means, sds, episodes, the paper's numbers)
:mod:`pgsom.claims.builders`       one builder per claim, ``BUILDERS["C9"]`` -> ``c9``
:mod:`pgsom.claims.inspection`     the code inspection of C7 (:func:`state_memory`)
:mod:`pgsom.claims.rule`           THE verdict rule (:func:`verdict`, :func:`aggregate`,
                                   :data:`ALPHA` ...), its prose in ``rule.md``
:mod:`pgsom.claims.build`          :func:`claim_rows` (every builder, Holm within families)
                                   and :func:`build_report` (verdicts, per-claim verdicts)
:mod:`pgsom.claims.render`         numbers and LaTeX macros (:class:`Numbers`,
                                   :func:`macro_name`), markdown, csv, :func:`write_report`
:mod:`pgsom.claims.params`         the statistics notebook's parameters
=================================  =========================================================

Timings never enter this report (they are not deterministic): claim C7's wall-clock part
points to ``python -m pgsom bench``. Every name below is importable from ``pgsom.claims``.
"""

from __future__ import annotations

from pgsom.claims.build import Report, build_report, claim_rows, final_vs_eval
from pgsom.claims.builders import BUILDERS, C9_SMOOTH, ClaimData, c9_window, paper_self_checks
from pgsom.claims.comparisons import COMPARISONS, comparison_family
from pgsom.claims.data import row_rng, with_pooled
from pgsom.claims.inspection import optimizer_state_floats, state_memory
from pgsom.claims.params import validate_parameters
from pgsom.claims.render import (CSV_COLUMNS, MAX_DERIVED_ROWS, Numbers, claims_csv,
                                 claims_markdown, format_value, macro_name, write_report)
from pgsom.claims.rows import Row
from pgsom.claims.rule import (ALPHA, CONTEXT, DECIDING, LEVEL, MEDIUM_EFFECT, POOLED, POWER,
                               REPLICATION_SEEDS, RULE_TEXT, VERDICTS, aggregate, claim_verdicts,
                               rule_markdown, stable_verdict, verdict)
from pgsom.paper import CLAIM_IDS, PAPER_CLAIMS, PAPER_TABLE1, PAPER_TABLE1_SEEDS

_rng = row_rng  # the statistics notebook's name for the rng per key

__all__ = [
    "PAPER_CLAIMS", "CLAIM_IDS", "COMPARISONS", "ALPHA", "LEVEL", "POWER", "MEDIUM_EFFECT",
    "REPLICATION_SEEDS", "VERDICTS", "RULE_TEXT", "verdict", "aggregate", "comparison_family",
    "claim_rows", "claim_verdicts", "build_report", "write_report", "Numbers", "macro_name",
    "optimizer_state_floats", "state_memory", "paper_self_checks", "validate_parameters",
    "Report",
    # also importable from here (the notebooks' and tests' names)
    "PAPER_TABLE1", "PAPER_TABLE1_SEEDS", "CONTEXT", "MAX_DERIVED_ROWS", "CSV_COLUMNS",
    "C9_SMOOTH", "c9_window", "Row", "BUILDERS", "ClaimData", "format_value",
    "claims_markdown", "claims_csv", "final_vs_eval", "rule_markdown", "row_rng",
    "with_pooled", "DECIDING", "POOLED", "stable_verdict",
]
