"""``make reproduce``: run every notebook with papermill and check what each one writes.

    python -m pgsom.pipeline --profile full|quick [--only NAME ...] [--out DIR]
                             [--cache-dir DIR] [--set NAME=VALUE ...] [--log-output] [--jobs N]

Notebooks start in order (``derivations``, ``ablation``, ``main_results``, ``readings``,
``benchmarks``, ``statistics``), :data:`JOBS` (``--jobs``) at a time, each once the notebooks it
comes :attr:`~NotebookSpec.after` have finished (``main_results`` and ``benchmarks`` after
``ablation``, ``statistics`` after all but ``main_results``), with
kernel ``python3``, the repository root as working directory and a per-cell execution timeout;
their parameters come from the profile. ``ablation`` trains the main experiment's runs into the
results cache, the later notebooks load them from it. Every output is the same whatever
``--jobs`` (each notebook's numbers come from its seeds and the cache, not from timing).

Profiles:

* ``full`` (``make reproduce``): protocol ``paper`` (5 seeds) and ``powered`` (50 seeds),
  and for the claims report (``statistics``) also ``replication`` (50 more seeds), 500 episodes;
  the benchmarks study 3 seeds per protocol and benchmark (its pilot 3), each benchmark's own
  budget. Outputs go to ``figures/`` and ``paper/``, executed notebooks to
  ``paper/notebooks/``, and the README's generated section (Table 1 and the outputs table,
  between ``<!-- BEGIN OUTPUTS -->`` and ``<!-- END OUTPUTS -->``) is rewritten.
* ``quick`` (``make quick``): 2, 3 and 3 seeds, 8 episodes, every variant (the benchmarks 2
  seeds, 8 episodes). EVERYTHING it writes
  (figures, paper outputs, executed notebooks) goes under ``results/quick/`` (``--out``), so it
  never overwrites the committed full outputs; the README is not touched.

The pipeline fails loudly: a notebook that errors, or an expected output that was not written
by this run, stops it with a message naming the notebook and the file, and a non-zero exit; so
does an executed notebook with a figure cell that has no image (:func:`figure_cells_without_image`).
A bad parameter stops it with the notebook's one-line message (parameter, what it allows, value).

While a notebook trains, the terminal shows one line about every ``PROGRESS_EVERY_S`` seconds
per protocol: runs trained of the total and the time left (:class:`ProgressRelay`, fed by
the kernel through :data:`pgsom.experiments.PROGRESS_FILE_ENV`). Kernels are started with
CurveZMQ transport encryption (the kernelspec declares it), so they do not warn that they run
over TCP without encryption.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgsom.experiments import REPO_ROOT, resolve_path

__all__ = ["NotebookSpec", "Profile", "NOTEBOOKS", "PROFILES", "PipelineError", "run_pipeline", "JOBS",
           "readme_section", "main", "ProgressRelay", "PROGRESS_EVERY_S", "figure_cells_without_image"]

KERNEL = "python3"
PROGRESS_EVERY_S = 15.0
"""Seconds between two progress lines of one protocol (a shard's end is always reported)."""


class PipelineError(RuntimeError):
    """A notebook failed or did not write an expected output."""


@dataclass(frozen=True)
class NotebookSpec:
    """A notebook of the pipeline: its source, the outputs it must write (paths relative to
    the output root; ``*`` globs must match at least one file) and how the README names them."""

    name: str
    outputs: tuple[str, ...]
    readme_rows: tuple[tuple[tuple[str, ...], str], ...] = ()
    source: str | None = None  # default notebooks/<name>.ipynb
    after: tuple[str, ...] = ()
    """Notebooks (earlier in :data:`NOTEBOOKS`) this one starts after when they are selected:
    it reads their outputs, or loads runs they train into the cache (run together, both
    would train them)."""

    @property
    def path(self) -> Path:
        return resolve_path(self.source or f"notebooks/{self.name}.ipynb")


NOTEBOOKS: tuple[NotebookSpec, ...] = (
    NotebookSpec(
        "derivations",
        ("paper/derivations.csv", "figures/derivations_*.png", "figures/derivations_*.pdf"),
        ((("paper/derivations.csv", "figures/derivations_*.pdf", "figures/derivations_*.png"),
          "numerical checks of the paper's lemmas on a small MDP solved exactly (unbiasedness "
          "of the gradient and diagonal-Hessian estimators, Lemma 3.2, definiteness, ascent "
          "direction)"),),
    ),
    NotebookSpec(
        "ablation",
        ("paper/table1.csv", "paper/table1.md", "paper/table1.tex", "paper/final_returns.csv",
         "paper/curves.csv"),
        ((("paper/table1.csv", "paper/table1.md", "paper/table1.tex"),
          "Table 1: final-episode return per variant (paper's 12, adam, npg, clip attribution "
          "rows, the paper's likely versions rk@reuse and hessian@surrogate), per protocol n, mean, "
          "std, 95% t CI, beside the paper's mean and std"),
         (("paper/final_returns.csv",),
          "one row per (protocol, variant, seed): the env, the variant's method, stabiliser and reading, "
          "final-episode return, eval return, episodes to reach 200 and 400 (empty if never), "
          "diverged"),
         (("paper/curves.csv",),
          "one row per (protocol, variant, seed, episode): return and cumulative env steps "
          "(the env and the variant's parts: final_returns.csv)")),
    ),
    NotebookSpec(
        "main_results",
        ("figures/fig2_learning_curves.pdf", "figures/fig2_learning_curves.png",
         "figures/fig3_final_returns.pdf", "figures/fig3_final_returns.png"),
        ((("figures/fig2_learning_curves.pdf", "figures/fig2_learning_curves.png"),
          "Figure 2: return vs episode and vs env steps (PG, Hessian PG, RK, adam, npg), mean "
          "and 95% CI band, thresholds 200 and 400; panel (b)'s drawing rule: section Figures "
          "below"),
         (("figures/fig3_final_returns.pdf", "figures/fig3_final_returns.png"),
          "Figure 3: final-episode return of every seed of every variant over its mean and "
          "95% CI, per protocol, with the paper's mean and std")),
        after=("ablation",),
    ),
    NotebookSpec(
        "readings",
        ("paper/readings.csv", "paper/readings.md", "figures/fig5_readings.pdf",
         "figures/fig5_readings.png"),
        ((("paper/readings.csv", "paper/readings.md", "figures/fig5_readings.pdf",
           "figures/fig5_readings.png"),
          "the readings study: which reading of the paper (return weighting, optimiser, "
          "PG-SOM's Hessian, RK's rule and stage, what Table 1 reports) reproduces its Table 1, "
          "chosen on selection seeds and confirmed on fresh ones; Figure 5 draws the paper's "
          "cells against our default and the chosen readings"),),
    ),
    NotebookSpec(
        "benchmarks",
        ("paper/benchmarks.csv", "paper/benchmark_finals.csv", "paper/benchmark_pilot.csv",
         "figures/fig6_benchmarks.pdf", "figures/fig6_benchmarks.png"),
        ((("paper/benchmarks.csv",),
          "the five benchmarks (claim C13): per protocol, benchmark and variant, final and "
          "evaluation return with 95% t CIs, runs reaching each threshold and the Kaplan-Meier "
          "median episodes, env steps"),
         (("paper/benchmark_finals.csv",),
          "one row per benchmark run: env, normalisation, the variant's parts, final, evaluation "
          "and last-episodes return, episodes to each threshold, env steps, diverged"),
         (("paper/benchmark_pilot.csv",),
          "the pilot that chose each benchmark's advantage normalisation (pg and adam, every "
          "candidate, its own seeds)"),
         (("figures/fig6_benchmarks.pdf", "figures/fig6_benchmarks.png"),
          "Figure 6: learning curves on each benchmark, mean and 95% CI band, thresholds")),
        after=("ablation",),  # its CartPole cells are the main experiment's runs
    ),
    NotebookSpec(
        "statistics",
        ("paper/statistics_summary.csv", "paper/comparisons.csv", "paper/claims.md",
         "paper/claims.csv", "paper/numbers.tex", "figures/fig4_effects.pdf",
         "figures/fig4_effects.png"),
        ((("paper/claims.md", "paper/claims.csv"),
          "the claims report: each claim of the paper (C1-C13) with the paper's number, ours "
          "with its CI per protocol, the test, the Holm-adjusted p-value and a verdict from one "
          "stated rule, decided on the powered and the replication runs separately (a claim "
          "whose two verdicts differ is inconclusive; claims.csv: both, pooled, stable)"),
         (("paper/numbers.tex",),
          "LaTeX macros for every number of the claims report that comes from our runs"),
         (("paper/comparisons.csv", "figures/fig4_effects.pdf", "figures/fig4_effects.png"),
          "the comparison family (stabilisers vs none, methods vs pg, Hessian vs adam / npg): "
          "paired t on the shared seeds with Holm (Welch beside), Hedges' g, P(A > B), "
          "the spread ratio with its bootstrap test, power and seeds needed at the Holm level; Figure 4 "
          "draws the paired differences with their CIs"),
         (("paper/statistics_summary.csv",),
          "per protocol and variant: mean final return with t and bootstrap CIs, IQM, "
          "runs reaching 200 / 400 and Kaplan-Meier median episodes")),
        after=("derivations", "ablation", "readings", "benchmarks"),
    ),
)


@dataclass(frozen=True)
class Profile:
    """Parameters of a pipeline run."""

    name: str
    out: str                     # output root (figures/, paper/, paper/notebooks/ under it)
    paper_seeds: int
    powered_seeds: int
    replication_seeds: int       # the claims' second sample (the statistics notebook only)
    selection_seeds: int         # the readings study's selection seeds (the readings notebook)
    confirmation_seeds: int      # the readings study's confirmation seeds
    benchmark_seeds: int         # seeds per (protocol, benchmark, variant) of the benchmarks study
    pilot_seeds: int             # seeds per cell of its normalisation pilot
    episodes: int
    eval_episodes: int
    variants: Sequence[str] | None
    cell_timeout_s: int          # per-cell execution timeout
    extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per notebook
    update_readme: bool = False


PROFILES: dict[str, Profile] = {
    "full": Profile("full", ".", 5, 50, 50, 20, 50, 3, 3, 500, 10, None, cell_timeout_s=6 * 3600,
                    update_readme=True),
    "quick": Profile("quick", "results/quick", 2, 3, 3, 3, 3, 2, 2, 8, 2, None, cell_timeout_s=900,
                     extra={"derivations": {"n_mc": 4000},
                            "benchmarks": {"budget": 8},
                            "readings": {"n_boot": 1000},
                            "statistics": {"n_boot": 1000, "fpr_trials": 1000}}),
}


def _rel(path: Path) -> str:
    """``path`` relative to the repository root when inside it (portable parameters)."""
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix() or "."
    except ValueError:
        return str(path.resolve())


def notebook_parameters(spec: NotebookSpec, profile: Profile, out: Path,
                        cache_dir: Path) -> dict[str, Any]:
    """Parameters of ``spec`` under ``profile`` with outputs under ``out``."""
    figures, paper = _rel(out / "figures"), _rel(out / "paper")
    if spec.name == "derivations":
        params: dict[str, Any] = {"derivations_csv": f"{paper}/derivations.csv", "figures_dir": figures}
    elif spec.name == "readings":
        params = {"selection_seeds": profile.selection_seeds,
                  "confirmation_seeds": profile.confirmation_seeds, "episodes": profile.episodes,
                  "eval_episodes": profile.eval_episodes, "cache_dir": _rel(cache_dir),
                  "max_workers": None, "scheduler": None, "progress": False,
                  "paper_dir": paper, "figures_dir": figures}
    elif spec.name == "benchmarks":
        params = {"seeds": profile.benchmark_seeds, "pilot_seeds": profile.pilot_seeds,
                  "eval_episodes": profile.eval_episodes, "cache_dir": _rel(cache_dir),
                  "max_workers": None, "scheduler": None, "progress": False,
                  "paper_dir": paper, "figures_dir": figures}
    else:
        params = {
            "protocols": ["paper", "powered"],
            "paper_seeds": profile.paper_seeds,
            "powered_seeds": profile.powered_seeds,
            "episodes": profile.episodes,
            "eval_episodes": profile.eval_episodes,
            "variants": list(profile.variants) if profile.variants is not None else None,
            "cache_dir": _rel(cache_dir),
            "max_workers": None,
            "scheduler": None,  # --set scheduler=tcp://host:8786 trains on that Dask cluster
            "progress": False,
            "paper_dir": paper,
            "figures_dir": figures,
        }
        if spec.name == "statistics":
            # the claims' second sample, and the derivations notebook's verdicts (claims C3-C6)
            params["protocols"] = ["paper", "powered", "replication"]
            params["replication_seeds"] = profile.replication_seeds
            params["derivations_csv"] = f"{paper}/derivations.csv"
            params["readings_csv"] = f"{paper}/readings.csv"  # the readings study (claim C11)
            params["benchmarks_csv"] = f"{paper}/benchmark_finals.csv"  # the benchmarks study (C13)
    params.update(profile.extra.get(spec.name, {}))
    return params


def readme_section(out: Path | None = None, notebooks: Sequence[NotebookSpec] | None = None) -> str:
    """The README's generated section from ``paper/table1.md`` under ``out``."""
    from pgsom.report import readme_outputs_section

    notebooks = NOTEBOOKS if notebooks is None else notebooks
    out = out or REPO_ROOT
    table1 = (out / "paper" / "table1.md").read_text(encoding="utf-8")
    rows = [(files, f"notebooks/{nb.name}.ipynb", what) for nb in notebooks for files, what in nb.readme_rows]
    rows.append((("paper/notebooks/*.ipynb",), "pgsom.pipeline",
                 "the executed notebooks of the last `make reproduce`, as a record"))
    return readme_outputs_section(table1, rows)


def _check_outputs(spec: NotebookSpec, out: Path, since: float) -> list[Path]:
    """Paths of ``spec``'s outputs written since ``since``; PipelineError naming a missing one."""
    found = []
    for rel in spec.outputs:
        matches = sorted(out.glob(rel)) if "*" in rel else [out / rel]
        fresh = [p for p in matches if p.is_file() and p.stat().st_mtime >= since - 1.0]
        if not fresh:
            stale = [p for p in matches if p.is_file()]
            why = "is older than this run (not rewritten)" if stale else "does not exist"
            raise PipelineError(f"notebook {spec.name!r} did not write expected output "
                                f"{out / rel}: it {why}")
        found += fresh
    return found


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressRelay:
    """Relays training progress from a notebook's kernel to the terminal.

    Used as a context manager around one notebook's execution: it creates an empty progress
    file, names it in ``os.environ[PROGRESS_FILE_ENV]`` (the kernel inherits it; the previous
    value is restored on exit) and reads the JSON lines the training processes append
    (:class:`pgsom.experiments.ProgressFile`) in a thread. For each protocol it writes, through
    ``write``, a line such as ``ablation: protocol 'powered': 420/1100 runs trained (38%),
    about 3 min 10 s left`` at most every ``every_s`` seconds, whenever a shard finishes and
    when the last one does. Runs trained counts the run-episodes done (the runs of a shard
    train in lockstep) in runs; the time left is the elapsed time since the protocol's first
    report scaled by what remains.
    """

    def __init__(self, notebook: str, write: Callable[[str], Any] = print, *,
                 every_s: float = PROGRESS_EVERY_S, poll_s: float = 1.0, export: bool = True) -> None:
        self.notebook, self.write, self.every_s, self.poll_s = notebook, write, every_s, poll_s
        self.export = export  # False: the caller hands the kernel ``path`` (notebooks run at once)
        self.lines: list[str] = []
        self._state: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()

    def __enter__(self) -> ProgressRelay:
        from pgsom.experiments import PROGRESS_FILE_ENV

        fd, self.path = tempfile.mkstemp(prefix="pgsom-progress-", suffix=".jsonl")
        os.close(fd)
        if self.export:
            self._saved = os.environ.get(PROGRESS_FILE_ENV)
            os.environ[PROGRESS_FILE_ENV] = self.path
        self._offset = 0
        self._thread = threading.Thread(target=self._run, name="pgsom-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        from pgsom.experiments import PROGRESS_FILE_ENV

        self._stop.set()
        self._thread.join()
        self._read()  # what came after the last poll
        if self.export:  # restore the variable as it was
            if self._saved is None:
                os.environ.pop(PROGRESS_FILE_ENV, None)
            else:
                os.environ[PROGRESS_FILE_ENV] = self._saved
        Path(self.path).unlink(missing_ok=True)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._read()

    def _read(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            f.seek(self._offset)
            text = f.read()
        complete = text[: text.rfind("\n") + 1]  # a line being written waits for the next poll
        self._offset += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            try:
                self._update(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue  # not a progress line: ignore rather than stop the pipeline

    def _update(self, msg: Mapping[str, Any]) -> None:
        st = self._state.setdefault(msg["protocol"], {"start": msg["time"], "last": None, "shards": {}})
        st["runs"] = int(msg["runs"])
        shard_done = msg["round"] >= msg["rounds"]
        st["shards"][msg["shard"]] = (int(msg["shard_runs"]), int(msg["round"]), int(msg["rounds"]))
        trained = sum(n * r / rounds for n, r, rounds in st["shards"].values())
        total = max(st["runs"], 1)
        all_done = sum(n for n, r, rounds in st["shards"].values() if r >= rounds) >= st["runs"]
        now = time.time()
        if not (shard_done or st["last"] is None or now - st["last"] >= self.every_s):
            return
        st["last"] = now
        elapsed = msg["time"] - st["start"]
        fraction = min(trained / total, 1.0)
        if all_done:
            tail = f"done in {_duration(elapsed)}"
        elif fraction > 0 and elapsed > 0:
            tail = f"about {_duration(elapsed * (1 - fraction) / fraction)} left"
        else:
            tail = "time left not known yet"
        line = (f"  {self.notebook}: protocol {msg['protocol']!r}: {int(trained)}/{st['runs']} runs "
                f"trained ({fraction:.0%}), {tail}")
        self.lines.append(line)
        self.write(line)


def _kernel_manager_class(env: Mapping[str, str] | None = None, started: list | None = None):
    """jupyter_client's KernelManager provisioning CurveZMQ keys where the kernelspec declares
    support (``transport_encryption="auto"``), so that the kernel does not warn "Kernel is
    running over TCP without encryption"; the plain one where libzmq lacks CURVE. ``env``:
    variables added to the kernel's environment (this process's otherwise); ``started``: a
    list each manager appends itself to (to stop the kernels of an interrupted pipeline)."""
    import zmq
    from jupyter_client.manager import KernelManager

    curve = zmq.has("curve")
    extra = dict(env or {})

    class PipelineKernelManager(KernelManager):
        def __init__(self, **kwargs):
            if curve:
                kwargs.setdefault("transport_encryption", "auto")
            super().__init__(**kwargs)
            if started is not None:
                started.append(self)

        async def _async_pre_start_kernel(self, **kw):
            if extra:
                kw["env"] = {**kw.get("env", os.environ), **extra}
            return await super()._async_pre_start_kernel(**kw)

    return PipelineKernelManager


FIGURE_CALLS = ("save_figure", "savefig")
"""A code cell that calls one of these at top level (not inside a ``def``) is a figure cell."""


def _is_figure_cell(source: str) -> bool:
    import ast

    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return False
    todo = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                         ast.ClassDef, ast.Lambda))]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call):
            f = node.func
            if (f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)) in FIGURE_CALLS:
                return True
        todo.extend(ast.iter_child_nodes(node))
    return False


def figure_cells_without_image(notebook: str | Path | Mapping[str, Any]) -> list[int]:
    """Indices (in the notebook's cell list) of the code cells that save a figure
    (:data:`FIGURE_CALLS` at top level) but have no ``image/png`` output: the figures a reader
    of the executed notebook would not see. ``notebook``: a path or a loaded notebook."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4) if isinstance(notebook, (str, Path)) else notebook
    return [k for k, cell in enumerate(nb["cells"])
            if cell["cell_type"] == "code" and _is_figure_cell(cell["source"])
            and not any("image/png" in out.get("data", {}) for out in cell.get("outputs", []))]


def _inspect(path: Path) -> dict[str, Any]:
    import papermill as pm

    return pm.inspect_notebook(str(path))


JOBS = 2
"""Notebooks run at once by default (``--jobs``): one that computes on one core (the
derivations, the figures, the statistics) beside one that trains on every core, whenever
:attr:`NotebookSpec.after` allows; the outputs do not depend on it."""


def check_jobs(jobs) -> int:
    """``jobs`` (notebooks run at once) as an int >= 1, or a PipelineError naming it."""
    if not (isinstance(jobs, int) and not isinstance(jobs, bool) and jobs >= 1):
        raise PipelineError(f"jobs must be an int >= 1 (notebooks run at once), got {jobs!r}")
    return jobs


def run_pipeline(profile: str = "full", *, only: Sequence[str] | None = None,
                 out: str | Path | None = None, cache_dir: str | Path | None = None,
                 overrides: Mapping[str, Any] | None = None,
                 notebooks: Sequence[NotebookSpec] | None = None,
                 log: Callable[[str], Any] = print, progress_bar: bool = True,
                 log_output: bool = False, jobs: int = JOBS) -> list[Path]:
    """Run the notebooks of ``profile``; return the outputs written. See the module doc.

    ``overrides`` replace profile parameters in every notebook that declares them (papermill
    is given only the parameters a notebook's ``parameters`` cell declares). ``jobs``: at most
    this many notebooks at once, each started (in :data:`NOTEBOOKS` order) once the selected
    notebooks it comes :attr:`~NotebookSpec.after` have finished. ``progress_bar``:
    papermill's cell counter (one notebook at a time only); training progress is relayed
    through ``log`` (:class:`ProgressRelay`; through ``tqdm.write`` when ``log`` is ``print``
    and the cell counter is on, so the two do not garble each other). A failing notebook
    stops the pipeline once the notebooks running beside it end; an interruption stops their
    kernels.
    """
    import concurrent.futures as cf

    notebooks = NOTEBOOKS if notebooks is None else notebooks
    if profile not in PROFILES:
        raise PipelineError(f"unknown profile {profile!r}; allowed: {list(PROFILES)}")
    jobs = check_jobs(jobs)
    prof = PROFILES[profile]
    names = [nb.name for nb in notebooks]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise PipelineError(f"--only: unknown notebook(s) {unknown}; allowed: {names}")
    for k, nb in enumerate(notebooks):
        if any(n not in names[:k] for n in nb.after):
            raise PipelineError(f"notebook {nb.name!r} comes after {list(nb.after)}: each must be a "
                                f"notebook listed before it ({names[:k]})")
    selected = [nb for nb in notebooks if not only or nb.name in only]
    out_root = resolve_path(out if out is not None else prof.out)
    cache = resolve_path(cache_dir if cache_dir is not None else "results/cache")
    executed_dir = out_root / "paper" / "notebooks"
    executed_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    progress_bar = progress_bar and (jobs == 1 or len(selected) == 1)
    write = log
    if log is print and progress_bar:
        from tqdm import tqdm

        write = tqdm.write
    kernels: list = []  # every kernel manager started, to stop them on an interruption

    def run_one(spec: NotebookSpec) -> list[Path]:
        params = notebook_parameters(spec, prof, out_root, cache)
        params.update(overrides or {})
        declared = _inspect(spec.path)
        asked = set(overrides or {}) | set(prof.extra.get(spec.name, {}))
        dropped = sorted(asked - set(declared))
        params = {n: v for n, v in params.items() if n in declared}
        if dropped:
            log(f"  ({spec.name} does not declare {dropped}; not passed to it)")
        t0 = time.time()
        target = _execute(spec, params, executed_dir / f"{spec.name}.ipynb", prof, write, kernels,
                          progress_bar=progress_bar, log_output=log_output)
        files = _check_outputs(spec, out_root, t0)
        log(f"  {spec.name} done in {time.time() - t0:.0f} s: {len(files)} outputs checked")
        return files + [target]

    chosen = {nb.name for nb in selected}
    pending, running, done = list(selected), {}, {}
    failure: BaseException | None = None
    with cf.ThreadPoolExecutor(jobs, thread_name_prefix="pgsom-notebook") as pool:
        try:
            while pending or running:
                while failure is None and len(running) < jobs:
                    ready = next((nb for nb in pending if all(n in done or n not in chosen for n in nb.after)), None)
                    if ready is None:
                        break
                    pending.remove(ready)
                    if not ready.path.is_file():
                        failure = PipelineError(f"notebook {ready.name!r}: source {ready.path} does not exist")
                        break
                    started = len(selected) - len(pending)
                    log(f"notebook {started}/{len(selected)}: {ready.name}  (profile {profile}, outputs "
                        f"under {out_root})")
                    running[pool.submit(run_one, ready)] = ready
                if not running:
                    break
                finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    spec = running.pop(fut)
                    try:
                        done[spec.name] = fut.result()
                    except BaseException as e:  # noqa: BLE001 - the first failure is raised below
                        failure = failure or e
        except BaseException:  # an interruption: stop the kernels, so the notebooks end too
            pending.clear()
            for km in kernels:
                try:
                    km.shutdown_kernel(now=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
            raise
    if failure is not None:
        raise failure
    written = [p for nb in selected for p in done[nb.name]]
    written += write_provenance(out_root)
    if prof.update_readme and out_root.resolve() == REPO_ROOT.resolve():
        from pgsom.report import update_readme

        if not (out_root / "paper" / "table1.md").is_file():
            raise PipelineError("cannot update README.md: paper/table1.md does not exist "
                                "(run the ablation notebook)")
        changed = update_readme(REPO_ROOT / "README.md", readme_section(out_root, notebooks))
        log(f"README.md generated section {'updated' if changed else 'unchanged'}")
    log(f"pipeline {profile}: {len(selected)} notebooks in {time.time() - t_start:.0f} s")
    return written


def _execute(spec: NotebookSpec, params: Mapping[str, Any], target: Path, prof: Profile, write,
             kernels: list, *, progress_bar: bool, log_output: bool) -> Path:
    """Execute ``spec`` into ``target`` (its training progress relayed through ``write``);
    a PipelineError naming the notebook if it fails, or any figure cell shows no image."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from pgsom.experiments import PROGRESS_FILE_ENV

    try:
        with ProgressRelay(spec.name, write, export=False) as relay:
            pm.execute_notebook(str(spec.path), str(target), parameters=dict(params),
                                kernel_name=KERNEL, cwd=str(REPO_ROOT), progress_bar=progress_bar,
                                log_output=log_output, start_timeout=180,
                                execution_timeout=prof.cell_timeout_s,
                                kernel_manager_class=_kernel_manager_class({PROGRESS_FILE_ENV: relay.path},
                                                                           kernels))
    except PapermillExecutionError as e:
        if e.ename == "ParameterError":
            raise PipelineError(f"notebook {spec.name!r}: bad parameter: {e.evalue}") from e
        raise PipelineError(f"notebook {spec.name!r} failed in cell {e.exec_count}: "
                            f"{e.ename}: {e.evalue}\n  (executed copy with the traceback: "
                            f"{target})") from e
    except Exception as e:  # kernel death, timeout, missing kernel...
        raise PipelineError(f"notebook {spec.name!r} could not be executed: "
                            f"{type(e).__name__}: {e}") from e
    missing = figure_cells_without_image(target)
    if missing:
        raise PipelineError(f"notebook {spec.name!r}: figure cell(s) {missing} of {target} "
                            "have no image/png output (the figure would not show)")
    return target


def write_provenance(out_root: Path) -> list[Path]:
    """Record how the outputs were computed: ``paper/provenance.json`` (numerics mode, its
    settings, library versions: the same on every covered machine, so it is compared by
    ``make verify``) and ``paper/notebooks/provenance.json`` (that plus this machine's CPU
    model and flags, beside the executed notebooks, which are a per-machine record)."""
    from pgsom import numerics
    from pgsom.store import write_text_atomic

    def dump(data) -> str:
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    return [write_text_atomic(out_root / "paper" / "provenance.json", dump(numerics.provenance(machine=False))),
            write_text_atomic(out_root / "paper" / "notebooks" / "provenance.json",
                              dump(numerics.provenance(machine=True)))]


def _parse_value(text: str) -> Any:
    """``--set`` values: True/False/None, ints, floats, JSON lists, else the string."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgsom.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="full")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help=f"run only these notebooks ({', '.join(nb.name for nb in NOTEBOOKS)})")
    parser.add_argument("--out", help="output root (default: . for full, results/quick for quick)")
    parser.add_argument("--cache-dir", help="results cache (default: results/cache)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a notebook parameter in every notebook declaring it")
    parser.add_argument("--log-output", action="store_true", help="stream notebook output")
    parser.add_argument("--jobs", type=int, default=JOBS,
                        help=f"notebooks run at once when their order allows (default {JOBS})")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set expects NAME=VALUE, got {item!r}")
        overrides[name] = _parse_value(value)
    try:
        run_pipeline(args.profile, only=args.only, out=args.out, cache_dir=args.cache_dir,
                     overrides=overrides, log_output=args.log_output, jobs=args.jobs)
    except PipelineError as e:
        print(f"pipeline FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
