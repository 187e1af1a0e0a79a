"""Throughput benchmark: the batched runner against a sequential reference loop.

The reference is how pytorch/examples' ``reinforce.py`` trains: one run at a time, one
``gymnasium.make("CartPole-v1")`` environment, a policy forward and a categorical sample per
step, an update after each episode. It applies the very same estimator and update rule as
the runner (``runner.VariantGroup`` on a batch of one), so the two loops differ only in
how the work is organised. Both are timed in the same process, one torch thread each, from
the same initial policies over the same number of episodes, and the ratio of their
run-episodes per second is reported — never an absolute time checked by a test.
"""

from __future__ import annotations

import resource
import time
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch

from pgsom.config import RunConfig, table1_variants, variant
from pgsom.estimators import EpisodeBatch
from pgsom.policy import PolicySpec, forward, init_params
from pgsom.runner import RunSpec, VariantGroup, make_train, run_streams, run_sweep


class BenchRow(NamedTuple):
    method: str
    runs: int
    episodes: int
    batched_eps_per_s: float
    reference_eps_per_s: float
    batched_mean_length: float
    reference_mean_length: float

    @property
    def ratio(self) -> float:
        return self.batched_eps_per_s / self.reference_eps_per_s


class Table1Timing(NamedTuple):
    runs: int
    episodes: int
    seconds: float
    peak_rss_gb: float
    workers: int
    reference_seconds: float  # one sequential pg run of 500 episodes, same process
    reference_mean_length: float

    @property
    def ratio(self) -> float:
        """Run-episodes/s of the sweep over those of the sequential loop on a full-length run."""
        return (self.runs * self.episodes / self.seconds) / (self.episodes / self.reference_seconds)


class BenchReport(NamedTuple):
    rows: list[BenchRow]
    table1: Table1Timing | None


def sequential_reference(config: RunConfig, seed_index: int, root_seed: int = 0) -> tuple[float, float]:
    """Train one run the pytorch/examples way; return (seconds, mean episode length)."""
    streams = run_streams(root_seed, seed_index)
    env = gym.make(config.env_id)
    spec = PolicySpec(env.observation_space.shape[0], env.action_space.n, config.hidden)
    theta = init_params(spec, [streams.init])
    group = VariantGroup(config.algo, spec, torch.tensor([0]), theta, env.spec.max_episode_steps)
    sampler = torch.Generator().manual_seed(int(streams.env_seed))
    alive = torch.ones(1, dtype=torch.bool)
    lengths = []
    t0 = time.perf_counter()
    for ep in range(config.episodes):
        obs, _ = env.reset(seed=streams.env_seed if ep == 0 else None)
        observations, actions, rewards, done = [], [], [], False
        while not done:
            x = torch.as_tensor(obs).view(1, 1, -1)
            with torch.no_grad():
                probs = torch.softmax(forward(spec, theta, x).logits[0, 0], -1)
            action = int(torch.multinomial(probs, 1, generator=sampler))
            observations.append(obs)
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(reward)
            done = terminated or truncated
        lengths.append(len(rewards))
        batch = EpisodeBatch(
            torch.as_tensor(np.array(observations, np.float32))[None],
            torch.as_tensor(actions)[None],
            torch.as_tensor(rewards, dtype=torch.float32)[None],
            torch.ones(1, len(rewards), dtype=torch.bool),
        )
        group.learn(batch, [streams.probes], alive)
    env.close()
    return time.perf_counter() - t0, float(np.mean(lengths))


def bench_method(method: str, seeds: int, episodes: int, ref_runs: int) -> BenchRow:
    torch.set_num_threads(1)
    name, cfg = variant(method, base=RunConfig(episodes=episodes, eval_episodes=0))
    ref = [sequential_reference(cfg, i) for i in range(ref_runs)]
    ref_seconds = sum(s for s, _ in ref)
    runs = [RunSpec(name, cfg, i) for i in range(seeds)]
    t0 = time.perf_counter()
    results = make_train(runs)()
    seconds = time.perf_counter() - t0
    batched_len = float(np.mean([r["episode_length"].mean() for r in results]))
    return BenchRow(method, seeds, episodes, seeds * episodes / seconds, ref_runs * episodes / ref_seconds,
                    batched_len, float(np.mean([length for _, length in ref])))


def time_table1(seeds: int, workers: int | None = None) -> Table1Timing:
    """Wall time and peak memory of Table 1's 12 variants x ``seeds`` x 500 episodes."""
    variants = table1_variants(baselines=False, attribution=False, paper_likely=False)
    torch.set_num_threads(1)
    ref_seconds, ref_length = sequential_reference(variants["pg"], 0)
    t0 = time.perf_counter()
    run_sweep(variants, seeds, store=None, max_workers=workers, progress=True)
    seconds = time.perf_counter() - t0
    peak_kb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    n_workers = workers or __import__("os").cpu_count() or 1  # what run_sweep uses
    return Table1Timing(len(variants) * seeds, 500, seconds, peak_kb / 1024**2, n_workers, ref_seconds, ref_length)


def run_bench(methods, seeds: int, episodes: int, ref_runs: int, table1: bool, table1_seeds: int) -> BenchReport:
    rows = [bench_method(m, seeds, episodes, ref_runs) for m in methods]
    return BenchReport(rows, time_table1(table1_seeds) if table1 else None)


def format_markdown(report: BenchReport) -> str:
    lines = [
        "| method | runs x episodes | batched run-episodes/s | sequential run-episodes/s | ratio | mean episode length (batched / sequential) |",
        "|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        lines.append(
            f"| {r.method} | {r.runs} x {r.episodes} | {r.batched_eps_per_s:.0f} | {r.reference_eps_per_s:.1f} "
            f"| {r.ratio:.0f}x | {r.batched_mean_length:.1f} / {r.reference_mean_length:.1f} |"
        )
    if report.table1 is not None:
        t = report.table1
        lines += [
            "",
            f"Table 1 sweep: {t.runs} runs (12 variants) x {t.episodes} episodes in {t.seconds:.0f} s "
            f"({t.runs * t.episodes / t.seconds:.0f} run-episodes/s) with {t.workers} worker processes; "
            f"peak resident memory of one process {t.peak_rss_gb:.2f} GB. The sequential loop trained one `pg` run "
            f"of 500 episodes (mean length {t.reference_mean_length:.0f}) in {t.reference_seconds:.0f} s "
            f"({t.episodes / t.reference_seconds:.1f} run-episodes/s): the sweep's run throughput is "
            f"{t.ratio:.0f}x that loop's.",
        ]
    return "\n".join(lines)
