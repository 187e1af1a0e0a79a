"""Portable numerics: the same bits from the same seeds on every x86-64 machine of this kind.

The artifact's numbers go through libraries that choose their kernels by CPU at run time, and
RL training turns one different last bit into a different run. The *portable* mode (the
default everywhere the artifact computes) pins each choice that was measured to change bits
on the artifact's paths, so that an AMD EPYC with AVX2 and an Intel Xeon with AVX-512 take the
same code paths. What dispatches, and what pins it (measured on an AVX-512 host by hashing the
outputs of each library call with one variable changed at a time: ``python pgsom/numerics.py
--measure`` re-measures it and prints the table):

========================  ==========================================  ===================================
library                   what changed bits when the dispatch moved    pinned by
========================  ==========================================  ===================================
MKL (torch matmul, bmm)   float32/float64 matmul (the exact-MDP      ``MKL_CBWR=COMPATIBLE``: Intel's
                          checks, the torch reference backend)        documented branch for identical
                                                                      results on Intel *and* Intel-
                                                                      compatible (AMD) CPUs (SSE2 code,
                                                                      no rcpps/rsqrtps). ``AVX2`` is
                                                                      documented for Intel CPUs only: on
                                                                      others MKL falls back to AUTO.
ATen (torch elementwise)  ``torch.softmax`` float32 (AVX512 vs AVX2)  ``ATEN_CPU_CAPABILITY=avx2``
numpy SIMD loops          ``np.exp`` / ``np.log`` float64 (X86_V4)     ``NPY_DISABLE_CPU_FEATURES`` =
                                                                      the AVX-512 dispatch targets
OpenBLAS (numpy linalg)   ``np.linalg.solve`` float64                 ``OPENBLAS_CORETYPE=Haswell``
                          (SkylakeX vs Haswell kernels)               (AVX2+FMA kernels, on both kinds)
oneDNN                    nothing measured on our paths               ``ONEDNN_MAX_CPU_ISA=AVX2``
numba (the fused kernel)  the host's vector ISA (zmm on AVX-512)      ``NUMBA_CPU_NAME=haswell`` with its
                          (no fast-math: no reassociation, no FMA)    features listed: one instruction
                                                                      set on every machine
threads                   MKL's CNR holds for a fixed thread count    ``MKL_NUM_THREADS=1``,
                                                                      ``OMP_NUM_THREADS=1``
glibc libm                ``math.sin``/``np.sin``/``math.exp`` pick   not pinnable by a variable: the
                          their FMA variants when FMA and AVX2 are     guarantee needs a CPU with AVX2
                          usable                                      and FMA (both kinds have them);
                                                                      :func:`status` checks it
========================  ==========================================  ===================================

The guarantee: same lock file, same seeds, portable mode, an x86-64 CPU with AVX2 and FMA
(x86-64-v3: every AMD EPYC and Intel Xeon of this kind) => byte-identical results.

Where it is set (before numpy, torch or MKL initialise): the Makefile exports
:data:`PORTABLE_ENV` to every target (``python3 pgsom/numerics.py --make``), the venv's
``python3`` Jupyter kernel starts through :mod:`pgsom.jupyter_kernel` (``--install-kernel``
rewrites its ``kernel.json``; the kernel sets the mode, honouring ``PGSOM_NUMERICS``, and then
execs ipykernel), importing
:mod:`pgsom` sets it when numpy and torch are not yet imported (the CLI, spawn workers, a
notebook whose first import is pgsom), and spawn workers inherit it. A process that computes
outside the mode warns once (:func:`warn_if_outside`), naming how to enable it; set
``PGSOM_NUMERICS=native`` to compute with each library's own choice on purpose (the
results cache keeps such runs apart: :func:`signature` is part of every cache key).

This module must import without numpy or torch (the Makefile runs it with the system Python).
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["MODE_VARIABLE", "MODES", "PORTABLE_ENV", "EMULATE_OLDER_CPU", "NumericsWarning",
           "requested_mode", "apply", "portable_environ", "status", "mode", "signature",
           "provenance", "warn_if_outside", "install_kernel_env", "exec_kernel"]

MODE_VARIABLE = "PGSOM_NUMERICS"
"""Environment variable choosing the mode: ``portable`` (default) or ``native``."""

MODES = ("portable", "native")

PORTABLE_ENV: Mapping[str, str] = {
    "MKL_CBWR": "COMPATIBLE",
    "ATEN_CPU_CAPABILITY": "avx2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4,AVX512_ICL,AVX512_SPR",
    "OPENBLAS_CORETYPE": "Haswell",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "NUMBA_CPU_NAME": "haswell",
    "NUMBA_CPU_FEATURES": "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fsgsbase,+lzcnt,+mmx,+movbe,"
                          "+popcnt,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave",
}
"""The variables of the portable mode (see the module docstring for why each one)."""

EMULATE_OLDER_CPU: Mapping[str, str] = {
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4,AVX512_ICL,AVX512_SPR",
    "ATEN_CPU_CAPABILITY": "avx2",
    "NUMBA_CPU_NAME": "haswell",
    "NUMBA_CPU_FEATURES": "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fsgsbase,+lzcnt,+mmx,+movbe,"
                          "+popcnt,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave",
}
"""What an AVX2-only machine does, emulated on an AVX-512 one (the test of the mode)."""

REQUIRED_CPU_FLAGS = ("avx2", "fma")
"""CPU features the guarantee needs (glibc's libm picks its FMA variants on them)."""

RECORDED_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")
"""CPU flags recorded in provenance: the ones any library above dispatches on."""

MKL_BRANCHES = {0: "OFF", 1: "BRANCH_OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 8: "SSE4_2",
                10: "AVX2", 12: "AVX512", 14: "AVX512_E1"}
"""``mkl_cbwr_get(MKL_CBWR_BRANCH)`` values (oneMKL's named constants for CNR control)."""


class NumericsWarning(UserWarning):
    """This process computes outside the portable numerics mode."""


def requested_mode(environ: Mapping[str, str] | None = None) -> str:
    """The mode ``PGSOM_NUMERICS`` asks for (``portable`` when unset)."""
    env = os.environ if environ is None else environ
    value = env.get(MODE_VARIABLE, "portable").strip().lower() or "portable"
    if value not in MODES:
        raise ValueError(f"{MODE_VARIABLE} must be one of {MODES}, got {env.get(MODE_VARIABLE)!r}")
    return value


def portable_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with the portable variables set, unless
    it asks for ``PGSOM_NUMERICS=native`` (then returned unchanged): for subprocesses."""
    env = dict(os.environ if base is None else base)
    if requested_mode(env) == "portable":
        env.update(PORTABLE_ENV)
    return env


def apply(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set the portable variables in ``environ`` (default ``os.environ``) when the mode is
    portable; return the names of libraries already imported, for which it comes too late."""
    env = os.environ if environ is None else environ
    if requested_mode(env) != "portable":
        return []
    env.update(PORTABLE_ENV)
    return [m for m in ("numpy", "torch") if m in sys.modules]


# ------------------------------------------------------------------------- what is in effect


def _cpu() -> dict[str, Any]:
    model, vendor, flags = platform.processor() or None, None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in (None, "", platform.machine()):
                    model = value.strip()
                elif key == "vendor_id" and vendor is None:
                    vendor = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "vendor": vendor, "machine": platform.machine(),
            "flags": {f: f in flags for f in RECORDED_CPU_FLAGS}, "known_flags": bool(flags)}


def _mkl_branch() -> str | None:
    """The CNR branch MKL runs (read from torch's MKL), or None where it cannot be read."""
    if "torch" not in sys.modules:
        return None
    try:
        import ctypes

        torch = sys.modules["torch"]
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        get = lib.mkl_serv_cbwr_get
        get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
        value = get(1)  # MKL_CBWR_BRANCH
    except (OSError, AttributeError):
        return None
    return MKL_BRANCHES.get(value, str(value))


def _numpy_dispatch() -> list[str] | None:
    if "numpy" not in sys.modules:
        return None
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # pragma: no cover - other numpy layouts
        return None
    return [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]


def _openblas_core() -> str | None:
    """The core type numpy's OpenBLAS runs (from the loaded library), or None."""
    if "numpy" not in sys.modules:
        return None
    try:
        import ctypes

        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line and line.split()[-1].startswith("/")}
        for path in sorted(paths):
            lib = ctypes.CDLL(path)
            for name in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
                fn = getattr(lib, name, None)
                if fn is not None:
                    fn.restype = ctypes.c_char_p
                    return fn().decode()
    except (OSError, AttributeError, UnicodeDecodeError):
        return None
    return None


def status() -> dict[str, Any]:
    """What is in effect in this process: each variable, what the imported libraries report,
    and ``problems`` (why the process is not in the portable mode; empty when it is)."""
    cpu = _cpu()
    effective: dict[str, Any] = {name: os.environ.get(name) for name in PORTABLE_ENV}
    effective["mkl_branch"] = _mkl_branch()
    effective["aten_capability"] = (sys.modules["torch"].backends.cpu.get_cpu_capability()
                                    if "torch" in sys.modules else None)
    effective["numpy_dispatch"] = _numpy_dispatch()
    effective["openblas_core"] = _openblas_core()
    problems = []
    for name, value in PORTABLE_ENV.items():
        if os.environ.get(name) != value:
            problems.append(f"{name}={os.environ.get(name)!r} (portable: {value!r})")
    if effective["mkl_branch"] not in (None, "COMPATIBLE"):
        problems.append(f"MKL runs CNR branch {effective['mkl_branch']} (portable: COMPATIBLE)")
    if effective["aten_capability"] not in (None, "AVX2"):
        problems.append(f"ATen runs {effective['aten_capability']} kernels (portable: AVX2)")
    dispatch = effective["numpy_dispatch"]
    if dispatch is not None and any(t in dispatch for t in PORTABLE_ENV["NPY_DISABLE_CPU_FEATURES"].split(",")):
        problems.append(f"numpy dispatches to {dispatch} (portable: no AVX-512 targets)")
    if effective["openblas_core"] not in (None, PORTABLE_ENV["OPENBLAS_CORETYPE"]):
        problems.append(f"OpenBLAS runs {effective['openblas_core']} kernels (portable: Haswell)")
    missing = [f for f in REQUIRED_CPU_FLAGS if cpu["known_flags"] and not cpu["flags"].get(f)]
    if missing:
        problems.append(f"the CPU lacks {missing}: outside the machines the guarantee covers")
    return {"requested": requested_mode(), "effective": effective, "cpu": cpu, "problems": problems}


def mode() -> str:
    """``portable`` when every pin is in effect, ``native`` when asked for, else ``mixed``."""
    st = status()
    if not st["problems"]:
        return "portable"
    return "native" if st["requested"] == "native" else "mixed"


def signature() -> str:
    """What identifies the numerics in a cache key: the portable settings (the same on every
    covered machine), or, outside the mode, the CPU and what each library runs on it."""
    import json

    st = status()
    if not st["problems"]:
        return "portable " + json.dumps(dict(PORTABLE_ENV), sort_keys=True)
    cpu = st["cpu"]
    return "native " + json.dumps({"cpu": cpu["model"], "vendor": cpu["vendor"], "flags": cpu["flags"],
                                   "effective": st["effective"]}, sort_keys=True)


def provenance(machine: bool = True) -> dict[str, Any]:
    """The numerics mode, its settings and the library versions; with ``machine`` also the
    CPU (model, vendor, the flags that matter). Outputs committed to the repository use
    ``machine=False`` (they must be byte-identical on every covered machine)."""
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    st = status()
    out: dict[str, Any] = {
        "numerics_mode": mode(),
        "numerics_settings": dict(PORTABLE_ENV) if not st["problems"] else st["effective"],
        "guarantee": "byte-identical on x86-64 CPUs with " + " and ".join(f.upper() for f in REQUIRED_CPU_FLAGS)
                     + " (AMD EPYC, Intel Xeon) in the portable mode",
        "python": platform.python_version(),
        "libraries": {n: version(n) for n in ("numpy", "torch", "gymnasium", "scipy", "pandas", "matplotlib")},
    }
    if machine:
        out["cpu"] = {k: v for k, v in st["cpu"].items() if k != "known_flags"}
        out["effective"] = st["effective"]
        out["problems"] = st["problems"]
    return out


_warned = False


def warn_if_outside() -> bool:
    """Warn once per process if it computes outside the portable mode; True if it does."""
    global _warned
    st = status()
    if not st["problems"]:
        return False
    if not _warned and st["requested"] == "portable":
        _warned = True
        warnings.warn(
            "pgsom: this process computes outside the portable numerics mode ("
            + "; ".join(st["problems"]) + "), so its numbers may differ in the last bits from the "
            "committed outputs and between machines. Enable it by running through make (make "
            "reproduce / quick / test / lab), by using the python3 kernel of .venv, or by "
            "importing pgsom before numpy and torch; or export the variables ("
            + " ".join(f"{k}={v}" for k, v in PORTABLE_ENV.items())
            + ") before Python starts: eval \"$(python pgsom/numerics.py --shell)\". Set PGSOM_NUMERICS=native to compute "
            "natively on purpose.", NumericsWarning, stacklevel=2)
    return True


# ------------------------------------------------------------------------- the measurement

def probe_hashes() -> dict[str, str]:
    """Hashes of the library calls that dispatch on the CPU (one per library and kind of call),
    on fixed inputs: what :func:`measure_dispatch` compares across settings."""
    import hashlib
    import math

    import numpy as np
    import torch

    def h(a) -> str:
        return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:10]

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x32 = rng.uniform(-10, 10, 1 << 20).astype(np.float32)
    x64 = rng.uniform(-3, 3, 1 << 20)
    a, b = rng.standard_normal((256, 256)), rng.standard_normal((256, 256))
    ta = torch.from_numpy(rng.standard_normal((32, 300, 130)).astype(np.float32))
    tb = torch.from_numpy(rng.standard_normal((32, 130, 70)).astype(np.float32))
    t32 = torch.from_numpy(x32)
    return {
        "MKL torch.bmm float32": h(torch.bmm(ta, tb).numpy()),
        "MKL torch.matmul float64": h((torch.from_numpy(a) @ torch.from_numpy(b)).numpy()),
        "ATen torch.softmax float32": h(torch.softmax(t32.reshape(-1, 64), 1).numpy()),
        "ATen torch.log_softmax float32": h(torch.log_softmax(t32.reshape(-1, 2), 1).numpy()),
        "ATen torch.tanh float32": h(torch.tanh(t32).numpy()),
        "numpy np.exp float64": h(np.exp(x64)),
        "numpy np.log float64": h(np.log(np.abs(x64) + 1e-3)),
        "numpy np.tanh float32": h(np.tanh(x32)),
        "numpy np.exp float32": h(np.exp(x32)),
        "libm np.sin float64": h(np.sin(x64)),
        "libm math.exp": h(np.array([math.exp(v) for v in x64[:100_000]])),
        "OpenBLAS np.matmul float64": h(a @ b),
        "OpenBLAS np.linalg.solve": h(np.linalg.solve(a, b)),
    }


_PROBE = "import json; from pgsom.numerics import probe_hashes; print(json.dumps(probe_hashes()))"


MEASURED_SETTINGS: Mapping[str, Mapping[str, str]] = {
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "MKL_ENABLE_INSTRUCTIONS=AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "ATEN_CPU_CAPABILITY=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "NPY_DISABLE_CPU_FEATURES (AVX-512)": {"NPY_DISABLE_CPU_FEATURES": PORTABLE_ENV["NPY_DISABLE_CPU_FEATURES"]},
    "OPENBLAS_CORETYPE=SkylakeX": {"OPENBLAS_CORETYPE": "SkylakeX"},
    "ONEDNN_MAX_CPU_ISA=AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "glibc without AVX2/FMA": {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA"},
}
"""One change at a time against the machine's own choices (OPENBLAS_CORETYPE=Haswell)."""


def measure_dispatch() -> str:
    """Hash each library call natively and with each of :data:`MEASURED_SETTINGS`, each in a
    fresh process; return a markdown table marking the calls whose bits changed."""
    import json
    import subprocess

    base = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV and k != "MKL_ENABLE_INSTRUCTIONS"}
    base.update({MODE_VARIABLE: "native", "OPENBLAS_CORETYPE": "Haswell"})

    def run(extra: Mapping[str, str]) -> dict[str, str]:
        out = subprocess.run([sys.executable, "-c", _PROBE], env={**base, **extra}, check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    native = run({})
    changed = {name: run(extra) for name, extra in MEASURED_SETTINGS.items()}
    cpu = _cpu()
    lines = [f"CPU: {cpu['model']} ({cpu['vendor']}); flags: "
             + ", ".join(f for f, on in cpu["flags"].items() if on), "",
             "| call | " + " | ".join(changed) + " |", "|---|" + "---|" * len(changed)]
    for call, digest in native.items():
        lines.append(f"| {call} | " + " | ".join("changed" if changed[s][call] != digest else "same"
                                                 for s in changed) + " |")
    return "\n".join(lines)


def install_kernel_env(kernel_json: str) -> None:
    """Make a Jupyter ``kernel.json`` start its kernel through this module: the kernel process
    sets the mode's variables (or leaves them, under ``PGSOM_NUMERICS=native`` in the
    environment of the server or papermill that starts it) and then becomes ``ipykernel`` (an
    ``exec``, before numpy or torch load). Idempotent."""
    import json

    with open(kernel_json, encoding="utf-8") as f:
        spec = json.load(f)
    argv = list(spec["argv"])
    if "pgsom.jupyter_kernel" not in argv:
        argv = [argv[0], "-m", "pgsom.jupyter_kernel", *argv[1:]]
    spec["argv"] = argv
    env = {k: v for k, v in spec.get("env", {}).items() if k not in PORTABLE_ENV}
    if env:
        spec["env"] = env
    else:
        spec.pop("env", None)
    tmp = kernel_json + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, kernel_json)


def exec_kernel(kernel_argv: list[str]) -> None:  # pragma: no cover - replaces the process
    """Set the mode (:func:`apply`) and become ``python *kernel_argv`` (the Jupyter kernel)."""
    apply()
    os.execv(sys.executable, [sys.executable, *kernel_argv])


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python pgsom/numerics.py", description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--make", action="store_true", help="NAME=VALUE words for the Makefile (none in native mode)")
    g.add_argument("--shell", action="store_true", help="export lines for a POSIX shell")
    g.add_argument("--install-kernel", metavar="KERNEL_JSON",
                   help="make a kernel.json start its kernel in the mode (see install_kernel_env)")
    g.add_argument("--status", action="store_true", help="print what this process has in effect")
    g.add_argument("--measure", action="store_true",
                   help="hash each library call with one dispatch variable changed at a time")
    args = p.parse_args(argv)
    env = portable_environ() if requested_mode() == "portable" else {}
    pinned = {k: env[k] for k in PORTABLE_ENV if k in env}
    if args.make:
        print(" ".join(f"{k}={v}" for k, v in pinned.items()))
    elif args.shell:
        print("\n".join(f"export {k}='{v}'" for k, v in pinned.items()))
    elif args.install_kernel:
        install_kernel_env(args.install_kernel)
    elif args.measure:
        print(measure_dispatch())
    else:
        apply()
        import numpy  # noqa: F401
        import torch

        torch.ones(2, 2) @ torch.ones(2, 2)
        print(json.dumps(provenance(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
