"""pgsom.sweep: shard count from the executor, shard sizes within the resume bound, worker
provenance and code-version refusal, a Dask LocalCluster giving the process pool's bytes, a sweep
killed with SIGKILL and resumed giving an uninterrupted sweep's bytes, scheduler errors."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import distributed
import numpy as np
import pytest

from pgsom import experiments as ex
from pgsom import numerics, runner, sweep
from pgsom.config import RunConfig
from pgsom.variants import variant
from pgsom.runner import RESULT_FIELDS, RunSpec
from pgsom.store import ResultStore

ROOT = Path(__file__).resolve().parent.parent
DETERMINISTIC = [f for f in RESULT_FIELDS if f != "update_seconds"]  # update_seconds is timing

VARIANTS_SRC = """
from pgsom.config import RunConfig
from pgsom.variants import variant
SHORT = RunConfig(episodes=20, eval_episodes=2)
VARIANTS = dict([variant("pg", base=SHORT), variant("hessian", "clip", base=SHORT),
                 variant("rk", base=SHORT)])
"""
_ns: dict = {}
exec(VARIANTS_SRC, _ns)
VARIANTS = _ns["VARIANTS"]
N_SEEDS, ROOT_SEED = 4, 11


def assert_same_bytes(a, b):
    """Every deterministic array of every variant: same dtype, shape and bytes."""
    assert list(a) == list(b)
    for name in a:
        for f in DETERMINISTIC:
            x, y = np.asarray(a[name][f]), np.asarray(b[name][f])
            assert (x.dtype, x.shape) == (y.dtype, y.shape), (name, f)
            assert x.tobytes() == y.tobytes(), (name, f)


@pytest.fixture(scope="module")
def reference():
    """The uninterrupted sweep, trained in this process."""
    return sweep.run_sweep(VARIANTS, N_SEEDS, root_seed=ROOT_SEED, max_workers=1, progress=False)


class InlineExecutor(cf.Executor):
    """Runs each submitted shard at once in this process; claims ``slots`` workers."""

    def __init__(self, slots: int, answer=None):
        self._max_workers = slots
        self.shards: list[list[RunSpec]] = []
        self.answer = answer  # optional rewrite of the worker's ShardResult

    def submit(self, fn, *args, **kwargs):
        self.shards.append(list(args[0]))
        fut = cf.Future()
        try:
            out = fn(*args, **kwargs)
            fut.set_result(self.answer(out) if self.answer else out)
        except BaseException as e:  # noqa: BLE001 (a future carries any error)
            fut.set_exception(e)
        return fut


# --------------------------------------------------------------------------- shards


def test_shard_count_follows_the_executor_not_the_driver(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # a 2-core driver
    tiny = RunConfig(episodes=2, eval_episodes=0)
    fake = InlineExecutor(64)
    assert sweep.executor_slots(fake) == 64
    res = sweep.run_sweep({"pg": tiny}, 80, executor=fake, progress=False)
    assert len(fake.shards) >= 64
    trained = sorted(r.seed_index for s in fake.shards for r in s)
    assert trained == list(range(80))  # every run once
    alone = sweep.run_sweep({"pg": tiny}, 80, max_workers=1, progress=False)
    assert_same_bytes(res, alone)

    class Client:  # what Client.get_executor() holds: 64 single-threaded workers
        def nthreads(self):
            return {f"tcp://10.0.0.{i}:4000": 1 for i in range(64)}

    dask_like = type("ClientExecutor", (), {"_client": Client()})()
    assert sweep.executor_slots(dask_like) == 64
    assert sweep.executor_slots(None) == 2 and sweep.executor_slots(None, max_workers=5) == 5


def test_shards_respect_the_work_bound_and_keep_variants_together():
    configs = ex.make_variants(None, episodes=500, eval_episodes=10)  # the powered protocol
    runs = [RunSpec(v, c, i, 20250050) for v, c in configs.items() for i in range(50)]
    shards = sweep.plan_sweep(runs, slots=2)
    biggest_run = max(sweep.run_work(r) for r in runs)
    assert all(sum(sweep.run_work(r) for r in s) <= sweep.SHARD_WORK + biggest_run for s in shards)
    assert sorted((r.variant, r.seed_index) for s in shards for r in s) == \
        sorted((r.variant, r.seed_index) for r in runs)
    # variant-major cuts: each cut splits at most one variant, so variants stay batched together
    assert sum(len({r.variant for r in s}) for s in shards) <= len(configs) + len(shards) - 1
    assert min(len(s) for s in shards) >= 10  # not so small that batching is lost
    assert len(sweep.plan_sweep(runs, slots=64)) >= 64
    with pytest.raises(ValueError, match="shard_work must be an int >= 1"):
        sweep.run_many(runs[:1], shard_work=0)


def test_measure_shards_reports_every_shard_of_the_plan():
    lines = []
    rows = sweep.measure_shards(1, episodes=2, eval_episodes=0, shard_work=5, log=lines.append)
    assert sum(r["runs"] for r in rows) == len(ex.all_variants())
    assert all(r["work"] <= 5 + 2 * max(sweep.METHOD_COST.values()) and r["cpu_s"] >= 0 for r in rows)
    assert len(lines) == len(rows) + 1 and "CPU-s" in lines[-1]


# --------------------------------------------------------------------------- provenance


def test_worker_refuses_another_code_version_and_the_driver_refuses_its_results(tmp_path, monkeypatch):
    runs = [RunSpec("pg", VARIANTS["pg"], 0)]

    def no_training(*args, **kwargs):
        raise AssertionError("a refused shard must not be trained")

    with monkeypatch.context() as m:
        m.setattr(runner, "train_runs", no_training)
        with pytest.raises(sweep.CodeVersionMismatch, match="training code version"):
            sweep.train_shard(runs, "0" * 64, numerics.signature())
        with pytest.raises(runner.NumericsMismatch, match="computes under numerics"):
            sweep.train_shard(runs, runner.training_source_version(), "native {}")

    # a worker that trained with other code (e.g. an older pgsom without the worker check)
    store = ResultStore(tmp_path)
    other = InlineExecutor(2, answer=lambda out: out._replace(code_version="f" * 64))
    with pytest.raises(sweep.CodeVersionMismatch, match="results refused"):
        sweep.run_sweep(VARIANTS, 2, store=store, executor=other, progress=False)
    assert store.keys() == []


def test_protocols_are_submitted_together(tmp_path, monkeypatch):
    calls = []
    original = sweep.run_many

    def spy(runs, **kwargs):
        calls.append({r.root_seed for r in runs})
        return original(runs, **kwargs)

    monkeypatch.setattr(sweep, "run_many", spy)
    fake = InlineExecutor(1)  # one worker: all five runs fit one shard
    data = ex.load_experiment(["paper", "powered"], n_seeds={"paper": 2, "powered": 3}, variants=["pg"],
                              episodes=2, eval_episodes=0, cache_dir=tmp_path, executor=fake, log=None)
    roots = {ex.PROTOCOLS["paper"].root_seed, ex.PROTOCOLS["powered"].root_seed}
    assert calls == [roots]  # one plan for both protocols
    assert any({r.root_seed for r in s} == roots for s in fake.shards)  # shards mix protocols
    assert data.returns("powered", "pg").shape == (3, 2) and data.returns("paper", "pg").shape == (2, 2)


# --------------------------------------------------------------------------- Dask


def test_a_local_fused_sweep_trains_on_threads_of_this_process(tmp_path, reference, monkeypatch):
    """The default local sweep of fused-kernel runs starts no worker process: its shards run
    on max_workers threads of this process (one shard per thread at a time) and give the
    same bytes; a sweep of another backend goes to the process pool."""
    monkeypatch.setattr(sweep, "_default_executor", lambda n: pytest.fail("started a process pool"))
    threads = []
    original = runner.train_runs

    def spy(runs, progress=False, expected_numerics=None, threads_=1):
        import threading

        threads.append(threading.current_thread().name)
        return original(runs, progress, expected_numerics, threads_)

    monkeypatch.setattr(runner, "train_runs", spy)
    store = ResultStore(tmp_path / "cache")
    here = sweep.run_sweep(VARIANTS, N_SEEDS, root_seed=ROOT_SEED, store=store, max_workers=2,
                           runs_per_shard=3, progress=False)
    assert_same_bytes(here, reference)
    runs = [RunSpec(v, c, i, ROOT_SEED) for v, c in VARIANTS.items() for i in range(N_SEEDS)]
    assert len(threads) == len(sweep.plan_sweep(runs, 2, runs_per_shard=3)) > 2
    assert len(set(threads)) == 2
    assert all(name.startswith("pgsom-shard") for name in threads)
    assert {store.load(k)[1]["environment"]["pid"] for k in store.keys()} == {os.getpid()}
    other = {"pg": RunConfig(episodes=1, eval_episodes=0, backend="gymnasium")}
    with pytest.raises(pytest.fail.Exception, match="started a process pool"):
        sweep.run_sweep(other, 2, max_workers=2, progress=False)


def test_an_error_in_one_threaded_shard_stops_the_others_promptly(monkeypatch):
    """A shard that fails ends the threaded sweep: the shard running beside it stops after its
    current round (ShardCancelled), not after all its episodes, and the error is raised."""
    import threading

    started = threading.Event()
    rounds_done = []
    original = runner.train_runs

    def train(runs, progress=False, expected_numerics=None, threads_=1):
        if runs[0].seed_index == 0:  # the failing shard: waits until the other one trains
            assert started.wait(60)
            raise RuntimeError("boom in shard 0")

        def seen(done, rounds):
            rounds_done.append(done)
            started.set()
            progress(done, rounds)
            time.sleep(0.01)

        return original(runs, seen, expected_numerics, threads_)

    monkeypatch.setattr(runner, "train_runs", train)
    long = {"pg": RunConfig(episodes=2000, eval_episodes=0)}
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="boom in shard 0"):
        sweep.run_sweep(long, 2, max_workers=2, runs_per_shard=1, progress=False)
    assert 1 <= max(rounds_done) < 2000
    assert time.perf_counter() - t0 < 30


def test_dask_local_cluster_gives_the_process_pools_bytes(tmp_path, reference):
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        pooled = sweep.run_sweep(VARIANTS, N_SEEDS, root_seed=ROOT_SEED, executor=pool,
                                 runs_per_shard=3, progress=False)
    store = ResultStore(tmp_path / "cache")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        executor = sweep.executor_for(cluster.scheduler_address)
        try:
            assert sweep.executor_slots(executor) == 2
            dask = sweep.run_sweep(VARIANTS, N_SEEDS, root_seed=ROOT_SEED, store=store,
                                   executor=executor, runs_per_shard=3, progress=False)
            worker_pids = set(executor._client.run(os.getpid).values())
        finally:
            sweep.close_executor(executor)
        kw = dict(n_seeds={"paper": 2}, variants=["pg", "rk"], episodes=4, eval_episodes=1, log=None)
        on_cluster = ex.load_experiment(["paper"], cache_dir=tmp_path / "c1",
                                        scheduler=cluster.scheduler_address, **kw)
    here = ex.load_experiment(["paper"], cache_dir=tmp_path / "c2", max_workers=1, **kw)
    assert on_cluster.finals.equals(here.finals) and on_cluster.curves.equals(here.curves)
    assert_same_bytes(dask, pooled)
    assert_same_bytes(dask, reference)
    # each run's metadata names the worker that trained it, with the driver's code version
    version = runner.training_source_version()
    metas = [store.load(k)[1] for k in store.keys()]
    assert len(metas) == len(VARIANTS) * N_SEEDS
    assert {m["environment"]["pid"] for m in metas} <= worker_pids
    assert os.getpid() not in worker_pids
    assert {m["environment"]["hostname"] for m in metas} == {socket.gethostname()}
    assert {m["code_version"] for m in metas} == {version}
    assert all(m["environment"]["numerics"]["numerics_mode"] == numerics.mode() for m in metas)


def test_unreachable_scheduler_is_a_clear_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with pytest.raises(sweep.SchedulerError, match=rf"scheduler='{address}'.*tcp://10.0.0.5:8786"):
        sweep.executor_for(address, timeout_s=2)
    assert time.perf_counter() - t0 < 30
    assert sweep.executor_for(None) is None
    with pytest.raises(sweep.SchedulerError, match="scheduler must be None .* got 8786"):
        sweep.executor_for(8786)
    with pytest.raises(ValueError, match="scheduler must be None .* got 8786"):
        ex.validate_parameters(scheduler=8786)
    p = ex.validate_parameters(protocols="paper", scheduler=" tcp://h:8786 ")
    assert ex.experiment_kwargs(p)["scheduler"] == "tcp://h:8786"
    p = ex.validate_parameters(protocols="paper", scheduler=None)
    assert ex.experiment_kwargs(p)["scheduler"] is None


# --------------------------------------------------------------------------- resume

CHILD = VARIANTS_SRC + textwrap.dedent("""
    import sys, time
    from pgsom import runner, sweep
    from pgsom.store import ResultStore

    original = runner.train_runs

    def slow(runs, progress=False, expected_numerics=None, threads=1):  # slow shards: killed mid-way
        out = original(runs, progress, expected_numerics, threads)
        with open(sys.argv[2], "a") as f:  # runs trained so far
            f.write(f"{len(runs)}\\n")
        time.sleep(0.5)
        return out

    runner.train_runs = slow
    sweep.run_sweep(VARIANTS, %d, root_seed=%d, store=ResultStore(sys.argv[1]), max_workers=2,
                    runs_per_shard=2, progress=False)  # the default local sweep: 2 threads
    print("finished")
""")


def test_a_killed_sweep_resumes_to_the_same_bytes(tmp_path, monkeypatch, reference):
    store = ResultStore(tmp_path / "cache")
    total = len(VARIANTS) * N_SEEDS
    code = "import pgsom\n" + CHILD % (N_SEEDS, ROOT_SEED)
    marker = tmp_path / "trained.txt"
    proc = subprocess.Popen([sys.executable, "-c", code, str(store.root), str(marker)], cwd=ROOT,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(store.keys()) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the child and anything it started
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    saved = set(store.keys())
    assert 4 <= len(saved) < total
    # what the kill lost: at most the shards in flight (one per thread, 2 runs each), not
    # everything trained
    trained_before = sum(int(n) for n in marker.read_text().split())
    assert trained_before - len(saved) <= 4, (trained_before, len(saved))

    trained = []
    original = runner.train_runs

    def spy(runs, progress=False, expected_numerics=None, threads=1):
        trained.extend(runs)
        return original(runs, progress, expected_numerics, threads)

    monkeypatch.setattr(runner, "train_runs", spy)
    resumed = sweep.run_sweep(VARIANTS, N_SEEDS, root_seed=ROOT_SEED, store=store, max_workers=1,
                              progress=False)
    missing = {sweep.run_key(RunSpec(v, c, i, ROOT_SEED)) for v, c in VARIANTS.items()
               for i in range(N_SEEDS)} - saved
    assert sorted(sweep.run_key(r) for r in trained) == sorted(missing)  # only the missing runs
    assert_same_bytes(resumed, reference)
    monkeypatch.setattr(runner, "train_runs", None)  # everything is cached now
    assert_same_bytes(sweep.run_sweep(VARIANTS, N_SEEDS, root_seed=ROOT_SEED, store=store,
                                      progress=False), reference)
