"""Command line: ``python -m pgsom train ...`` and ``python -m pgsom bench ...``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from pgsom.config import METHODS, RunConfig
from pgsom.paper import PAPER_CLIP_LR_SCALE, PAPER_CLIP_NORM, PAPER_ENTROPY_COEF
from pgsom.variants import LEVELS, Reading, variant
from pgsom.envs import BACKENDS


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train seeds of one variant and print a summary")
    p.add_argument("--method", required=True, choices=METHODS)
    for name, text in (
        ("clip", f"clip the gradient norm at {PAPER_CLIP_NORM:g} and scale the learning rate by "
                 f"{PAPER_CLIP_LR_SCALE:g} (paper 4.1)"),
        ("clip-same-lr", f"clip at {PAPER_CLIP_NORM:g} at the base learning rate"),
        ("lr2", "double the learning rate without clipping"),
        ("entropy", f"entropy bonus, beta_H = {PAPER_ENTROPY_COEF}"),
        ("baseline", "time-indexed EMA baseline"),
    ):
        p.add_argument(f"--{name}", action="store_true", help=text)
    p.add_argument("--seeds", type=_positive_int, default=5, help="number of seeds (default 5)")
    p.add_argument("--root-seed", type=int, default=0, help="experiment root seed (default 0)")
    p.add_argument("--episodes", type=_positive_int, default=500, help="training episodes (default 500)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--lr", type=float, default=None, help="base learning rate (default 0.002)")
    p.add_argument("--returns", choices=("reward_to_go", "total"), default=None)
    p.add_argument("--raw-returns", action="store_true", help="do not standardise advantages")
    p.add_argument("--hessian-estimator", choices=("exact", "hutchinson"), default=None)
    p.add_argument("--hessian-terms", choices=("full", "surrogate"), default=None)
    p.add_argument("--rk-stage", choices=("fresh", "reuse"), default=None)
    p.add_argument("--reading", nargs="+", metavar="LEVEL", default=(), choices=[lv.name for lv in LEVELS],
                   help="a reading of the paper: levels of pgsom.variants.LEVELS (e.g. reuse midpoint "
                        "std_sample); each applies where it touches the method and its stabilisers")
    p.add_argument("--env", default="CartPole-v1", metavar="ENV_ID",
                   help="gymnasium id of a benchmark the runner trains (pgsom.envs.ENV_IDS: CartPole-v1, "
                        "Acrobot-v1 with --backend fast or gymnasium, LunarLander-v3, InvertedPendulum-v5 and "
                        "Hopper-v5 with --backend gymnasium)")
    p.add_argument("--backend", choices=BACKENDS, default="fused",
                   help="fused: compiled kernel (default); fast: numpy env + torch reference; gymnasium")
    p.add_argument("--workers", type=_positive_int, default=None, help="processes (default: cores)")
    p.add_argument("--out", type=Path, default=None, help="write runs.npz and summary.json here")
    p.add_argument("--cache-dir", type=Path, default=Path("results/cache"))
    p.add_argument("--no-cache", action="store_true", help="train even if cached; do not write the cache")


def _bench_parser(sub) -> None:
    from pgsom.bench import BASELINE_COMMIT, REPEATS

    p = sub.add_parser("bench", help="ratios against a sequential REINFORCE and an earlier runner")
    p.add_argument("--methods", default="pg,hessian,rk", help="comma-separated methods of the sweep comparison")
    p.add_argument("--seeds", type=_positive_int, default=100, help="seeds per sweep (default 100)")
    p.add_argument("--episodes", type=_positive_int, default=500, help="episodes per run (default 500)")
    p.add_argument("--ref-runs", type=_positive_int, default=2, help="sequential REINFORCE runs (default 2)")
    p.add_argument("--commit", default=BASELINE_COMMIT, help=f"earlier runner to compare with (default {BASELINE_COMMIT})")
    p.add_argument("--workers", type=_positive_int, default=None, help="processes (default: cores)")
    p.add_argument("--repeats", type=_positive_int, default=REPEATS,
                   help=f"timings of each program, alternating (default {REPEATS}); the medians are reported")
    p.add_argument("--cold-reproduce", action="store_true",
                   help="also time the pipeline cold (empty cache, scratch output root): the speed issue's "
                        "scope --repeats times, the whole pipeline once, compared with the committed outputs")
    p.add_argument("--markdown", type=Path, default=None, help="also write the results as markdown")
    p.add_argument("--readme", type=Path, default=None,
                   help="also put the results into this README between <!-- BEGIN/END PERFORMANCE -->")


def _algo_changes(args) -> dict:
    changes = {
        "lr": args.lr,
        "returns": args.returns,
        "hessian_estimator": args.hessian_estimator,
        "hessian_terms": args.hessian_terms,
        "rk_stage": args.rk_stage,
    }
    out = {k: v for k, v in changes.items() if v is not None}
    if args.raw_returns:
        out["standardize"] = False
    return out


def cmd_train(args) -> int:
    from pgsom import stats
    from pgsom.runner import run_sweep
    from pgsom.store import ResultStore, write_bytes_atomic, write_text_atomic

    stabilisers = [s for s in ("clip", "clip_same_lr", "lr2", "entropy", "baseline") if getattr(args, s)]
    base = RunConfig(episodes=args.episodes, eval_episodes=args.eval_episodes, backend=args.backend,
                     env_id=args.env)
    name, cfg = variant(args.method, *stabilisers, reading=Reading.of(*args.reading), base=base)
    cfg = cfg.replace(**_algo_changes(args))
    store = None if args.no_cache else ResultStore(args.cache_dir)
    t0 = time.perf_counter()
    res = run_sweep({name: cfg}, args.seeds, root_seed=args.root_seed, store=store, max_workers=args.workers)[name]
    seconds = time.perf_counter() - t0
    final = res["episode_return"][:, -1]
    ci = stats.ci_t(final)
    from pgsom.benchmarks import benchmark

    threshold = benchmark(args.env).thresholds[0]  # the benchmark's first "episodes to reach" return
    reached = stats.episodes_to_threshold(res["episode_return"], threshold, window=min(10, args.episodes))
    summary = {
        "variant": name,
        "config": cfg.to_dict(),
        "seeds": args.seeds,
        "root_seed": args.root_seed,
        "final_return_mean": float(np.nanmean(final)),
        "final_return_ci95": [float(ci.low), float(ci.high)],
        # None without evaluation episodes (--eval-episodes 0), not a NaN with a warning
        "eval_return_mean": float(np.nanmean(res["eval_return"])) if cfg.eval_episodes else None,
        "threshold": threshold,
        "fraction_reaching_threshold": float(reached.fraction_reached),
        "diverged_runs": int((res["diverged_at"] >= 0).sum()),
        "wall_seconds": round(seconds, 1),
    }
    print(f"{name}: {args.seeds} seeds x {args.episodes} episodes in {seconds:.1f} s")
    print(f"  final-episode return {summary['final_return_mean']:.1f} (95% CI {ci.low:.1f} to {ci.high:.1f})")
    ev = summary["eval_return_mean"]
    print(f"  evaluation return    {'not run (--eval-episodes 0)' if ev is None else f'{ev:.1f}'}")
    print(f"  reached {threshold:g} (10-episode mean): {reached.fraction_reached:.0%}; "
          f"diverged runs: {summary['diverged_runs']}")
    if args.out is not None:
        import io

        buf = io.BytesIO()
        np.savez(buf, **res)
        write_bytes_atomic(args.out / "runs.npz", buf.getvalue())
        write_text_atomic(args.out / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
        print(f"  wrote {args.out / 'runs.npz'} and {args.out / 'summary.json'}")
    return 0


def cmd_bench(args) -> int:
    from pgsom.bench import format_markdown, run_bench

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        print(f"error: --methods: unknown {unknown}; allowed: {list(METHODS)}", file=sys.stderr)
        return 2
    report = run_bench(methods, args.seeds, args.episodes, args.ref_runs, args.commit, args.workers,
                       args.cold_reproduce, log=lambda m: print(m, file=sys.stderr, flush=True), repeats=args.repeats)
    text = format_markdown(report)
    print(text)
    from pgsom.report import update_readme
    from pgsom.store import write_text_atomic

    if args.markdown is not None:
        write_text_atomic(args.markdown, text + "\n")
    if args.readme is not None:
        command = " ".join(["python -m pgsom", *args.argv])
        update_readme(args.readme, performance_section(text, command),
                      "<!-- BEGIN PERFORMANCE -->", "<!-- END PERFORMANCE -->")
    return 0


def performance_section(table: str, command: str) -> str:
    import platform

    import torch

    from pgsom import numerics

    return (
        "## Performance\n\n"
        f"Measured by `{command}` on this machine ({platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, numerics mode {numerics.mode()}, one torch thread per process). "
        "Every figure is a ratio of two programs timed in the same run (`pgsom/bench.py` says how each is "
        "measured); the seconds are this machine's.\n\n" + table
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgsom", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _bench_parser(sub)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.argv = [a for a in argv if not a.startswith("--readme") and a != str(args.__dict__.get("readme"))]
    try:
        return cmd_train(args) if args.command == "train" else cmd_bench(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
