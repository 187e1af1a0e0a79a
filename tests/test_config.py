"""Config validation, round trips and the variant table."""

import re

import pytest

from pgsom.config import AlgoConfig, RunConfig
from pgsom.variants import variant


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("method", "sgd", "method must be one of"),
        ("lr", -0.1, "lr must be a finite number > 0"),
        ("lr", 0.0, "lr must be a finite number > 0"),
        ("lr", "0.1", "lr must be a finite number > 0"),
        ("lr_scale", -2.0, "lr_scale must be a finite number > 0"),
        ("clip_norm", 0.0, "clip_norm must be a finite number > 0"),
        ("entropy_coef", -0.01, "entropy_coef must be a finite number >= 0"),
        ("baseline", 1, "baseline must be True or False"),
        ("baseline_decay", 1.0, "baseline_decay must be in [0, 1)"),
        ("returns", "monte_carlo", "returns must be one of"),
        ("gamma", 0.0, "gamma must be in (0, 1]"),
        ("gamma", 1.5, "gamma must be in (0, 1]"),
        ("beta1", 1.0, "beta1 must be in [0, 1)"),
        ("beta2", -0.1, "beta2 must be in [0, 1)"),
        ("eps", 0.0, "eps must be a finite number > 0"),
        ("hessian_estimator", "gauss_newton", "hessian_estimator must be one of"),
        ("hessian_terms", "both", "hessian_terms must be one of"),
        ("second_moment", "cube", "second_moment must be one of"),
        ("rk_stage", "twice", "rk_stage must be one of"),
        ("rk_rule", "rk4", "rk_rule must be one of ('heun', 'midpoint')"),
        ("second_moment", "square_root", "second_moment must be one of ('square', 'abs', 'signed')"),
        ("std_ddof", 2, "std_ddof must be one of (0, 1)"),
        ("std_ddof", True, "std_ddof must be one of (0, 1)"),
        ("std_ddof", 1.0, "std_ddof must be one of (0, 1)"),
        ("baseline_kind", "critic", "baseline_kind must be one of ('time_ema', 'running_mean')"),
        ("npg_damping", -1.0, "npg_damping must be a finite number > 0"),
        ("npg_cg_iters", 0, "npg_cg_iters must be an int >= 1"),
        ("fisher", "true", "fisher must be one of"),
    ],
)
def test_bad_algo_parameter_names_the_field(field, value, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        AlgoConfig(**{field: value})


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("episodes", -3, "episodes must be an int >= 1"),
        ("episodes", 2.5, "episodes must be an int >= 1"),
        ("eval_episodes", -1, "eval_episodes must be an int >= 0"),
        ("env_id", "Pendulum-v1", "env_id must be one of"),
        ("backend", "jax", "backend must be one of"),
        ("hidden", (64, 0), "hidden must be a tuple of positive ints"),
    ],
)
def test_bad_run_parameter_names_the_field(field, value, fragment):
    with pytest.raises(ValueError, match=fragment):
        RunConfig(**{field: value})


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"env_id": "Hopper-v5"}, "backend='fused' cannot step env_id='Hopper-v5': it has continuous actions "
                                  "(a Gaussian policy head), which train on gymnasium's own environment only "
                                  "(no numpy port, no compiled kernel): use backend='gymnasium'"),
        ({"env_id": "InvertedPendulum-v5", "backend": "fast"},
         "backend='fast' cannot step env_id='InvertedPendulum-v5': it has continuous actions"),
        ({"env_id": "Hopper-v5", "backend": "fast"}, "use backend='gymnasium'"),
        ({"env_id": "InvertedPendulum-v5", "backend": "fused"}, "backend='fused' cannot step"),
        ({"env_id": "Acrobot-v1"}, "backend='fused' (the compiled kernel) steps CartPole-v1 only (its dynamics, "
                                   "reward 1 per step), got env_id='Acrobot-v1': use backend='fast' or 'gymnasium'"),
        ({"env_id": "LunarLander-v3"}, "got env_id='LunarLander-v3': use backend='gymnasium'"),
        ({"env_id": "LunarLander-v3", "backend": "fast"},
         "backend='fast' needs a numpy port of the environment, which exists for ('CartPole-v1', 'Acrobot-v1') "
         "only, got env_id='LunarLander-v3': use backend='gymnasium'"),
        ({"env_id": "Acrobot-v1", "backend": "jax"}, "backend must be one of ('fused', 'fast', 'gymnasium')"),
        ({"env_id": ["CartPole-v1"]}, "env_id must be one of ('CartPole-v1', 'Acrobot-v1', 'LunarLander-v3', "
                                      "'InvertedPendulum-v5', 'Hopper-v5')"),
    ],
)
def test_environments_and_backends_the_runner_cannot_train_are_refused_by_name(kwargs, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        RunConfig(**kwargs)


def test_the_benchmarks_are_accepted_with_the_backends_that_step_them():
    from pgsom.benchmarks import BENCHMARKS
    from pgsom.envs import ENV_IDS, backends_for

    assert ENV_IDS == tuple(BENCHMARKS) == (
        "CartPole-v1", "Acrobot-v1", "LunarLander-v3", "InvertedPendulum-v5", "Hopper-v5")
    assert RunConfig().backend == "fused" and RunConfig().env_id == "CartPole-v1"
    allowed = {"CartPole-v1": ("fused", "fast", "gymnasium"), "Acrobot-v1": ("fast", "gymnasium"),
               "LunarLander-v3": ("gymnasium",), "InvertedPendulum-v5": ("gymnasium",),
               "Hopper-v5": ("gymnasium",)}
    for env_id, backends in allowed.items():
        assert backends_for(env_id) == backends
        for backend in backends:
            cfg = RunConfig(env_id=env_id, backend=backend)
            assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_rk_fresh_needs_an_even_budget_and_exact_hessian_needs_shallow_policy():
    with pytest.raises(ValueError, match="multiple of 2"):
        RunConfig(algo=AlgoConfig(method="rk"), episodes=5)
    RunConfig(algo=AlgoConfig(method="rk", rk_stage="reuse"), episodes=5)
    with pytest.raises(ValueError, match="hutchinson"):
        RunConfig(algo=AlgoConfig(method="hessian"), hidden=(8, 8))


def test_round_trip_and_unknown_keys():
    _, cfg = variant("hessian", "clip", "baseline")
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    data = cfg.to_dict()
    data["algo"]["learning_rate"] = 0.1
    with pytest.raises(ValueError, match="unknown AlgoConfig field"):
        RunConfig.from_dict(data)
    with pytest.raises(ValueError, match="unknown RunConfig/AlgoConfig field"):
        cfg.replace(learning_rate=0.1)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"lr": float("inf")}, "lr must be a finite number > 0"),
        ({"clip_norm": float("inf")}, "clip_norm must be a finite number > 0"),
        ({"gamma": True}, "gamma must be in"),
        ({"method": "npg", "npg_cg_iters": True}, "npg_cg_iters must be an int >= 1"),
        ({"method": "pg", "rk_stage": "reuse"}, "rk_stage applies to method 'rk' only"),
        ({"method": "adam", "hessian_terms": "surrogate"}, "hessian_terms applies to method 'hessian' only"),
        ({"method": "rk", "npg_damping": 1.0}, "npg_damping applies to method 'npg' only"),
        ({"method": "pg", "beta2": 0.9}, "beta2 applies to methods 'adam' and 'hessian' only"),
        ({"returns": "total"}, "makes every advantage"),
        ({"method": "hessian", "rk_rule": "midpoint"}, "rk_rule applies to method 'rk' only"),
        ({"std_ddof": 1, "standardize": False}, "std_ddof=1 applies only with standardize=True"),
        ({"baseline_kind": "running_mean"}, "baseline_kind='running_mean' applies only with baseline=True"),
        ({"returns": "total", "baseline": True, "baseline_kind": "running_mean"},
         "returns='total' with standardize=True and baseline_kind='running_mean' makes every advantage 0"),
    ],
)
def test_values_that_would_change_nothing_or_break_training_are_refused(kwargs, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        AlgoConfig(**kwargs)
    AlgoConfig(returns="total", standardize=False)
    AlgoConfig(returns="total", baseline=True)


def test_the_new_options_are_accepted_where_they_apply():
    """Defaults of the four options are today's behaviour; each option is valid where it applies
    (running_mean with standardisation is allowed: it is a no-op there, tested in test_runner)."""
    default = AlgoConfig()
    assert (default.std_ddof, default.second_moment, default.rk_rule, default.baseline_kind) == (
        0, "square", "heun", "time_ema")
    AlgoConfig(std_ddof=1)
    AlgoConfig(method="hessian", second_moment="signed")
    assert AlgoConfig(method="rk", rk_rule="midpoint").episodes_per_update == 2
    assert AlgoConfig(method="rk", rk_rule="midpoint", rk_stage="reuse").episodes_per_update == 1
    AlgoConfig(baseline=True, baseline_kind="running_mean")
    AlgoConfig(baseline=True, baseline_kind="running_mean", baseline_decay=0.5)  # not used, not refused
    AlgoConfig(returns="total", standardize=False, baseline=True, baseline_kind="running_mean")
    cfg = RunConfig(algo=AlgoConfig(method="rk", rk_rule="midpoint", std_ddof=1, baseline=True,
                                    baseline_kind="running_mean"))
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert {"std_ddof", "rk_rule", "baseline_kind"} <= set(cfg.to_dict()["algo"])
