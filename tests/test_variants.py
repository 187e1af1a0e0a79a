"""The Variant type: names, labels, configs, readings, and the round trip through the tidy frames."""

import numpy as np
import pytest

from pgsom import experiments as ex
from pgsom.config import RunConfig
from pgsom.paper import PAPER_TABLE1
from pgsom.variants import (DEFAULT, FACTORS, LEVELS, REUSE, SURROGATE, Reading, Variant, level, lookup,
                            main_variants, table1_variants, variant)


def test_names_and_labels_follow_the_paper():
    assert [v.name for v in table1_variants()] == list(PAPER_TABLE1)
    v = Variant("hessian", ("clip",))
    assert (v.name, v.label, v.stabiliser) == ("hessian+clip", "Hessian Policy Gradient + clip", "clip")
    assert Variant("pg").stabiliser == "none" and Variant("pg", ("none",)) == Variant("pg")
    assert Variant("rk", reading=REUSE).name == "rk@reuse"
    assert Variant("rk", reading=REUSE).label.startswith("Runge–Kutta [")
    both = Variant("rk", ("clip",), Reading.of("reuse", "midpoint"))
    assert both.name == "rk+clip@midpoint,reuse"     # levels in LEVELS order, whatever the order given
    assert Reading.of("reuse", "midpoint") == Reading.of("midpoint", "reuse")
    assert len({Reading.of("reuse", "midpoint"), Reading.of("midpoint", "reuse"), REUSE}) == 2   # hashable
    names = [v.name for v in main_variants()]
    assert len(set(names)) == len(names) == 22
    assert names[-2:] == ["rk@reuse", "hessian@surrogate"]


def test_configs_follow_the_paper():
    cfg = Variant("pg", ("clip",)).config()
    assert cfg.algo.clip_norm == 50.0 and cfg.algo.effective_lr == pytest.approx(0.004)
    same, lr2 = Variant("pg", ("clip_same_lr",)).config(), Variant("pg", ("lr2",)).config()
    assert same.algo.clip_norm == 50.0 and same.algo.effective_lr == pytest.approx(0.002)
    assert lr2.algo.clip_norm is None and lr2.algo.effective_lr == pytest.approx(0.004)
    assert Variant("rk", ("entropy",)).config().algo.entropy_coef == 0.01
    assert Variant("hessian", ("baseline",)).config().algo.baseline
    reuse = Variant("rk", reading=REUSE).config()
    assert reuse.algo.rk_stage == "reuse" and reuse.algo.episodes_per_update == 1
    assert Variant("hessian", reading=SURROGATE).config().algo.hessian_terms == "surrogate"
    base = RunConfig(episodes=6, eval_episodes=2)
    assert Variant("npg").config(base).episodes == 6
    # variant() is the (name, config) pair of the same object
    assert variant("rk", "clip", reading=REUSE, base=base) == ("rk+clip@reuse", Variant("rk", ("clip",), REUSE).config(base))


def test_a_level_applies_to_its_methods_and_rows_only():
    r = Reading.of("entropy_small", "running_mean", "std_sample")
    assert Variant("pg", ("entropy",), r).config().algo.entropy_coef == pytest.approx(0.001)
    assert Variant("pg", reading=r).config().algo.entropy_coef == 0.0       # not an entropy row
    assert Variant("pg", ("baseline",), r).config().algo.baseline_kind == "running_mean"
    assert Variant("pg", reading=r).config().algo.baseline_kind == "time_ema"
    assert all(Variant(m, reading=r).config().algo.std_ddof == 1 for m in ("pg", "rk", "hessian"))
    # a reading that touches two methods: each variant takes its own method's part
    two = Reading.of("reuse", "surrogate")
    assert two.touches("rk") and two.touches("hessian") and not two.touches("pg")
    assert Variant("rk", reading=two.restricted("rk")).config().algo.rk_stage == "reuse"
    assert Variant("hessian", reading=two.restricted("hessian")).config().algo.hessian_terms == "surrogate"
    with pytest.raises(ValueError, match=r"level\(s\) \['surrogate'\] do not apply to method 'rk'"):
        Variant("rk", reading=two)
    # Adam behind "Policy Gradient": the row is pg's, the rule is Adam's
    adam = Variant("pg", ("clip",), Reading.of("adam_opt"))
    assert adam.method == "pg" and adam.config().algo.method == "adam"


def test_bad_variants_name_what_is_allowed():
    with pytest.raises(ValueError, match="method must be one of"):
        Variant("sgd")
    with pytest.raises(ValueError, match="stabiliser must be one of"):
        Variant("pg", ("dropout",))
    with pytest.raises(ValueError, match="tuple of names"):
        Variant("pg", "clip")
    with pytest.raises(ValueError, match="one twice"):
        Variant("pg", ("clip", "clip"))
    with pytest.raises(ValueError, match="one level per factor"):
        Reading((level("abs"), level("signed")))
    with pytest.raises(ValueError, match="unknown level 'fast'; allowed"):
        Reading.of("fast")
    with pytest.raises(ValueError, match="unknown variant 'pg\\+dropout'; known"):
        lookup("pg+dropout")


def test_every_factor_starts_with_its_default_and_every_level_builds_a_valid_config():
    assert all(levels[0].is_default for levels in FACTORS.values())
    for lv in LEVELS:
        for m in lv.methods:
            stabs = lv.rows or ()
            if lv.factor == "weighting" and lv.name == "raw_total":
                continue  # R(tau) without standardisation: checked below
            Variant(m, stabs, Reading((lv,))).config()
    assert Variant("pg", reading=Reading.of("raw_total")).config().algo.returns == "total"
    assert DEFAULT.name == "default" and DEFAULT.choice("rk_stage").name == "fresh"
    assert REUSE.choice("rk_stage").name == "reuse"


def test_the_tidy_frames_carry_the_variant_parts_and_lookup_inverts_the_name():
    runs = {}
    for v in (Variant("pg"), Variant("hessian", ("clip",)), Variant("rk", reading=REUSE)):
        runs[v.name] = {"episode_return": np.array([[10.0, 20.0, 30.0]] * 2),
                        "eval_return": np.ones((2, 1)), "diverged_at": np.full(2, -1),
                        "env_steps": np.array([[10, 30, 60]] * 2)}
    finals = ex.tidy_finals(ex.PROTOCOLS["paper"], runs)
    curves = ex.tidy_curves(ex.PROTOCOLS["paper"], runs)
    for df in (finals, curves):
        rows = df.drop_duplicates("variant")[["variant", "method", "stabiliser", "reading"]]
        assert rows.values.tolist() == [["pg", "pg", "none", "default"],
                                        ["hessian+clip", "hessian", "clip", "default"],
                                        ["rk@reuse", "rk", "none", "reuse"]]
        for name, method, stab, reading in rows.values.tolist():
            v = lookup(name)
            assert (v.method, v.stabiliser, v.reading.name) == (method, stab, reading)
    means = ex.stabiliser_means(finals, "paper")
    assert means.loc["hessian", "clip"] == 30.0 and "reuse" not in means.columns
