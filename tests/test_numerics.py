"""The portable numerics mode (pgsom.numerics): a sweep and an exact-MDP computation give the
same bytes on this host and on this host emulating an older (AVX2-only) CPU; outside the mode the
same comparison shows a difference where the host has AVX-512, so the test can catch the fault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from pgsom import numerics

ROOT = Path(__file__).resolve().parent.parent

WORKLOAD = r"""  # a small sweep, an exact-MDP computation and each library call that dispatches
import hashlib, json
import pgsom
import numpy as np, torch
from pgsom import numerics
from pgsom import exact_mdp as xm
from pgsom.config import RunConfig
from pgsom.variants import variant
from pgsom.runner import run_sweep

def h(*arrays):
    d = hashlib.sha256()
    for a in arrays:
        d.update(np.ascontiguousarray(a).tobytes())
    return d.hexdigest()

torch.set_num_threads(1)
base = RunConfig(episodes=100, eval_episodes=2)
vs = dict(variant(m, base=base) for m in ("pg", "hessian", "npg", "adam"))
res = run_sweep(vs, 4, root_seed=7, store=None, max_workers=1, progress=False)
out = {f"sweep {k}": h(*(res[k][f] for f in ("episode_return", "grad_norm", "eval_return"))) for k in vs}
e = xm.ExactMDP(xm.FiniteMDP(n_states=3, n_actions=2, horizon=4, seed=5), (4,))
theta = xm.random_thetas(e.spec, 3, seed=1)
out["exact J, grad, Hessian"] = h(*(t.detach().numpy() for t in (e.exact_J(theta), e.exact_grad(theta), e.exact_hessian(theta))))
out.update({f"library {k}": v for k, v in numerics.probe_hashes().items()})
out["mode"] = numerics.mode()
print(json.dumps(out))
"""


def run_workload(extra: dict[str, str], mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in numerics.PORTABLE_ENV and k not in numerics.EMULATE_OLDER_CPU}
    env.update({numerics.MODE_VARIABLE: mode, "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "Haswell")})
    env.update(extra)
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", WORKLOAD], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def host_has_avx512() -> bool:
    """Whether a library on the artifact's paths dispatches to AVX-512 here when left alone."""
    probe = ("import json, torch; from numpy._core._multiarray_umath import __cpu_features__ as f; "
             "print(json.dumps([bool(f.get('X86_V4')), torch.backends.cpu.get_cpu_capability()]))")
    env = {k: v for k, v in os.environ.items() if k not in numerics.PORTABLE_ENV}
    env[numerics.MODE_VARIABLE] = "native"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    numpy_v4, aten = json.loads(out.stdout)
    return numpy_v4 or aten == "AVX512"


@pytest.fixture(scope="module")
def portable_runs():
    return run_workload({}, "portable"), run_workload(dict(numerics.EMULATE_OLDER_CPU), "portable")


def test_portable_mode_gives_the_same_bytes_on_an_emulated_older_cpu(portable_runs):
    host, older = portable_runs
    assert host["mode"] == older["mode"] == "portable"
    assert host == older


def test_outside_the_mode_the_emulation_changes_the_bytes(portable_runs):
    if not host_has_avx512():
        pytest.skip("this host has no AVX-512 dispatch in numpy or ATen: its native numerics "
                    "already are those of the emulated older CPU, so no difference can be shown")
    host = run_workload({}, "native")
    older = run_workload(dict(numerics.EMULATE_OLDER_CPU), "native")
    assert host["mode"] == "native"
    differ = sorted(k for k in host if host[k] != older[k])
    # natively, numpy's X86_V4 loops and ATen's AVX512 kernels change bits under the emulation
    # on any AVX-512 host; the sweep itself changes too where MKL runs AVX-512 (Intel Xeon). On
    # AMD, MKL does not run AVX-512 and the sweep alone can be the same: it is not asserted.
    assert differ, "the emulation changed nothing outside the portable mode: the test could not fail"
    print("differ natively under the emulation:", differ)
    # and the native numbers are not the portable ones (the mode changes what is computed)
    assert any(host[k] != portable_runs[0][k] for k in host if k != "mode")


def test_requested_mode_validates_the_variable():
    assert numerics.requested_mode({}) == "portable"
    assert numerics.requested_mode({"PGSOM_NUMERICS": "native"}) == "native"
    with pytest.raises(ValueError, match=r"PGSOM_NUMERICS must be one of \('portable', 'native'\), got 'fast'"):
        numerics.requested_mode({"PGSOM_NUMERICS": "fast"})


def test_apply_and_portable_environ():
    env: dict[str, str] = {"MKL_CBWR": "AVX2"}
    numerics.apply(env)
    assert all(env[k] == v for k, v in numerics.PORTABLE_ENV.items())
    native = {"PGSOM_NUMERICS": "native", "MKL_CBWR": "AVX2"}
    numerics.apply(native)
    assert native == {"PGSOM_NUMERICS": "native", "MKL_CBWR": "AVX2"}
    assert numerics.portable_environ(native) == native
    assert numerics.portable_environ({})["MKL_CBWR"] == "COMPATIBLE"


def test_this_test_process_is_in_the_portable_mode():
    import torch

    torch.ones(2, 2) @ torch.ones(2, 2)
    st = numerics.status()
    assert st["problems"] == [], st
    assert st["effective"]["mkl_branch"] == "COMPATIBLE"
    assert st["effective"]["aten_capability"] == "AVX2"
    assert numerics.mode() == "portable"


def test_a_process_outside_the_mode_warns_once_naming_how_to_enable_it():
    code = ("import numpy, torch, warnings\n"  # libraries first: pgsom comes too late
            "import pgsom\nfrom pgsom import numerics\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    a = numerics.warn_if_outside(); b = numerics.warn_if_outside()\n"
            "print(a, b, len(w)); print(w[0].message)\n")
    env = {k: v for k, v in os.environ.items() if k not in numerics.PORTABLE_ENV}
    env.pop(numerics.MODE_VARIABLE, None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    first, message = out.split("\n", 1)
    assert first == "True True 1"
    assert "outside the portable numerics mode" in message and "MKL_CBWR" in message
    assert "make reproduce" in message and "PGSOM_NUMERICS=native" in message


def test_cache_key_depends_on_the_numerics_mode():
    code = "import pgsom\nfrom pgsom.runner import training_source_version\nprint(training_source_version())"
    env = {k: v for k, v in os.environ.items() if k not in numerics.PORTABLE_ENV}

    def version(mode):
        return subprocess.run([sys.executable, "-W", "ignore", "-c", code], env={**env, "PGSOM_NUMERICS": mode},
                              capture_output=True, text=True, check=True).stdout.strip()

    portable, native = version("portable"), version("native")
    assert len(portable) == 64 and portable != native
    from pgsom.runner import training_source_version

    assert training_source_version() == portable


def test_provenance_records_mode_cpu_and_versions():
    p = numerics.provenance()
    assert p["numerics_mode"] == "portable" and p["numerics_settings"] == dict(numerics.PORTABLE_ENV)
    assert set(p["cpu"]["flags"]) == set(numerics.RECORDED_CPU_FLAGS) and p["cpu"]["model"]
    assert p["libraries"]["torch"].startswith("2.13.0")
    committed = numerics.provenance(machine=False)
    assert "cpu" not in committed and "effective" not in committed


def test_worker_refuses_other_numerics():
    from pgsom.config import RunConfig
    from pgsom.variants import variant
    from pgsom.runner import NumericsMismatch, RunSpec, train_runs

    name, cfg = variant("pg", base=RunConfig(episodes=1, eval_episodes=0))
    with pytest.raises(NumericsMismatch, match="computes under numerics"):
        train_runs([RunSpec(name, cfg, 0)], expected_numerics="native {}")


def test_install_kernel_env_starts_the_kernel_through_the_mode(tmp_path):
    spec = tmp_path / "kernel.json"
    spec.write_text(json.dumps({"argv": ["/venv/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                "env": {"KEEP": "1", "MKL_CBWR": "AVX2"}}))
    numerics.install_kernel_env(str(spec))
    numerics.install_kernel_env(str(spec))  # idempotent
    data = json.loads(spec.read_text())
    assert data["argv"] == ["/venv/python", "-m", "pgsom.jupyter_kernel", "-m", "ipykernel_launcher",
                            "-f", "{connection_file}"]
    assert data["env"] == {"KEEP": "1"}


@pytest.mark.parametrize("mode", ["portable", "native"])
def test_exec_kernel_sets_the_mode_the_environment_asks_for(mode):
    env = {k: v for k, v in os.environ.items() if k not in numerics.PORTABLE_ENV}
    env[numerics.MODE_VARIABLE] = mode
    code = "import os, json; print(json.dumps({k: os.environ.get(k) for k in ('MKL_CBWR', 'ATEN_CPU_CAPABILITY')}))"
    out = subprocess.run([sys.executable, "-m", "pgsom.jupyter_kernel", "-c", code], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    got = json.loads(out)
    if mode == "portable":
        assert got == {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2"}
    else:
        assert got == {"MKL_CBWR": None, "ATEN_CPU_CAPABILITY": None}


def test_the_venv_kernel_computes_in_the_mode():
    """The papermill/JupyterLab kernel of the venv (the one the notebooks run on)."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        msg_id = kc.execute("import numpy, torch; from pgsom import numerics; torch.ones(2, 2) @ torch.ones(2, 2); "
                            "print(numerics.mode())")
        text = ""
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                text += msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert text.strip() == "portable"


def test_makefile_words_are_the_portable_env():
    out = subprocess.run([sys.executable, str(ROOT / "pgsom" / "numerics.py"), "--make"],
                         capture_output=True, text=True, check=True, env={**os.environ, "PGSOM_NUMERICS": "portable"})
    assert dict(w.split("=", 1) for w in out.stdout.split()) == dict(numerics.PORTABLE_ENV)
    out = subprocess.run([sys.executable, str(ROOT / "pgsom" / "numerics.py"), "--make"],
                         capture_output=True, text=True, check=True, env={**os.environ, "PGSOM_NUMERICS": "native"})
    assert out.stdout.strip() == ""
