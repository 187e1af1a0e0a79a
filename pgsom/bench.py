"""Throughput benchmark: every number is a ratio of two programs timed in the same run.

``python -m pgsom bench`` measures, on this machine:

1. **Against an independent sequential REINFORCE** in the style of pytorch/examples'
   ``reinforce.py`` (:func:`sequential_reinforce`: ``torch.nn`` policy, ``torch.optim.SGD``,
   ``torch.distributions.Categorical`` per step, ``gymnasium.make("CartPole-v1")``, none of the
   package's own estimator or update code): ``ref_runs`` runs of ``episodes`` episodes, against
   ``python -m pgsom train --method pg --seeds N --episodes E --no-cache`` as a subprocess (its
   whole wall time: start, compilation and the process pool included). Reported: the ratio of
   runs per second.
2. **Against the runner of an earlier commit** (default ``83d5a80``, the runner before the fused
   kernel), checked out into a scratch git worktree: the same sweep (``N`` seeds x ``E``
   episodes of each method, every core, no cache) run by a small driver script with that
   tree's ``pgsom`` and with this one, ``repeats`` times each, alternating (old, new, old,
   new, ...); reported: environment steps per second of the whole machine from the median
   time of each, their ratio, and the range of the ratios of the back-to-back pairs, per
   method. Each runner must take the same environment steps in every repeat (its runs are
   seeded), or the bench stops.
3. Optionally (``--cold-reproduce``) the cold ``make reproduce`` pipeline into a scratch output
   root with an empty cache: the speed issue's scope (:data:`ISSUE10_SCOPE`) ``repeats`` times
   (median and range of the wall time) and the whole pipeline once, with the peak resident
   memory of its processes. The whole pipeline's outputs are then compared byte for byte with
   the committed ones (:func:`pgsom.verify.verify` on the scratch root, what ``make verify``
   compares, the README's generated section included), so a
   bench run is also a cold rebuild check.

Timings are for this machine under whatever else it runs (on a shared 2-core machine they move
by 10-30% from minute to minute: hence the repeats and medians); the ratios are what the README
reports, and no test checks a time.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pgsom.pipeline import JOBS

REPO = Path(__file__).resolve().parent.parent
BASELINE_COMMIT = "83d5a80"
"""The runner before the fused kernel (the speed issue's reference)."""

_SWEEP_DRIVER = r"""
import json, sys, time
import pgsom
from pgsom.config import RunConfig
from pgsom.runner import run_sweep
method, seeds, episodes, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
name, cfg = method, RunConfig(episodes=episodes, eval_episodes=0).replace(method=method)
t0 = time.perf_counter()
res = run_sweep({name: cfg}, seeds, store=None, max_workers=workers, progress=False)[name]
print(json.dumps({"seconds": time.perf_counter() - t0, "env_steps": int(res["env_steps"][:, -1].sum())}))
"""


class SequentialTiming(NamedTuple):
    runs: int
    episodes: int
    seconds: float
    mean_last50: float  # mean return of the last 50 episodes, averaged over the runs


def median(xs) -> float:
    return float(np.median(np.asarray(xs, dtype=float)))


class TrainTiming(NamedTuple):
    seeds: int
    episodes: int
    seconds: tuple[float, ...]  # one per repeat

    @property
    def median_seconds(self) -> float:
        return median(self.seconds)


class SweepRow(NamedTuple):
    """One method's sweep, timed ``len(old_seconds)`` times with each runner (alternating)."""

    method: str
    seeds: int
    episodes: int
    old_seconds: tuple[float, ...]
    old_steps: int
    new_seconds: tuple[float, ...]
    new_steps: int

    @property
    def old_rate(self) -> float:
        """Environment steps per second at the median time."""
        return self.old_steps / median(self.old_seconds)

    @property
    def new_rate(self) -> float:
        return self.new_steps / median(self.new_seconds)

    @property
    def ratio(self) -> float:
        """The ratio of the median rates."""
        return self.new_rate / self.old_rate

    @property
    def pair_ratios(self) -> tuple[float, ...]:
        """The ratio of each back-to-back (old, new) pair."""
        return tuple((self.new_steps / n) / (self.old_steps / o) for o, n in zip(self.old_seconds, self.new_seconds))


class ReproduceTiming(NamedTuple):
    seconds: tuple[float, ...]  # one per cold run
    peak_rss_gb: float  # the largest process, over the runs
    scope: str = "full"  # "full": make reproduce as it stands; "issue10": the speed issue's scope
    peak_total_rss_gb: float = float("nan")  # all its processes together (notebooks run at once)
    identical: int = -1  # committed files the rebuild wrote byte for byte (-1: not compared)
    differ: tuple[str, ...] = ()  # committed files it wrote otherwise, or did not write, or extra

    @property
    def median_seconds(self) -> float:
        return median(self.seconds)


ISSUE10_SCOPE = ("--only", "derivations", "ablation", "main_results", "statistics",
                 "--set", 'protocols=["paper", "powered"]', "--set", "n_mc_ascent=2000")
"""``make reproduce`` as it stood when the speed issue was filed (its <= 120 s target): the four
notebooks it had (not the later ``readings`` study), the protocols ``paper`` and ``powered``
only (no ``replication`` runs for the claims report) and the derivations' ascent check at its
sample size then. The same code."""


class BenchReport(NamedTuple):
    sequential: SequentialTiming
    train: TrainTiming
    sweeps: list[SweepRow]
    baseline_commit: str
    workers: int
    reproduce: list[ReproduceTiming]

    @property
    def run_ratio(self) -> float:
        """Runs per second of ``pgsom train`` over those of the sequential loop."""
        return (self.train.seeds / self.train.median_seconds) / (self.sequential.runs / self.sequential.seconds)


def sequential_reinforce(episodes: int, seed: int, lr: float = 0.002, gamma: float = 0.99) -> tuple[float, float]:
    """One REINFORCE run written the pytorch/examples way; returns (seconds, mean of the last
    50 returns). 4-64-2 tanh policy, per-step Categorical sample, reward-to-go standardised per
    episode (population std, as the package), plain SGD at ``lr``. Independent of pgsom's code."""
    import gymnasium as gym
    import torch
    from torch import nn

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(seed)
    policy = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 2))
    with torch.no_grad():  # nn.Linear's default init, U(+-1/sqrt(fan_in)), from our generator
        for layer in (m for m in policy if isinstance(m, nn.Linear)):
            bound = 1.0 / np.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=gen)
            layer.bias.uniform_(-bound, bound, generator=gen)
    opt = torch.optim.SGD(policy.parameters(), lr=lr)
    env = gym.make("CartPole-v1")
    returns = []
    t0 = time.perf_counter()
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed if ep == 0 else None)
        log_probs, rewards, done = [], [], False
        while not done:
            dist = torch.distributions.Categorical(logits=policy(torch.as_tensor(obs)))
            u = torch.rand((), generator=gen)
            action = (u > dist.probs[0]).long()  # inverse CDF: a reproducible sample
            log_probs.append(dist.log_prob(action))
            obs, reward, terminated, truncated, _ = env.step(int(action))
            rewards.append(reward)
            done = terminated or truncated
        g, running = [], 0.0
        for r in reversed(rewards):
            running = r + gamma * running
            g.append(running)
        g = torch.tensor(g[::-1], dtype=torch.float64)
        g = ((g - g.mean()) / (g.std(unbiased=False) + 1e-8)).float()
        loss = -(torch.stack(log_probs) * g).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        returns.append(sum(rewards))
    env.close()
    return time.perf_counter() - t0, float(np.mean(returns[-50:]))


def time_sequential(runs: int, episodes: int) -> SequentialTiming:
    out = [sequential_reinforce(episodes, seed=1000 + i) for i in range(runs)]
    return SequentialTiming(runs, episodes, sum(s for s, _ in out), float(np.mean([m for _, m in out])))


def time_train(seeds: int, episodes: int, workers: int, log=print, repeats: int = 1) -> TrainTiming:
    """Wall time of ``python -m pgsom train --method pg`` in a fresh process (no cache), ``repeats``
    times."""
    cmd = [sys.executable, "-m", "pgsom", "train", "--method", "pg", "--seeds", str(seeds),
           "--episodes", str(episodes), "--eval-episodes", "0", "--workers", str(workers), "--no-cache"]
    seconds = []
    for k in range(repeats):
        log(f"bench: ({k + 1}/{repeats}) " + " ".join(cmd[1:]))
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO, capture_output=True, text=True)
        seconds.append(time.perf_counter() - t0)
    return TrainTiming(seeds, episodes, tuple(seconds))


def _driver(tree: Path, method: str, seeds: int, episodes: int, workers: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", _SWEEP_DRIVER, method, str(seeds), str(episodes), str(workers)],
                         env=env, cwd=tree, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"sweep driver failed in {tree} for {method}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_sweeps(methods, seeds: int, episodes: int, commit: str, workers: int, log=print,
                repeats: int = 1) -> list[SweepRow]:
    """The same sweep with ``commit``'s runner (scratch worktree) and with this tree's, ``repeats``
    times each, alternating. Raises RuntimeError if a runner's step count changes between
    repeats (its runs are seeded: the same sweep must play the same episodes)."""
    scratch = Path(tempfile.mkdtemp(prefix="pgsom-bench-"))
    old = scratch / "old"
    subprocess.run(["git", "worktree", "add", "--detach", str(old), commit], cwd=REPO, check=True,
                   capture_output=True)
    rows = []
    try:
        for m in methods:
            timed = {"old": [], "new": []}
            steps = {"old": set(), "new": set()}
            for k in range(repeats):
                for side, tree in (("old", old), ("new", REPO)):
                    log(f"bench: {m}, {seeds} seeds x {episodes} episodes ({k + 1}/{repeats}): "
                        + (f"runner of {commit} ..." if side == "old" else "this tree ..."))
                    out = _driver(tree, m, seeds, episodes, workers)
                    timed[side].append(out["seconds"])
                    steps[side].add(out["env_steps"])
            for side, seen in steps.items():
                if len(seen) != 1:
                    raise RuntimeError(f"bench: the {side} runner took different step counts for {m} in "
                                       f"its {repeats} repeats: {sorted(seen)}")
            rows.append(SweepRow(m, seeds, episodes, tuple(timed["old"]), steps["old"].pop(),
                                 tuple(timed["new"]), steps["new"].pop()))
            log(f"bench: {m}: {rows[-1].ratio:.1f}x env steps per second (pairs: "
                + ", ".join(f"{r:.1f}x" for r in rows[-1].pair_ratios) + ")")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def time_cold_reproduce(scratch: str = "results/bench-reproduce", log=print, scope: str = "full",
                        compare: bool = False) -> ReproduceTiming:
    """The full pipeline into ``scratch`` with an empty cache, in a child process (``scope``
    ``"issue10"``: with :data:`ISSUE10_SCOPE`). The peak resident memory is the largest of
    the pipeline's processes (a notebook kernel: it trains in-process or drives the pool), and
    that of the whole process tree. ``compare``: then compare the committed outputs with the
    rebuilt ones byte for byte (:func:`pgsom.verify.verify` without its rebuild; the full scope only)."""
    root = REPO / scratch
    shutil.rmtree(root, ignore_errors=True)
    cmd = [sys.executable, "-m", "pgsom.pipeline", "--profile", "full", "--out", str(root),
           "--cache-dir", str(root / "cache"), *(ISSUE10_SCOPE if scope == "issue10" else ())]
    log("bench: cold reproduce: " + " ".join(cmd[1:]))
    import psutil

    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, text=True)
        total = 0
        while proc.poll() is None:  # the resident memory of the pipeline's process tree
            try:
                tree = psutil.Process(proc.pid)
                total = max(total, _rss(tree) + sum(_rss(c) for c in tree.children(recursive=True)))
            except psutil.Error:  # the pipeline ended meanwhile
                pass
            time.sleep(0.25)
        seconds = time.perf_counter() - t0
        if proc.returncode:
            err.seek(0)
            raise RuntimeError(f"cold reproduce failed (exit {proc.returncode}): {err.read()[-2000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    identical, differ = -1, ()
    if compare:
        from pgsom import verify

        result = verify.verify(root, rebuild=False)  # make verify's comparison, README section included
        identical = len(result.identical)
        differ = tuple(result.differ + result.missing + result.extra)
        log(f"bench: the rebuild against the committed outputs: {result.report()}")
    shutil.rmtree(root, ignore_errors=True)
    return ReproduceTiming((seconds,), peak_kb / 1024**2, scope, total / 1024**3, identical, differ)


def repeat_cold_reproduce(repeats: int, log=print, scope: str = "issue10") -> ReproduceTiming:
    """:func:`time_cold_reproduce` ``repeats`` times: every wall time, the largest memory."""
    runs = [time_cold_reproduce(log=log, scope=scope) for _ in range(repeats)]
    return ReproduceTiming(tuple(r.seconds[0] for r in runs), max(r.peak_rss_gb for r in runs), scope,
                           max(r.peak_total_rss_gb for r in runs))


def _rss(p) -> int:
    import psutil

    try:
        return p.memory_info().rss
    except psutil.Error:
        return 0


REPEATS = 3
"""Timings per program (the sweeps, ``pgsom train``, the issue-scope cold reproduce); the
README reports their medians."""


def run_bench(methods=("pg", "hessian", "rk"), seeds: int = 100, episodes: int = 500, ref_runs: int = 2,
              commit: str = BASELINE_COMMIT, workers: int | None = None, cold_reproduce: bool = False,
              log=print, repeats: int = REPEATS) -> BenchReport:
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    workers = workers or os.cpu_count() or 1
    log(f"bench: sequential REINFORCE, {ref_runs} runs x {episodes} episodes ...")
    seq = time_sequential(ref_runs, episodes)
    train = time_train(seeds, episodes, workers, log, repeats)
    sweeps = time_sweeps(methods, seeds, episodes, commit, workers, log, repeats)
    rep = ([repeat_cold_reproduce(repeats, log, "issue10"), time_cold_reproduce(log=log, scope="full", compare=True)]
           if cold_reproduce else [])
    return BenchReport(seq, train, sweeps, commit, workers, rep)


def _times(seconds) -> str:
    """``"7.9 s"``, or ``"7.9 s (median of 7.6, 7.9, 8.4)"`` for repeats."""
    if len(seconds) == 1:
        return f"{seconds[0]:.1f} s"
    return f"{median(seconds):.1f} s (median of {', '.join(f'{x:.1f}' for x in seconds)})"


def format_markdown(report: BenchReport) -> str:
    s, t = report.sequential, report.train
    n = len(report.sweeps[0].old_seconds) if report.sweeps else len(t.seconds)
    lines = [
        f"**Against an independent sequential REINFORCE** (pytorch/examples style: torch.optim.SGD, a "
        f"Categorical sample per step, gymnasium's CartPole-v1): {s.runs} runs x {s.episodes} episodes in "
        f"{s.seconds:.0f} s (mean of the last 50 returns {s.mean_last50:.0f}); `python -m pgsom train --method pg "
        f"--seeds {t.seeds} --episodes {t.episodes} --workers {report.workers} --no-cache` in {_times(t.seconds)} "
        f"(a fresh process, {report.workers} cores): **{report.run_ratio:.3g}x** the runs per second.",
        "",
        f"**Against the runner of commit {report.baseline_commit}** (before the fused kernel; a scratch worktree, "
        f"the same sweep driver on {report.workers} cores, no cache; that runner trains in {report.workers} worker "
        f"processes, this one as `pgsom.sweep.run_many` chooses for the fused kernel: {report.workers} threads "
        f"of the driver process, one shard each at a time). Each sweep ran {n} time(s) with each runner, "
        f"alternating; the seconds are the median run's, the ratio is that of the median rates, and the last "
        f"column gives the ratios of the {n} back-to-back pairs:",
        "",
        "| method | seeds x episodes | env steps (now) | before: s (M steps/s) | now: s (M steps/s) | ratio | pairs |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in report.sweeps:
        pairs = ", ".join(f"{x:.1f}x" for x in r.pair_ratios)
        lines.append(f"| {r.method} | {r.seeds} x {r.episodes} | {r.new_steps:,} | {median(r.old_seconds):.1f} "
                     f"({r.old_rate / 1e6:.2f}) | {median(r.new_seconds):.1f} ({r.new_rate / 1e6:.2f}) | "
                     f"**{r.ratio:.1f}x** | {pairs} |")
    lines.append("")
    same = all(r.old_steps == r.new_steps for r in report.sweeps)
    lines.append("Both runners took exactly the same environment steps: the fused kernel's runs play the same "
                 "episodes as the earlier runner's (equal lengths, every episode of every run), so the ratio "
                 "compares the same work." if same else
                 "The env-step counts of the two runners differ (the kernel's rounding sent some runs down other "
                 "episodes); the rates are per environment step. Each runner took the same steps in every repeat.")
    for rp in report.reproduce:
        what = ("as it stood when the speed issue was filed: protocols `paper` and `powered`, the "
                "derivations' ascent check at its sample size then, without the later readings "
                "notebook (`pgsom.bench.ISSUE10_SCOPE`)"
                if rp.scope == "issue10" else
                "as it stands: also the `replication` protocol of the claims report, the readings "
                "study and the benchmarks study")
        took = (f"{rp.seconds[0]:.0f} s" if len(rp.seconds) == 1 else
                f"{rp.median_seconds:.0f} s, the median of {len(rp.seconds)} cold runs "
                f"({', '.join(f'{x:.0f}' for x in rp.seconds)} s)")
        largest = " (the largest over the runs)" if len(rp.seconds) > 1 else ""
        line = (f"**Cold `make reproduce`** {what} (every notebook, every run trained, empty "
                f"cache, up to {JOBS} notebooks at once): {took}; peak resident memory "
                f"{rp.peak_rss_gb:.2f} GB in one process, {rp.peak_total_rss_gb:.2f} GB in all its "
                f"processes together{largest}.")
        if rp.identical >= 0:
            line += (f" Its outputs against the committed ones (`pgsom.verify.verify`, what `make verify` "
                     f"compares): {rp.identical} files byte-identical, {len(rp.differ)} differ"
                     + (": " + ", ".join(f"`{d}`" for d in rp.differ) if rp.differ else "") + ".")
        lines += ["", line]
    return "\n".join(lines)
