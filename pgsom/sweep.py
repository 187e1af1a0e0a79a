"""Sweeps: many runs trained in shards through an Executor and cached as each shard finishes.

:func:`run_many` takes a flat list of :class:`pgsom.runner.RunSpec` (any protocols, variants,
root seeds and budgets, all submitted together), loads the cached ones from a
:class:`pgsom.store.ResultStore` and trains the others in *shards* (batches trained in lockstep
by one worker, :func:`pgsom.runner.train_runs`) through a ``concurrent.futures.Executor``:

* by default, on this machine: fused-kernel runs (backend ``"fused"``, the default) in a pool
  of ``max_workers`` threads of this process (every core; each shard on one thread: the
  kernels release the GIL, so one shard's kernels run while another's Python side holds it;
  no worker process to start), other backends in a process pool (forkserver workers that
  start with the training modules imported, :func:`_default_executor`; one torch thread per
  process);
* a Dask cluster through ``distributed.Client(address).get_executor()`` or
  :func:`executor_for` (``scheduler="tcp://host:8786"``), e.g. SLURM nodes started by
  dask-jobqueue (README, "Running on a cluster"); any other ``Executor`` works too.

Invariants:

* **Numbers do not depend on the sharding.** A run's numbers depend only on (config, root
  seed, seed index) (see :mod:`pgsom.runner`), so the same runs give the same arrays whatever
  the executor, the number of workers or the shard sizes (``update_seconds``, a timing,
  excepted); tests compare a Dask ``LocalCluster`` with the process pool and a killed-and-
  resumed sweep with an uninterrupted one, array for array.
* **Shard count from the executor.** There are at least as many shards as the executor has
  worker slots (:func:`executor_slots`: the threads of a Dask cluster, a process pool's
  workers), so a 2-core driver still gives a 64-worker cluster 64 shards, and shards are small
  enough that each is about :data:`SHARD_SECONDS` of one worker's time at most
  (:data:`SHARD_WORK` run-episodes): a sweep killed at any moment loses at most the shards in
  flight, i.e. about ``SHARD_SECONDS`` of work per worker. Every finished shard's runs are
  saved at once (``as_completed``), atomically, so a rerun trains only the missing runs.
* **Provenance from the worker.** The worker (:func:`train_shard`) refuses a shard whose
  driver runs other training code (:func:`pgsom.runner.training_source_version`, which covers
  the training modules' source, numpy / torch / gymnasium / python versions and the numerics
  mode) or other numerics, and returns with its results its own code version, numerics
  signature and :func:`worker_environment` (library versions, git commit, CPU, hostname, pid);
  the driver checks them again (:class:`CodeVersionMismatch`) and stores the *worker's*
  environment in each run's cache metadata.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import numpy as np
from tqdm import tqdm

from pgsom import runner
from pgsom.config import RunConfig
from pgsom.runner import RESULT_FIELDS, NumericsMismatch, RunSpec

__all__ = [
    "SHARD_SECONDS", "SHARD_WORK", "CodeVersionMismatch", "NumericsMismatch", "SchedulerError",
    "ShardResult", "METHOD_COST", "worker_environment", "train_shard", "executor_slots", "run_work",
    "plan_shards", "plan_sweep", "run_key", "run_many", "run_sweep", "executor_for",
    "close_executor", "measure_shards",
]

SHARD_SECONDS = 30.0
"""Most work (seconds of one worker) a shard should hold: what an interrupted sweep may lose
per worker."""

SHARD_WORK = 75_000
"""Work (:func:`run_work`: ``pg``-equivalent run-episodes) per shard at most, for the resume
bound :data:`SHARD_SECONDS`. With the fused kernel a ``pg`` run-episode costs about 0.094 ms of
one core (24 runs x 510 episodes of each method, CPU seconds of
:func:`pgsom.runner.make_train`), so a full shard is about 7 CPU-s, well within the bound;
``python -m pgsom.sweep --seeds 6`` re-measures it (each shard's runs, work and CPU seconds).
Batching is no longer what shards trade against: with the kernel, 132 runs in 4 shards cost
the same CPU time as in 2 (21.2 against 22.2 CPU-s); small shards also shorten the tail in
which one worker finishes the last shard while the others wait (with shards twice this size
the full reproduce's last 2 % of runs took 11 of its 94 s of training).

Pass a larger ``shard_work`` to :func:`run_many` for fewer, larger shards."""

METHOD_COST = {"pg": 1.0, "rk": 0.8, "adam": 2.0, "hessian": 2.9, "npg": 12.3}
"""CPU cost of a run-episode of each method relative to ``pg`` (fused kernel, 24 runs x 510
episodes each, root seed 1, one process: pg 0.094 ms, rk 0.075, adam 0.185, hessian 0.270, npg
1.15). Methods that learn to 500-step episodes cost more per episode; npg runs ten
Fisher-vector products."""


class CodeVersionMismatch(RuntimeError):
    """A worker runs other training code (or libraries, or numerics) than the driver."""


class SchedulerError(ValueError):
    """The ``scheduler`` parameter names no Dask scheduler that can be reached."""


class ShardResult(NamedTuple):
    """What a worker returns for a shard: results in the shard's order and its provenance."""

    results: list[dict[str, np.ndarray]]
    code_version: str
    numerics: str
    environment: dict[str, Any]


_ENVIRONMENT: dict[str, Any] = {}


def worker_environment() -> dict[str, Any]:
    """:func:`pgsom.store.environment_info` of this process (read once per process: it runs
    git) plus its ``hostname`` and ``pid``."""
    from pgsom.store import environment_info

    if _ENVIRONMENT.get("pid") != os.getpid():
        _ENVIRONMENT.clear()
        _ENVIRONMENT.update(environment_info(), pid=os.getpid())
    env = dict(_ENVIRONMENT)
    env["hostname"] = socket.gethostname()
    env["pid"] = os.getpid()
    return env


def _describe_worker() -> str:
    import platform

    import torch

    return (f"worker {socket.gethostname()} (pid {os.getpid()}, "
            f"pgsom from {os.path.dirname(runner.__file__)}, "
            f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__})")


def train_shard(runs: Sequence[RunSpec], expected_version: str, expected_numerics: str,
                progress=False) -> ShardResult:
    """The shard worker: train ``runs`` together (in this process or thread, one kernel thread)
    and return them with its provenance.

    Refuses (before training) a shard from a driver whose
    :func:`pgsom.runner.training_source_version` (``expected_version``) or numerics signature
    (``expected_numerics``) differs from this process's: :class:`CodeVersionMismatch` /
    :class:`pgsom.runner.NumericsMismatch`; the runs would be cached under the driver's key.
    """
    from pgsom import numerics

    own_numerics = numerics.signature()
    if own_numerics != expected_numerics:
        raise NumericsMismatch(
            f"{_describe_worker()} computes under numerics {own_numerics!r}, the driver under "
            f"{expected_numerics!r}: start the workers in the same mode (export the variables of "
            "pgsom.numerics.PORTABLE_ENV before they start: eval \"$(python pgsom/numerics.py "
            "--shell)\", or PGSOM_NUMERICS=native on both)")
    version = runner.training_source_version()
    if version != expected_version:
        raise CodeVersionMismatch(
            f"{_describe_worker()} has training code version {version[:16]}..., the driver "
            f"{expected_version[:16]}...: the training modules ({', '.join(m.name for m in runner.training_modules())}) "
            "or the library versions differ. Install the driver's checkout on the workers "
            "(same commit, pip install -r requirements.lock and pip install -e '.[dask]')")
    results = runner.train_runs(runs, progress)  # the numerics were checked above
    return ShardResult(results, version, own_numerics, worker_environment())


# --------------------------------------------------------------------------- planning


def executor_slots(executor: cf.Executor | None, max_workers: int | None = None) -> int:
    """Worker slots of ``executor``: what the shard count is scaled to.

    A Dask executor (``Client.get_executor()``, which holds its client as ``_client``): the
    total threads of the cluster's workers now (``client.nthreads()``); a
    ``ProcessPoolExecutor`` / ``ThreadPoolExecutor``: its ``_max_workers``; no executor (the
    default local pool) or anything else: ``max_workers``, else this machine's cores.
    A Dask cluster with no worker yet (still queued in SLURM) counts ``max_workers`` or 1:
    shards are sized by :data:`SHARD_WORK` anyway.
    """
    fallback = max_workers or os.cpu_count() or 1
    client = getattr(executor, "_client", None)
    if client is not None and hasattr(client, "nthreads"):
        threads = sum(int(n) for n in client.nthreads().values())
        return threads if threads >= 1 else (max_workers or 1)
    n = getattr(executor, "_max_workers", None)
    if executor is not None and isinstance(n, int) and n >= 1:
        return n
    return fallback


def run_work(run: RunSpec) -> float:
    """Work estimate of a run in ``pg`` run-episodes of the fused CartPole kernel: (training +
    evaluation episodes) x :data:`METHOD_COST` of its method on the kernel; on a benchmark
    trained elsewhere x its :attr:`~pgsom.benchmarks.Benchmark.episode_cost` instead, the same
    for every method (the environment's steps dominate there), so that a shard stays within
    :data:`SHARD_SECONDS` on every benchmark while holding a few runs to step together."""
    from pgsom.benchmarks import BENCHMARKS

    c = run.config
    b = BENCHMARKS.get(c.env_id)
    if b is not None and b.episode_cost is not None and c.backend == b.backend:
        cost = b.episode_cost
    else:
        cost = METHOD_COST.get(c.algo.method, max(METHOD_COST.values()))
    return (int(c.episodes) + int(c.eval_episodes)) * cost


def plan_shards(runs: Sequence[RunSpec], n_shards: int) -> list[list[RunSpec]]:
    """Split runs that can share a batch into at most ``n_shards`` shards of about equal
    :func:`run_work`, variant-major: runs ordered by variant (first appearance), then root seed
    and seed index, cut into contiguous pieces, so a shard holds few variants with many seeds
    each (its batched updates are per variant: fewer, larger groups train faster per run)."""
    runs = list(runs)
    if not runs:
        return []
    order: dict = {}
    for r in runs:
        order.setdefault(r.config.algo, len(order))
    ordered = sorted(runs, key=lambda r: (order[r.config.algo], r.root_seed, r.seed_index))
    n_shards = max(1, min(int(n_shards), len(ordered)))
    costs = [run_work(r) for r in ordered]
    per = sum(costs) / n_shards
    shards: list[list[RunSpec]] = [[] for _ in range(n_shards)]
    done = 0.0
    for r, c in zip(ordered, costs):  # a run goes to the piece its work's midpoint falls in
        shards[min(n_shards - 1, int((done + c / 2) / per))].append(r)
        done += c
    return [s for s in shards if s]


def plan_sweep(runs: Sequence[RunSpec], slots: int, *, shard_work: float = SHARD_WORK,
               runs_per_shard: int | None = None) -> list[list[RunSpec]]:
    """Shards of ``runs``: runs that cannot share a batch (other environment, backend, hidden
    sizes or budget) go to different shards; each such group is cut by :func:`plan_shards` into
    at least ``slots`` shards (every worker busy), at least ``work / shard_work`` (the resume
    bound: no shard above ``shard_work``, up to one run's work) and at least
    ``len / runs_per_shard`` when given, never more shards than runs; the count from the
    first two is rounded up to a multiple of ``slots`` (equal shards finish together)."""
    groups: dict[tuple, list[RunSpec]] = {}
    for r in runs:
        c = r.config
        groups.setdefault((c.env_id, c.backend, c.hidden, c.episodes, c.eval_episodes), []).append(r)
    shards = []
    for group in groups.values():
        work = sum(run_work(r) for r in group)
        n = max(slots, math.ceil(work / shard_work))
        n = slots * math.ceil(n / slots)  # a multiple of the slots: no worker idles at the end
        if runs_per_shard is not None:
            n = max(n, math.ceil(len(group) / runs_per_shard))
        planned = plan_shards(group, n)
        if runs_per_shard is not None:  # uneven costs can put more cheap runs in a piece: cut it
            planned = [s[k : k + runs_per_shard] for s in planned for k in range(0, len(s), runs_per_shard)]
        shards += planned
    return shards


def run_key(run: RunSpec, code_version: str | None = None) -> str:
    """Cache key of ``run``: its :meth:`RunSpec.cache_config` and the training code version."""
    from pgsom.store import content_key

    return content_key(run.cache_config(), code_version or runner.training_source_version())


POOL_PRELOAD = ("pgsom.sweep", "pgsom.runner", "pgsom.kernels.fused")
"""Modules the local pool's fork server imports once (torch, numba and the compiled kernels
with them): its workers are forked from it with these already loaded."""


def _default_executor(n_workers: int) -> cf.Executor:
    """The local process pool: ``forkserver`` workers where the platform has it, ``spawn``
    otherwise. A fork server is a fresh interpreter (started with this process's environment,
    so with its numerics mode) that imports :data:`POOL_PRELOAD` once; each worker is forked
    from it, already holding torch, numba and the kernels, so a pool starts in a fraction of
    a second after the first one of a process, instead of a spawn worker's import of several
    seconds per worker and pool. The workers never fork a process that has run torch or
    threads (the server has only imported), which is what makes plain ``fork`` unsafe here."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(POOL_PRELOAD))
    else:  # pragma: no cover - Windows
        ctx = multiprocessing.get_context("spawn")
    return cf.ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx)


# --------------------------------------------------------------------------- running


def _positive(name: str, value: Any, what: str, *, optional: bool) -> None:
    if optional and value is None:
        return
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1):
        extra = " or None" if optional else ""
        raise ValueError(f"{name} must be an int >= 1{extra} ({what}), got {value!r}")


def run_many(runs: Sequence[RunSpec], *, store=None, executor: cf.Executor | None = None,
             max_workers: int | None = None, shard_work: int = SHARD_WORK,
             runs_per_shard: int | None = None, progress: bool = True) -> list[dict[str, np.ndarray]]:
    """Train (or load from ``store``) every run of ``runs``; return their results in order.

    All missing runs are planned together (:func:`plan_sweep`) and submitted to ``executor``
    at once (None: this machine, ``max_workers`` cores, every core by default: fused-kernel
    runs on that many threads of this process, other backends in a local process pool of that
    many processes, and in this process alone when one worker or one shard suffices). Each
    shard's runs are saved to
    ``store`` as soon as the shard finishes, with the worker's environment in the metadata, so
    a sweep interrupted at any point loses only the shards in flight and a rerun trains only
    what is missing. Runs with the same cache key are trained once. A worker error (e.g.
    :class:`CodeVersionMismatch`) cancels the shards not yet started and is raised after the
    shards already finished are saved.
    """
    _positive("max_workers", max_workers, "worker processes; None uses every core", optional=True)
    _positive("shard_work", shard_work, "run-episodes per shard at most", optional=False)
    _positive("runs_per_shard", runs_per_shard, "runs per shard at most", optional=True)
    runs = list(runs)
    if not all(isinstance(r, RunSpec) for r in runs):
        raise TypeError("runs must be a sequence of pgsom.runner.RunSpec")
    from pgsom import numerics

    numerics.warn_if_outside()
    version = runner.training_source_version()
    keys = [run_key(r, version) for r in runs]
    results: dict[str, dict[str, np.ndarray]] = {}
    todo: dict[str, RunSpec] = {}
    for r, key in zip(runs, keys):
        if key in results or key in todo:
            continue
        cached = store.get_or_none(key) if store is not None else None
        if cached is not None:
            results[key] = cached[0]
        else:
            todo[key] = r
    if todo:
        _train_missing(list(todo.values()), store, version, executor, max_workers, shard_work,
                       runs_per_shard, progress, results)
    return [results[k] for k in keys]


def _train_missing(todo, store, version, executor, max_workers, shard_work, runs_per_shard,
                   progress, results) -> None:
    from pgsom import numerics

    slots = executor_slots(executor, max_workers)
    shards = plan_sweep(todo, slots, shard_work=shard_work, runs_per_shard=runs_per_shard)
    own = executor is None and len(shards) > 1 and slots > 1
    threaded = own and all(r.config.backend == "fused" for r in todo)
    if threaded:  # the kernels release the GIL: threads share the cores, nothing to start or pickle
        pool = cf.ThreadPoolExecutor(min(slots, len(shards)), thread_name_prefix="pgsom-shard")
    else:
        pool = _default_executor(min(slots, len(shards))) if own else executor
    stop = threading.Event()  # set when the sweep is abandoned: threaded shards stop after a round
    expected = numerics.signature()
    where = ("this process" if pool is None else f"{min(slots, len(shards))} threads" if threaded
             else f"{slots} worker slot(s)")
    report = progress if callable(progress) else None  # progress(shard, shards, shard_runs, done, rounds)
    bar = tqdm(total=sum(len(s) for s in shards), desc=f"runs ({len(shards)} shards, {where})",
               disable=not progress or report is not None, unit="run")

    def hook(k: int):
        inner = partial(report, k, len(shards), len(shards[k])) if report is not None else None
        if threaded:
            return partial(_stoppable, stop, inner)
        return inner or False
    saved: set[int] = set()

    def finish(k: int, out: ShardResult) -> None:
        _save(shards[k], out, store, version, expected, results)
        saved.add(k)
        bar.update(len(shards[k]))

    try:
        if pool is None:
            for k, shard in enumerate(shards):
                label = hook(k) or (f"shard {k + 1}/{len(shards)}" if progress else False)
                finish(k, train_shard(shard, version, expected, label))
        else:
            futures = {pool.submit(train_shard, shard, version, expected, hook(k)): k
                       for k, shard in enumerate(shards)}
            try:
                for fut in cf.as_completed(futures):
                    finish(futures[fut], fut.result())
            except BaseException:
                stop.set()
                for fut in futures:
                    fut.cancel()
                for fut, k in futures.items():  # keep what finished meanwhile
                    if k not in saved and fut.done() and not fut.cancelled() and fut.exception() is None:
                        try:
                            finish(k, fut.result())
                        except Exception:
                            pass
                raise
    finally:
        bar.close()
        if own:
            stop.set()  # a shard still running (after an error) stops at its next round
            pool.shutdown(cancel_futures=True)


class ShardCancelled(Exception):
    """A threaded shard stopped early because its sweep was abandoned (an error or an
    interruption in the driver); nothing of it is kept."""


def _stoppable(stop: threading.Event, inner, done: int, rounds: int) -> None:
    """The progress callback of a threaded shard: stops it (:class:`ShardCancelled`) once
    ``stop`` is set, else reports to ``inner`` (if any)."""
    if stop.is_set():
        raise ShardCancelled(f"shard stopped after {done} of {rounds} rounds: its sweep was abandoned")
    if inner is not None:
        inner(done, rounds)


def _save(shard, out, store, version, expected_numerics, results) -> None:
    """Check a worker's answer for ``shard`` and keep (and store) its runs."""
    if not isinstance(out, ShardResult):
        raise TypeError(f"a worker returned {type(out).__name__}, not a pgsom.sweep.ShardResult: "
                        "the workers run another pgsom")
    env = out.environment
    who = f"worker {env.get('hostname')} (pid {env.get('pid')})"
    if out.code_version != version:
        raise CodeVersionMismatch(
            f"{who} trained with code version {out.code_version[:16]}..., the driver has "
            f"{version[:16]}...: results refused. Install the driver's checkout and lock file on "
            "the workers")
    if out.numerics != expected_numerics:
        raise NumericsMismatch(f"{who} computed under numerics {out.numerics!r}, the driver under "
                               f"{expected_numerics!r}: results refused")
    if len(out.results) != len(shard):
        raise RuntimeError(f"{who} returned {len(out.results)} results for a shard of {len(shard)} runs")
    for run, res in zip(shard, out.results):
        key = run_key(run, version)
        results[key] = res
        if store is not None:
            meta = {"config": run.cache_config(), "variant": run.variant, "code_version": version,
                    "fields": RESULT_FIELDS, "environment": env}
            store.save(key, res, meta)


def run_sweep(
    variants: Mapping[str, RunConfig],
    n_seeds: int,
    *,
    root_seed: int = 0,
    store=None,
    executor: cf.Executor | None = None,
    max_workers: int | None = None,
    runs_per_shard: int | None = None,
    shard_work: int = SHARD_WORK,
    progress: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """Train (or load from ``store``) ``n_seeds`` seeds of every variant (:func:`run_many`).

    Returns ``{variant: {field: array (n_seeds, ...)}}``, seeds ``0 .. n_seeds - 1`` of
    ``root_seed``.
    """
    if not (isinstance(n_seeds, int) and not isinstance(n_seeds, bool) and n_seeds >= 1):
        raise ValueError(f"n_seeds must be an int >= 1, got {n_seeds!r}")
    if not variants:
        raise ValueError("variants must name at least one variant")
    runs = [RunSpec(name, cfg, i, root_seed) for name, cfg in variants.items() for i in range(n_seeds)]
    flat = run_many(runs, store=store, executor=executor, max_workers=max_workers,
                    shard_work=shard_work, runs_per_shard=runs_per_shard, progress=progress)
    out = {}
    for k, name in enumerate(variants):
        mine = flat[k * n_seeds : (k + 1) * n_seeds]
        out[name] = {f: np.stack([r[f] for r in mine]) for f in RESULT_FIELDS}
    return out


# --------------------------------------------------------------------------- Dask


def executor_for(scheduler: str | None, *, timeout_s: float = 10.0) -> cf.Executor | None:
    """The executor of a notebook's ``scheduler`` parameter.

    None: None (the local process pool of :func:`run_many`). An address such as
    ``"tcp://10.0.0.5:8786"``: ``distributed.Client(address).get_executor()`` (close it with
    :func:`close_executor`). Raises :class:`SchedulerError` (a ValueError) naming the parameter,
    the value and what is allowed when the value is not a string or no scheduler answers there
    within ``timeout_s`` seconds, and ImportError naming the extra when Dask is not installed.
    """
    allowed = ("None (the local process pool) or the address of a running Dask scheduler, "
               "e.g. 'tcp://10.0.0.5:8786'")
    if scheduler is None:
        return None
    if not (isinstance(scheduler, str) and scheduler.strip()):
        raise SchedulerError(f"scheduler must be {allowed}; got {scheduler!r}")
    try:
        from distributed import Client
    except ImportError as e:
        raise ImportError(f"scheduler={scheduler!r} needs Dask: pip install -e '.[dask]' "
                          f"(dask and distributed, pinned in requirements.lock); {e}") from None
    address = scheduler.strip()
    try:
        _probe(address, timeout_s)  # first: a Client that fails to connect leaves noise at exit
        client = Client(address, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        raise SchedulerError(
            f"scheduler={scheduler!r}: no Dask scheduler answered within {timeout_s:g} s "
            f"({type(e).__name__}: {e}); scheduler must be {allowed} (start one with "
            "`dask scheduler` or dask-jobqueue, see the README's 'Running on a cluster')") from None
    return client.get_executor()


def _probe(address: str, timeout_s: float) -> None:
    """Open and close one connection to the scheduler at ``address`` (OSError if none answers
    within ``timeout_s``), in a thread of its own: a notebook's kernel already runs an event loop."""
    import asyncio

    from distributed.comm import connect

    async def probe() -> None:
        comm = await connect(address, timeout=timeout_s)
        await comm.close()

    with cf.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, probe()).result()


def close_executor(executor: cf.Executor | None) -> None:
    """Close what :func:`executor_for` opened (the Dask client); None is a no-op."""
    if executor is None:
        return
    client = getattr(executor, "_client", None)
    executor.shutdown(wait=False)
    if client is not None:
        client.close()


# --------------------------------------------------------------------------- measuring


def measure_shards(seeds: int = 6, *, episodes: int = 500, eval_episodes: int = 10,
                   shard_work: int = SHARD_WORK, slots: int = 2, log=print) -> list[dict[str, Any]]:
    """Train the :func:`plan_sweep` shards of every variant x ``seeds`` seeds in this process,
    one after another, and report each shard's runs, variants, work and CPU seconds: checks
    :data:`SHARD_WORK` against :data:`SHARD_SECONDS` on this machine
    (``python -m pgsom.sweep --seeds 6``). Seeds are indices 10 000+ of the powered root seed,
    apart from the protocols' runs; nothing is cached."""
    import torch

    from pgsom.experiments import PROTOCOLS, make_variants

    torch.set_num_threads(1)
    configs = make_variants(None, episodes=episodes, eval_episodes=eval_episodes)
    root = PROTOCOLS["powered"].root_seed
    runs = [RunSpec(v, c, 10_000 + i, root) for v, c in configs.items() for i in range(seeds)]
    shards = plan_sweep(runs, slots, shard_work=shard_work)
    from pgsom import numerics

    version, expected = runner.training_source_version(), numerics.signature()
    rows = []
    for k, shard in enumerate(shards):
        c0 = time.process_time()
        train_shard(shard, version, expected)
        cpu = time.process_time() - c0
        rows.append({"shard": k + 1, "runs": len(shard), "variants": len({r.variant for r in shard}),
                     "work": sum(run_work(r) for r in shard), "cpu_s": cpu})
        log(f"shard {k + 1}/{len(shards)}: {len(shard)} runs, {rows[-1]['variants']} variants, "
            f"work {rows[-1]['work']:.0f}, {cpu:.1f} CPU-s")
    total = sum(r["cpu_s"] for r in rows)
    log(f"{len(runs)} runs x {episodes + eval_episodes} episodes in {len(shards)} shards: {total:.1f} "
        f"CPU-s, {len(runs) * (episodes + eval_episodes) / total:.0f} run-episodes/CPU-s, largest shard "
        f"{max(r['cpu_s'] for r in rows):.1f} CPU-s (bound {SHARD_SECONDS:g} s)")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pgsom.sweep",
                                     description="CPU seconds of each shard of a sweep of every variant "
                                                 "(checks SHARD_WORK on this machine)")
    parser.add_argument("--seeds", type=int, default=6, help="seeds per variant (default 6)")
    parser.add_argument("--episodes", type=int, default=500, help="training episodes (default 500)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes (default 10)")
    parser.add_argument("--shard-work", type=int, default=SHARD_WORK,
                        help=f"run-episodes per shard at most (default {SHARD_WORK})")
    args = parser.parse_args(argv)
    for name in ("seeds", "episodes", "shard_work"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    measure_shards(args.seeds, episodes=args.episodes, eval_episodes=args.eval_episodes,
                   shard_work=args.shard_work)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
