"""Tests of pgsom.derivations (the checks of claims C3-C6 behind notebooks/derivations.ipynb).

References are independent of the code under test where the math allows: J by forward dynamic
programming (``ExactMDP.state_visitation``, no enumeration) differentiated by ``torch.func``;
expectations as explicit probability-weighted sums; null spaces and verdict rules by hand.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pgsom import derivations as dv  # noqa: E402
from pgsom import exact_mdp as xm  # noqa: E402
from pgsom import plots  # noqa: E402
from pgsom.config import AlgoConfig  # noqa: E402
from pgsom.experiments import ParameterError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "derivations.ipynb"
SETTINGS = dv.Settings(horizon=3, n_thetas=2, n_mc=4000, n_mc_ascent=200, rk_alphas=(0.002, 0.01, 0.05))


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def problem():
    return dv.make_problem(SETTINGS)


@pytest.fixture(scope="module")
def exact(problem):
    return dv.c3_exact(problem)


@pytest.fixture(scope="module")
def mc(problem, exact):
    return dv.c3_monte_carlo(problem, exact)


def dp_J(e: xm.ExactMDP, theta: torch.Tensor) -> torch.Tensor:
    """J = sum_t sum_s d_t(s) sum_a pi(a|o_t(s)) r(s, a), d_t by forward dynamic programming."""
    vis = e.state_visitation(theta)
    probs = e.log_prob_table(theta).exp()
    r = torch.from_numpy(e.model.rewards)
    S = e.mdp.n_states
    return sum((vis[t] * (probs[torch.from_numpy(e.mdp.obs_index(np.arange(S), t))] * r).sum(1)).sum()
               for t in range(e.mdp.horizon))


# --------------------------------------------------------------------------- parameters


def test_settings_defaults_are_the_notebook_parameters():
    nb = json.loads(NOTEBOOK.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    values = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse("".join(cell["source"])).body}
    paths = {"derivations_csv", "figures_dir"}
    assert set(values) == {f.name for f in dataclasses.fields(dv.Settings)} | paths
    default = dv.Settings()
    for name, value in values.items():
        if name not in paths:
            assert getattr(default, name) == (tuple(value) if isinstance(value, list) else value), name


def test_notebook_validates_every_parameter_and_holds_no_logic():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    params = {n.targets[0].id for n in ast.parse("".join(code[0]["source"])).body}
    call = next(node for c in code[1:] for node in ast.walk(ast.parse("".join(c["source"])))
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "validate_parameters")
    assert {k.arg for k in call.keywords} == params
    assert all(isinstance(k.value, ast.Name) and k.value.id == k.arg for k in call.keywords)
    for c in code[1:]:  # the verdict logic lives in pgsom.derivations: no loops or functions here
        for node in ast.walk(ast.parse("".join(c["source"]))):
            assert not isinstance(node, (ast.For, ast.While, ast.FunctionDef, ast.Lambda, ast.ListComp,
                                         ast.DictComp, ast.GeneratorExp)), "".join(c["source"])
    text = json.dumps(nb)
    assert "SPEC" not in text and "docs/design.md" in text


@pytest.mark.parametrize("bad, message", [
    ({"n_states": 0}, "n_states must be an int >= 1, got 0"),
    ({"n_actions": 1}, "n_actions must be an int >= 2"),
    ({"horizon": "4"}, "horizon must be an int >= 1, got '4'"),
    ({"n_mc": True}, "n_mc must be an int >= 100"),
    ({"n_mc": 50}, "n_mc must be an int >= 100"),
    ({"seed": -1}, "seed must be an int >= 0"),
    ({"end_max": 1.0}, "end_max must be a number in [0, 1)"),
    ({"observation": "pixels"}, "observation must be one of ['state', 'state_time'], got 'pixels'"),
    ({"theta_scale": 0}, "theta_scale must be a finite number > 0"),
    ({"theta_scale": float("nan")}, "theta_scale must be a finite number > 0"),
    ({"ci_level": 1.0}, "ci_level must be a number in (0, 1)"),
    ({"rk_alphas": []}, "rk_alphas must be a non-empty list"),
    ({"rk_alphas": [0.002, 0.5]}, "at least two distinct values <= 0.05"),
    ({"rk_alphas": [0.002, -0.01]}, "rk_alphas must be"),
    ({"ascent_eps": []}, "ascent_eps must be a non-empty list of finite numbers > 0, got []"),
    ({"ascent_eps": [1e-4, 0.0]}, "ascent_eps must be a non-empty list of finite numbers > 0"),
    ({"ascent_eps": 1e-4}, "ascent_eps must be a non-empty list"),
    ({"n_states": 10, "horizon": 6}, "trajectories to enumerate"),
])
def test_bad_settings_raise_a_parameter_error_naming_them(bad, message):
    with pytest.raises(ParameterError) as err:
        dv.Settings(**bad)
    assert message in str(err.value)


def test_validate_parameters_resolves_paths_and_normalises(tmp_path):
    p = dv.validate_parameters(derivations_csv="paper/derivations.csv", figures_dir=str(tmp_path),
                               rk_alphas=[0.002, 0.01], theta_scale=2, seed=np.int64(3))
    assert p.derivations_csv == ROOT / "paper" / "derivations.csv" and p.figures_dir == tmp_path
    assert p.settings.rk_alphas == (0.002, 0.01) and p.settings.seed == 3
    assert isinstance(p.settings.theta_scale, float) and type(p.settings.seed) is int
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) \['n_mcc'\]; allowed: \[.*'n_mc'"):
        dv.validate_parameters(n_mcc=5, derivations_csv="a.csv", figures_dir="f")
    with pytest.raises(ParameterError, match="figures_dir must be a non-empty path string, got ''"):
        dv.validate_parameters(derivations_csv="a.csv", figures_dir="")


# --------------------------------------------------------------------------- problem, streams, rows


def test_streams_are_fresh_children_of_the_root_seed():
    for k, name in enumerate(dv.STREAMS):
        ref = np.random.SeedSequence(7).spawn(len(dv.STREAMS))[k]
        assert np.array_equal(dv.stream(7, name).generate_state(4), ref.generate_state(4))
    a, b = dv.stream(7, "mc").spawn(2), dv.stream(7, "mc").spawn(2)  # a second call starts over
    assert all(np.array_equal(x.generate_state(2), y.generate_state(2)) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="stream must be one of"):
        dv.stream(7, "other")


def test_make_problem_is_seeded_and_leaves_global_rng_alone(problem):
    np_state, torch_state = np.random.get_state()[1].copy(), torch.random.get_rng_state().clone()
    again = dv.make_problem(SETTINGS)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert list(problem.models) == list(dv.POLICY_CLASSES)
    for name, e in problem.models.items():
        assert problem.thetas[name].shape == (SETTINGS.n_thetas, e.d)
        assert problem.thetas[name].dtype == torch.float64
        assert torch.equal(problem.thetas[name], again.thetas[name])
    other = dv.make_problem(dv.Settings(horizon=3, n_thetas=2, seed=1))
    assert not torch.equal(other.thetas["linear"], problem.thetas["linear"])
    assert problem.rewards().shape == (SETTINGS.n_states, SETTINGS.n_actions)
    assert "258 trajectories" in problem.describe()  # sum_{L=1..3} 6^L


def test_row_and_table(tmp_path):
    r = dv.row("C6", "q", np.float32(0.5))
    assert r == dv.Row("C6", "q", 0.5, 0.5, 0.5, "measured") and type(r.value) is float
    assert dv.row("C3", "q", 1, 0, 2, "supported")[3:] == (0.0, 2.0, "supported")
    with pytest.raises(ValueError, match="verdict must be one of"):
        dv.row("C3", "q", 1, verdict="maybe")
    check = dv.Check(pd.DataFrame(), (dv.row("A", "x", 1 / 3), dv.row("B", "y", 2e-12, 1e-12, 3e-12, "supported")))
    table = dv.derivations_table(check, [dv.row("C", "z", float("nan"))])
    assert list(table.columns) == list(dv.COLUMNS) and list(table.claim) == ["A", "B", "C"]
    path = dv.write_table(table, tmp_path / "d.csv")
    assert path.read_bytes() == (b"claim,quantity,value,ci_low,ci_high,verdict\n"
                                 b"A,x,0.3333333333,0.3333333333,0.3333333333,measured\n"
                                 b"B,y,2e-12,1e-12,3e-12,supported\n"
                                 b"C,z,,,,measured\n")


# --------------------------------------------------------------------------- checks


def test_setup_check_covers_the_exact_J(problem):
    check = dv.setup_check(problem)
    for r, t in zip(check.rows, check.table.itertuples()):
        J = float(dp_J(problem.models[t.policy], problem.thetas[t.policy][0]))
        assert abs(t.exact_J - J) <= 1e-12
        assert r.verdict == ("supported" if t.ci_low <= J <= t.ci_high else "contradicted")
        assert f"exact J={J:.6f}" in r.quantity
    assert [r.verdict for r in check.rows] == ["supported", "supported"]


def test_c3_exact_against_dynamic_programming_and_torch_func(problem, exact):
    t = exact.table.set_index(["policy", "baseline", "check"])
    for name, e in problem.models.items():
        th = problem.thetas[name][0]
        diag = torch.func.hessian(lambda x: dp_J(e, x))(th).diagonal()
        # E[h_surrogate] = diag grad^2 of sum_k p_k sum_t G_kt log pi(a_kt|o_kt), p_k held at theta
        tr = e.trajectories
        p = e.trajectory_probs(th).detach()
        G = tr.rewards.flip(1).cumsum(1).flip(1)

        def surrogate(x):
            lp = e.log_prob_table(x)[tr.obs_index, tr.actions] * tr.mask
            return (p.unsqueeze(1) * G * lp).sum()

        sur = torch.func.hessian(surrogate)(th).diagonal()
        expected = float((sur - diag).norm() / diag.norm())
        assert expected > 0.1
        assert t.rel_error[(name, "none", "E[h (surrogate only)] vs autograd")] == pytest.approx(expected, rel=1e-8)
    # verdict: supported iff the relative error is <= EXACT_TOL; which rows hold is known
    assert (exact.table.verdict == np.where(exact.table.rel_error <= dv.EXACT_TOL, "supported", "contradicted")).all()
    held = exact.table.expect.isin(["identity", "unbiased"])
    assert (exact.table.verdict[held] == "supported").all()
    assert (exact.table.verdict[~held] == "contradicted").all()
    assert len(exact.rows) == len(exact.table) == 2 * (2 + 2 * len(dv.EXACT_CASES))


def test_c3_monte_carlo_samples_levels_and_verdicts(problem, exact, mc):
    d = {name: e.d for name, e in problem.models.items()}
    assert mc.level == 1 - 0.05 / ((d["linear"] + 1 + d["mlp"] + 1) * len(dv.MC_CASES) * 2)
    for name, e in problem.models.items():
        th = problem.thetas[name][0]
        grad = torch.func.grad(lambda x: dp_J(e, x))(th).numpy()
        x, target = mc.samples[(name, "none", "g")]
        assert x.shape == (SETTINGS.n_mc, e.d) and np.allclose(target, grad, rtol=1e-10, atol=1e-12)
        # independent single-episode estimates: the sample mean is within 5 standard errors
        assert np.all(np.abs(x.mean(0) - grad) <= 5 * x.std(0, ddof=1) / math.sqrt(len(x)) + 1e-12)
    v = mc.table.set_index(["policy", "baseline", "case"]).verdict
    for name in problem.models:
        for b in dv.BASELINES:
            assert v[(name, b, "g")] == v[(name, b, "h (full)")] == "supported"
            assert v[(name, b, "h (surrogate only)")] == "contradicted"
    assert [r.verdict for r in mc.rows] == list(mc.table.verdict)


def test_c3_monte_carlo_is_inconclusive_when_enumeration_shows_a_bias_the_sample_missed(problem, exact, mc):
    doctored = exact.table.copy()
    doctored.loc[doctored.check == "E[g] vs autograd", "rel_error"] = 0.5
    again = dv.c3_monte_carlo(problem, dv.Check(doctored, exact.rows))
    v = again.table.set_index(["policy", "baseline", "case"]).verdict
    assert (v.xs("g", level="case") == "inconclusive").all()
    assert (again.table.bias == mc.table.bias).all()  # the same samples: its own stream


def _verdict_tables(exact_verdicts, mc_verdicts):
    def frame(pairs):
        return pd.DataFrame(pairs, columns=["expect", "verdict"])

    return (dv.Check(frame(exact_verdicts), ()),
            dv.MonteCarlo(frame(mc_verdicts), (), {}, 0, 0.9))


def test_c3_overall_rules_by_hand():
    exact, mc = _verdict_tables([("identity", "supported"), ("unbiased", "supported"), ("biased", "contradicted"),
                                 ("extra", "contradicted")],
                                [("unbiased", "supported"), ("unbiased", "inconclusive"), ("biased", "contradicted")])
    unbiased, surrogate = dv.c3_overall(exact, mc)
    assert (unbiased.verdict, unbiased.value) == ("contradicted", 3 / 4)  # one of four is not supported
    assert (surrogate.verdict, surrogate.value) == ("contradicted", 1.0)
    exact, mc = _verdict_tables([("identity", "supported"), ("biased", "contradicted"), ("extra", "contradicted")],
                                [("unbiased", "supported"), ("biased", "inconclusive")])
    unbiased, surrogate = dv.c3_overall(exact, mc)
    assert (unbiased.verdict, unbiased.value) == ("supported", 1.0)  # the extra takes no part
    assert (surrogate.verdict, surrogate.value) == ("inconclusive", 0.5)
    assert all(r.claim == "C3" and r.quantity.startswith("overall:") for r in (unbiased, surrogate))


def test_c3_convergence_on_synthetic_samples(problem, mc):
    """Unbiased samples t + N(0, I): RMS ||mean_N - t|| / ||t|| = sqrt(d / N) / ||t||, slope -1/2;
    samples biased by b: the error levels off at ||b|| / ||t||, slope near 0."""
    rng = np.random.default_rng(0)
    n = 20000
    samples = {}
    for (name, b, case), (_, target) in mc.samples.items():
        noise = rng.standard_normal((n, len(target)))
        shift = 100 * np.linalg.norm(target) / math.sqrt(len(target)) if case == "h (surrogate only)" else 0.0
        samples[(name, b, case)] = dv.Sample(target + shift + noise, target)
    problem20k = dv.Problem(dv.Settings(horizon=3, n_thetas=2, n_mc=n), problem.mdp, problem.models, problem.thetas)
    conv = dv.c3_convergence(problem20k, mc._replace(samples=samples, n=n))
    sizes = dv.convergence_sizes(n)
    assert list(conv.table.n.unique()) == sizes and sizes[0] == 10 and sizes[-1] == n // 5 and len(sizes) == 8
    for r in conv.table.itertuples():
        target = mc.samples[(r.policy, "none", r.case)].target
        d, tnorm = len(target), np.linalg.norm(target)
        bias = 100 * tnorm if r.case == "h (surrogate only)" else 0.0
        expected = math.sqrt(bias**2 + d / r.n) / tnorm
        assert r.rms_rel_error == pytest.approx(expected, rel=0.3), (r, expected)
    fits = conv.fits.set_index(["policy", "case"]).slope
    for name in problem.models:
        assert fits[(name, "g")] == pytest.approx(-0.5, abs=0.05)
        assert abs(fits[(name, "h (surrogate only)")]) < 0.05
    assert all(r.verdict == "measured" and r.ci_low <= r.value <= r.ci_high for r in conv.rows)


def test_c4_spectrum_against_torch_func_and_the_softmax_null_space(problem):
    spec = dv.c4_spectrum(problem)
    t = spec.table.set_index(["policy", "theta", "matrix"])
    one_sign = []
    for name, e in problem.models.items():
        for k, th in enumerate(problem.thetas[name]):
            H = torch.func.hessian(lambda x: dp_J(e, x))(th)
            w = torch.linalg.eigvalsh(H)
            if name == "linear":
                one_sign.append(bool((H.diagonal() >= 0).all() or (H.diagonal() <= 0).all()))
            r = t.loc[(name, k, "grad^2 J")]
            assert r.eig_min == pytest.approx(float(w.min()), rel=1e-8, abs=1e-12)
            assert r.eig_max == pytest.approx(float(w.max()), rel=1e-8, abs=1e-12)
    # linear softmax, one-hot states: logits W[s, a] + b[a] (d = S A + A = 8); J and log pi are
    # unchanged along the 5 directions that leave every state's logits equal up to a constant
    # (3 per-state constants and the 2 that trade b[a] against W[., a])
    lin = spec.table[spec.table.policy == "linear"]
    assert problem.models["linear"].d == 8 and (lin.n_zero == 5).all()
    for (name, k, matrix), g in spec.eigenvalues.groupby(["policy", "theta", "matrix"], sort=False):
        assert g.eigenvalue.min() == t.loc[(name, k, matrix)].eig_min
    overall = next(r for r in spec.rows if r.quantity.startswith("overall:"))
    assert overall.verdict == ("supported" if all(one_sign) else "contradicted")
    assert overall.value == 1 - np.mean(one_sign)
    # rewards >= 0: the loss-sign surrogate Hessian with A = G is semi-definite, never definite
    key = "surrogate-only, loss sign, advantages G_t >= 0, linear softmax"
    assert [r.verdict for r in spec.rows if r.quantity.startswith(key)] == ["supported", "contradicted"]


@pytest.fixture(scope="module")
def ascent(problem):
    return dv.c5_ascent(problem)


def _by_hand(exact, mc, low, high):
    """C5's rule for one theta, written out: the sign counts only where every piece of evidence
    there is excludes 0 on the same side."""
    evidence = [x for x in (exact, low if np.isfinite(mc) else np.nan) if np.isfinite(x)]
    highs = [x for x in (exact, high if np.isfinite(mc) else np.nan) if np.isfinite(x)]
    return "+" if min(evidence) > 0 else "-" if max(highs) < 0 else "?"


def test_c5_ascent_pg_is_the_gradient_and_verdicts_follow_the_rule(problem, ascent):
    asc = ascent
    t = asc.table
    order = [r for r, _ in dv.ASCENT_RULES + dv.LIMIT_RULES]
    assert list(t.rule.unique()) == order and len(t) == 2 * SETTINGS.n_thetas * len(order)
    # E[pg step] = lr grad J exactly: cos 1
    assert np.allclose(t[t.rule == "pg"].exact_cos, 1.0, rtol=0, atol=1e-12)
    assert t[t.rule == "PG-SOM Hutchinson"].exact_cos.isna().all()
    assert (t[t.rule.str.contains("limit")].exact_cos > 0).all()  # a positive diagonal rescaling of grad J
    for r in asc.verdicts.itertuples():
        s = t[(t.policy == r.policy) & (t.rule == r.rule)]
        signs = [_by_hand(x.exact_cos, x.mc_cos, x.ci_low, x.ci_high) for x in s.itertuples()]
        assert r.verdict == ("contradicted" if "-" in signs else "supported" if set(signs) == {"+"}
                             else "inconclusive"), (r, signs)
    # one Bonferroni family: every Monte Carlo interval of C5, the eps study's included
    n_study = sum(len(dv.eps_values(a, SETTINGS)) - 1 for r, a in dv.ASCENT_RULES if r in dv.EPS_RULES)
    assert asc.level == 1 - 0.05 / (2 * SETTINGS.n_thetas * (len(dv.ASCENT_RULES) + n_study))
    first = asc.verdicts[asc.verdicts.rule == dv.PGSOM_RULE].verdict
    overall = asc.rows[-2]
    assert overall.quantity.startswith("overall:") and overall.value == float(np.mean(first == "supported"))
    assert overall.verdict == ("contradicted" if (first == "contradicted").any() else
                               "supported" if (first == "supported").all() else "inconclusive")


def _table(rows):
    return pd.DataFrame(rows, columns=["policy", "theta", "rule", "exact_cos", "mc_cos", "ci_low", "ci_high"])


def test_c5_exact_negative_with_an_interval_including_zero_is_not_contradicted():
    """The audit's case: the exact cos is < 0 at a theta but its Monte Carlo interval includes 0;
    the old rule (exact value alone) called it contradicted."""
    sub = _table([("linear", 0, "r", -0.11, -0.09, -0.22, 0.05), ("linear", 1, "r", 0.7, 0.8, 0.4, 1.2)])
    v = dv.ascent_verdict(sub)
    assert v.verdict == "inconclusive" and v.source == "exact and Monte Carlo"
    assert (v.theta, v.value, v.ci_low, v.ci_high) == (0, -0.11, -0.22, 0.05)  # the worst theta
    assert v.counts == "1 with exact and CI > 0, 1 with exact < 0, CI includes 0" and v.scope == "2 thetas"
    # exact and Monte Carlo on opposite sides: undecided too
    assert dv.ascent_verdict(_table([("mlp", 0, "r", -0.3, 0.5, 0.2, 0.8)])).verdict == "inconclusive"
    assert dv.ascent_evidence(-0.3, 0.5, 0.2, 0.8) == "exact and CI disagree"
    # both below 0 at one theta: contradicted, reported over the thetas that decided it
    sub = _table([("linear", 0, "r", -0.5, -0.4, -0.6, -0.2), ("linear", 1, "r", -0.9, -0.5, -2.0, 1.0),
                  ("linear", 2, "r", 0.9, 0.9, 0.5, 1.3)])
    v = dv.ascent_verdict(sub)
    assert (v.verdict, v.theta, v.value) == ("contradicted", 0, -0.5)  # not theta 1: its interval includes 0
    assert v.scope == "the 1 of 3 thetas with exact and CI < 0"
    # supported needs every theta decided positive
    assert dv.ascent_verdict(_table([("mlp", 0, "r", 0.9, 1.0, 0.1, 1.9)])).verdict == "supported"
    assert dv.ascent_verdict(_table([("mlp", 0, "r", 0.9, 1.0, -0.1, 2.1)])).verdict == "inconclusive"
    # Monte Carlo only (Hutchinson) and exact only (the limit rows)
    nan = float("nan")
    assert dv.ascent_verdict(_table([("mlp", 0, "r", nan, -0.4, -0.7, -0.1)])).verdict == "contradicted"
    assert dv.ascent_verdict(_table([("mlp", 0, "r", nan, -0.4, -0.7, 0.1)])).verdict == "inconclusive"
    v = dv.ascent_verdict(_table([("mlp", 0, "r", -0.2, nan, -0.2, -0.2)]))
    assert (v.verdict, v.source, v.counts) == ("contradicted", "exact", "1 with exact < 0")
    with pytest.raises(ValueError, match="needs an exact value or a Monte Carlo interval"):
        dv.ascent_evidence(nan, nan, nan, nan)


def test_c5_rows_say_which_evidence_decided_and_the_overall_row_its_baselines_and_eps(ascent):
    """c5_rows on a hand-made table: PG-SOM's exact cos is < 0 with an interval including 0 on
    one class (not contradicted) and decided < 0 on the other; the baselines' verdicts and the
    eps study's are computed into the overall row."""
    rows = []
    for policy, pgsom in (("linear", (-0.1, -0.1, -0.3, 0.1)), ("mlp", (-0.3, -0.3, -0.5, -0.1))):
        for rule, vals in (("pg", (1.0, 1.0, 0.5, 1.5)), ("adam", (-0.6, -0.6, -0.8, -0.4)),
                           (dv.PGSOM_RULE, pgsom), ("npg", (0.5, 0.5, 0.2, 0.8))):
            rows.append((policy, 0, rule, *vals))
    table = _table(rows)
    table["eps"] = [1e-8 if r in dv.EPS_RULES else np.nan for r in table.rule]
    study = table[table.rule == dv.PGSOM_RULE].copy()
    big = study.copy()
    big["eps"], big["exact_cos"], big["mc_cos"], big["ci_low"], big["ci_high"] = 100.0, 0.99, 0.99, 0.5, 1.5
    eps_table = pd.concat([study, big], ignore_index=True)
    settings = dv.Settings(n_mc_ascent=123)
    verdicts, eps_verdicts, out = dv.c5_rows(table, eps_table, settings, 0.999)
    v = verdicts.set_index(["policy", "rule"]).verdict
    assert v[("linear", dv.PGSOM_RULE)] == "inconclusive"  # the old rule: contradicted
    assert v[("mlp", dv.PGSOM_RULE)] == "contradicted"
    by_q = {r.quantity.split(":")[0]: r for r in out}
    r = by_q[f"linear, {dv.PGSOM_RULE}"]
    assert r.verdict == "inconclusive" and "exact (enumeration) and Monte Carlo N=123, Bonferroni CI" in r.quantity
    assert "thetas: 1 with exact < 0, CI includes 0" in r.quantity
    assert "1 with exact and CI < 0" in by_q[f"mlp, {dv.PGSOM_RULE}"].quantity
    assert list(eps_verdicts.default) == [True, False, True, False]
    assert by_q[f"linear, {dv.PGSOM_RULE}, eps=100 [eps study]"].verdict == "supported"
    overall = out[-2]
    assert overall.quantity.startswith("overall: PG-SOM's update") and overall.verdict == "contradicted"
    assert overall.value == 0.0
    q = overall.quantity
    assert "pg supported (linear, mlp); adam contradicted (linear, mlp); npg supported (linear, mlp)" in q
    assert "baselines that fail it (contradicted): adam;" in q
    assert "eps=1e-08 (default): contradicted, eps=100: supported" in q
    assert "the verdict depends on eps (it differs from the default's at eps=100)" in q
    # the same eps everywhere gives the same verdict
    q = dv.c5_rows(table, study, settings, 0.999)[2][-2].quantity
    assert "does not depend on eps over this range" in q
    # derived_rows (pgsom.claims) keeps reading the overall row: the first 'overall:' row of C5
    from pgsom.claims.builders import derived_rows

    der = dv.derivations_table(ascent.rows)
    got = derived_rows(der, "C5")
    primary = [x for x in got if x.primary]
    assert len(primary) == 1 and primary[0].statement == ascent.rows[-2].quantity
    assert primary[0].given == ascent.rows[-2].verdict


def test_c5_baselines_appear_with_their_verdict_rows(ascent):
    assert set(dv.BASELINE_RULES) <= set(ascent.verdicts.rule)
    q = ascent.rows[-2].quantity
    for b in dv.BASELINE_RULES:
        for name in dv.POLICY_CLASSES:
            r = next(r for r in ascent.rows if r.quantity.startswith(f"{name}, {b}: "))
            assert r.verdict == ascent.verdicts.set_index(["policy", "rule"]).verdict[(name, b)]
        per_class = ascent.verdicts[ascent.verdicts.rule == b].set_index("policy").verdict
        if per_class.nunique() == 1:
            assert f"{b} {per_class.iloc[0]} ({', '.join(per_class.index)})" in q
    failing = [b for b in dv.BASELINE_RULES
               if (ascent.verdicts[ascent.verdicts.rule == b].verdict == "contradicted").any()]
    assert f"baselines that fail it (contradicted): {', '.join(failing) or 'none'}" in q


def test_c5_eps_study(problem, ascent):
    eps_table = ascent.eps_table
    rules = dict(dv.ASCENT_RULES)
    for rule in dv.EPS_RULES:
        values = dv.eps_values(rules[rule], SETTINGS)
        assert values == sorted({rules[rule].eps, *SETTINGS.ascent_eps}) and rules[rule].eps == AlgoConfig().eps
        sub = eps_table[eps_table.rule == rule]
        assert sorted(sub.eps.unique()) == values and len(sub) == 2 * SETTINGS.n_thetas * len(values)
        # the rule's own eps is its row of the main table
        own = sub[sub.eps == rules[rule].eps].set_index(["policy", "theta"])
        main = ascent.table[ascent.table.rule == rule].set_index(["policy", "theta"])
        pd.testing.assert_frame_equal(own[main.columns], main)
    rows = [r for r in ascent.rows if "[eps study]" in r.quantity]
    assert len(rows) == 2 * sum(len(dv.eps_values(rules[r], SETTINGS)) - 1 for r in dv.EPS_RULES)
    assert not any("(default)" in r.quantity for r in rows)  # the default's row is the rule's own
    ev = ascent.eps_verdicts
    for r in ev.itertuples():
        s = eps_table[(eps_table.policy == r.policy) & (eps_table.rule == r.rule) & (eps_table.eps == r.eps)]
        assert r.verdict == dv.ascent_verdict(s).verdict
    assert "eps study (PG-SOM's verdict at eps=1e-08 (default): " in ascent.rows[-2].quantity


@pytest.mark.parametrize("rule", ["adam", "PG-SOM (hessian)"])
def test_c5_large_eps_tends_to_the_gradient_direction(problem, rule):
    """alpha g / (sqrt(v) + eps) -> alpha g / eps as eps grows: E[step] -> alpha grad J / eps,
    so cos -> pg's value (1); the eps study computes it that way."""
    assert rule in dv.EPS_RULES
    big = dv.Settings(horizon=3, n_thetas=2, n_mc=4000, n_mc_ascent=200, rk_alphas=(0.002, 0.01, 0.05),
                      ascent_eps=(1e2, 1e6))
    asc = dv.c5_ascent(dv.Problem(big, problem.mdp, problem.models, problem.thetas))
    s = asc.eps_table[asc.eps_table.rule == rule]
    pg = asc.table[asc.table.rule == "pg"].set_index(["policy", "theta"]).exact_cos
    at = s[s.eps == 1e6].set_index(["policy", "theta"]).exact_cos
    assert np.allclose(at, pg.loc[at.index], rtol=0, atol=1e-6)
    gap = (1 - s.set_index(["policy", "theta", "eps"]).exact_cos).unstack("eps")
    assert (gap[1e6] <= gap[1e2] + 1e-12).all()  # closer to pg as eps grows
    # with a huge eps every class is decided as pg's is (the same episodes, the same direction)
    ev = asc.eps_verdicts
    huge = ev[(ev.eps == 1e6) & (ev.rule == rule)].set_index("policy").verdict
    assert huge.to_dict() == asc.verdicts[asc.verdicts.rule == "pg"].set_index("policy").verdict.to_dict()


def test_c6_kernel(problem):
    check = dv.c6_kernel(problem)
    assert [r.verdict for r in check.rows] == ["measured"] * 4 + ["supported"]
    score_diff, pkg_diff, dlogp, dJ = (r.value for r in check.rows[:4])
    assert score_diff <= dv.EXACT_TOL and pkg_diff <= dv.EXACT_TOL and dlogp > 1e-3 and dJ > 1e-3
    # log p(tau) of each trajectory is the enumeration's probability of that trajectory
    for name, e in problem.models.items():
        th = problem.thetas[name][0]
        logp = e.trajectory_probs(th).log()
        tr = e.trajectories
        rng = np.random.default_rng(dv.stream(SETTINGS.seed, "lemma32"))
        batches = {n: e2.sample_episodes(problem.thetas[n][0], dv.N_KERNEL_TRAJECTORIES, rng)
                   for n, e2 in problem.models.items()}
        batch = batches[name]
        for r in check.table[check.table.policy == name].itertuples():
            L = int(batch.mask[r.trajectory].sum())
            states = batch.obs[r.trajectory, :L, :SETTINGS.n_states].argmax(-1)
            match = ((tr.mask.sum(1) == L) & (tr.states[:, :L] == states).all(1)
                     & (tr.actions[:, :L] == batch.actions[r.trajectory, :L]).all(1))
            assert int(match.sum()) == 1 and r.length == L
            assert r.log_p == pytest.approx(float(logp[match]), rel=1e-12)
        assert np.allclose(check.table[check.table.policy == name].J, float(dp_J(e, th)), rtol=1e-12)


def test_snr_by_weighted_sums(problem):
    check = dv.snr(problem)
    for name, e in problem.models.items():
        batch = e.episodes()
        th = problem.thetas[name][1]
        est = xm.single_episode_estimates(e.spec, xm.repeat(th, batch.mask.shape[0]), batch)
        p = e.trajectory_probs(th).numpy()
        x = est.g.double().numpy()
        mean, second = p @ x, p @ (x * x)
        var = second - mean**2
        keep = var > 1e-12 * second
        got = check.table[(check.table.policy == name) & (check.table.theta == 1) & (check.table.estimate == "g")]
        assert np.allclose(np.sort(got.snr.to_numpy()), np.sort(mean[keep] ** 2 / var[keep]), rtol=1e-6)
    lin = check.table[(check.table.policy == "linear") & (check.table.estimate == "h (full)")].snr
    med = next(r for r in check.rows if r.quantity.startswith("linear: median over") and "h (full)" in r.quantity)
    assert (med.value, med.ci_low, med.ci_high) == (np.median(lin), np.quantile(lin, 0.25), np.quantile(lin, 0.75))


def test_rk_reuse_against_dynamic_programming(problem):
    check = dv.rk_reuse(problem)
    e, th = problem.models["linear"], problem.thetas["linear"][0]
    alpha = SETTINGS.rk_alphas[-1]
    batch = e.episodes()
    g = xm.single_episode_estimates(e.spec, xm.repeat(th, batch.mask.shape[0]), batch).g
    p = e.trajectory_probs(th)
    grad_dp = torch.func.grad(lambda x: dp_J(e, x))
    gJ = grad_dp(th)
    fresh = sum(p[k] * grad_dp(th + alpha * g[k]) for k in range(len(p)))  # E[grad J(theta + alpha g)]
    r = check.table[(check.table.policy == "linear") & (check.table.theta == 0) & (check.table.alpha == alpha)]
    assert float(r.rk_correction.iloc[0]) == pytest.approx(float((fresh - gJ).norm() / gJ.norm()), rel=1e-8)
    # reuse: the same episode re-scored at theta~, sum_t G_t grad log pi_theta~(a_t|o_t)
    tr = e.trajectories
    G = tr.rewards.flip(1).cumsum(1).flip(1)

    def rescored(x, k):
        lp = e.log_prob_table(x)[tr.obs_index[k], tr.actions[k]] * tr.mask[k]
        return (G[k] * lp).sum()

    reuse = sum(p[k] * torch.func.grad(rescored)(th + alpha * g[k], k) for k in range(len(p)))
    assert float(r.reuse_bias.iloc[0]) == pytest.approx(float((reuse - fresh).norm() / gJ.norm()), rel=1e-8)
    slopes = [r.value for r in check.rows if "log-log slope" in r.quantity]
    assert len(slopes) == 2 and all(0.7 < s < 1.3 for s in slopes)  # reuse bias is O(alpha)
    assert len(check.rows) == 4 * 2 and all(r.verdict == "measured" for r in check.rows)


# --------------------------------------------------------------------------- figures


def test_figures_and_panels(problem, exact, mc, ascent, tmp_path):
    conv = dv.c3_convergence(problem, mc)
    spec, asc = dv.c4_spectrum(problem), ascent
    signal, rk = dv.snr(problem), dv.rk_reuse(problem)
    figures = {"unbiased": (dv.unbiased_figure(mc), 8), "convergence": (dv.convergence_figure(conv), 2),
               "spectrum": (dv.spectrum_figure(spec), 2), "ascent": (dv.ascent_figure(asc), 2),
               "ascent_eps": (dv.ascent_eps_figure(asc), 2 * len(dv.EPS_RULES)),
               "snr": (dv.snr_figure(signal), 2), "rk_reuse": (dv.rk_reuse_figure(rk), 2)}
    assert plt.get_fignums() == []  # closed in pyplot: shown once where a cell ends with it
    for name, (fig, n_axes) in figures.items():
        assert isinstance(fig, Figure) and len(fig.axes) == n_axes, name
        # drawn in pgsom.plots.style: open axes, its grid, constrained layout
        ax = fig.axes[0]
        assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible(), name
        assert fig.get_layout_engine() is not None and type(fig.get_layout_engine()).__name__ == \
            "ConstrainedLayoutEngine", name
        assert ax.title.get_fontsize() <= plots.STYLE["axes.titlesize"], name
    assert [t.get_text() for t in figures["ascent"][0].axes[1].get_xticklabels()] == \
        [r for r, _ in dv.ASCENT_RULES + dv.LIMIT_RULES]
    for panel, args in ((dv.unbiased_panel, (mc, "mlp", "g")), (dv.convergence_panel, (conv, "mlp")),
                        (dv.spectrum_panel, (spec, "mlp")), (dv.ascent_panel, (asc, "mlp")),
                        (dv.ascent_eps_panel, (asc, "mlp", dv.PGSOM_RULE)),
                        (dv.snr_panel, (signal, "mlp")), (dv.rk_reuse_panel, (rk, "mlp"))):
        ax = panel(*args)  # ax=None: a new figure
        assert ax.get_title().startswith("mlp") and ax.has_data()
        assert not ax.spines["top"].get_visible()
        _, given = plt.subplots()
        assert panel(*args, ax=given) is given
    # the eps panel's x axis is eps, log scale, over the study's values
    ax = dv.ascent_eps_panel(asc, "linear", "adam")
    assert ax.get_xscale() == "log" and ax.get_title() == "linear policy: adam"
    assert not hasattr(dv, "save_figure")  # the one figure writer is pgsom.plots.save_figure
    fig = figures["snr"][0]
    a = plots.save_figure(fig, tmp_path / "a" / "derivations_snr")
    first = [p.read_bytes() for p in a]
    b = plots.save_figure(fig, tmp_path / "a" / "derivations_snr")
    assert [p.name for p in b] == ["derivations_snr.pdf", "derivations_snr.png"]
    assert [p.read_bytes() for p in b] == first  # the same figure, the same bytes
    assert first[0].startswith(b"%PDF") and first[1].startswith(b"\x89PNG") and b"CreationDate" not in first[0]


def test_notebook_reports_a_bad_parameter_in_one_line(tmp_path):
    papermill = pytest.importorskip("papermill")
    from papermill.exceptions import PapermillExecutionError

    params = dict(observation="pixels", derivations_csv=str(tmp_path / "p" / "d.csv"),
                  figures_dir=str(tmp_path / "f"))
    with pytest.raises(PapermillExecutionError) as err:
        papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"), parameters=params,
                                   kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    assert err.value.ename == "ParameterError"
    assert "observation must be one of ['state', 'state_time'], got 'pixels'" in err.value.evalue
    assert len(err.value.traceback) == 1
    assert not (tmp_path / "p").exists() and not (tmp_path / "f").exists()
