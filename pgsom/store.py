"""Content-addressed results cache with atomic, deterministic, checksummed files.

A training run is identified by its config (a JSON-able mapping) and a code version
string; :func:`content_key` hashes the two. Its results (a mapping of numeric / bool
numpy arrays) and its metadata (a JSON-able mapping) are saved by :class:`ResultStore`
as one ``.npz`` file that ``np.load(..., allow_pickle=False)`` reads:

* each array is a ``<name>.npy`` entry;
* ``__metadata__`` holds the canonical JSON of the metadata (a 0-d unicode array);
* ``__checksum__`` holds a sha256 over the arrays (names, dtypes, shapes, bytes) and
  the metadata JSON (a 0-d unicode array).

Files are written atomically (temporary file in the same directory, fsync,
``os.replace``) and byte-for-byte deterministically: entries are sorted, stored
uncompressed, C-ordered, with a fixed zip timestamp, so the same inputs give the same
bytes whatever the time or the arrays' memory layout. Keep metadata deterministic
(no creation dates); timings belong in the arrays.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Mapping
from importlib import metadata as _importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CorruptCacheError",
    "ResultStore",
    "canonical_json",
    "content_key",
    "environment_info",
    "source_version",
    "write_bytes_atomic",
    "write_text_atomic",
]

METADATA_ENTRY = "__metadata__"
CHECKSUM_ENTRY = "__checksum__"
_RESERVED = (METADATA_ENTRY, CHECKSUM_ENTRY)
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^(?!__)[A-Za-z0-9_.\-]+$")
_ALLOWED_KINDS = "biufcUS"  # bool, ints, floats, complex, fixed-width strings
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_TMP_SUFFIX = ".tmp"

# Read the umask once (os.umask can only be read by setting it), so atomically written
# files get the usual permissions rather than NamedTemporaryFile's 0600.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


# --------------------------------------------------------------------------- JSON / keys


def _to_json(obj: Any, where: str) -> Any:
    """Return ``obj`` as plain JSON types; ``where`` names its position for errors."""
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"canonical_json: value at {where} is {obj!r}; NaN and "
                             "infinities are not JSON")
        return float(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"canonical_json: key {k!r} at {where} is a "
                                f"{type(k).__name__}; JSON object keys must be str")
            out[str(k)] = _to_json(v, f"{where}.{k}" if where != "<root>" else k)
        return out
    if isinstance(obj, (list, tuple)):
        return [_to_json(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    hint = " (convert it with .tolist() or .item())" if isinstance(obj, (np.ndarray, np.generic)) else ""
    raise TypeError(f"canonical_json: value at {where} has type {type(obj).__name__}, "
                    f"which is not JSON{hint}")


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` to canonical JSON: sorted keys, no whitespace, floats by repr.

    Tuples become lists. Raises TypeError naming the offending key (e.g. ``config.env.x``)
    for anything that is not JSON (numpy arrays and scalars, sets, non-str keys, ...),
    and ValueError for NaN or infinite floats.
    """
    return json.dumps(_to_json(obj, "<root>"), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False)


def content_key(config: Mapping[str, Any], code_version: str) -> str:
    """Return the cache key of a run: sha256 hex of its canonical config and code version."""
    if not isinstance(code_version, str):
        raise TypeError(f"code_version must be a str, got {type(code_version).__name__}")
    payload = canonical_json({"config": config, "code_version": code_version})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def source_version(paths: Iterable[str | os.PathLike[str]],
                   root: str | os.PathLike[str] | None = None) -> str:
    """Return a sha256 hex over the (relative name, bytes) of the given source files.

    Names are POSIX paths relative to ``root`` (default: the files' common directory),
    hashed in sorted order, so the result does not depend on the order of ``paths``.
    Pass the modules whose code affects training results.
    """
    files = [Path(p).resolve() for p in paths]
    if not files:
        raise ValueError("source_version: no source files given")
    base = Path(root).resolve() if root is not None else Path(os.path.commonpath([f.parent for f in files]))
    named = sorted((f.relative_to(base).as_posix(), f) for f in files)
    h = hashlib.sha256()
    for name, f in named:
        data = f.read_bytes()
        h.update(name.encode("utf-8") + b"\0" + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _version(module: str) -> str | None:
    """Version of ``module`` (the imported one if already loaded), or None if missing."""
    mod = sys.modules.get(module)
    if mod is not None and getattr(mod, "__version__", None):
        return str(mod.__version__)
    try:
        return _importlib_metadata.version(module)
    except _importlib_metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def environment_info() -> dict[str, Any]:
    """Describe the software environment: library versions, machine, git commit.

    Versions are None for packages that are not installed (torch and gymnasium are not
    imported just to read them). ``git_commit`` is the HEAD of the checkout holding this
    package and ``git_dirty`` whether tracked files differ from it; both are None outside
    a git checkout. Never raises.
    """
    from pgsom import numerics

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "numerics": numerics.provenance(machine=True),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": _version("torch"),
        "gymnasium": _version("gymnasium"),
        "machine": platform.machine(),
        "system": platform.system(),
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
    }


# ------------------------------------------------------------------------- atomic writes


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same directory, fsync, replace.

    Readers see either the old file or the complete new one; on failure the temporary
    file is removed and an existing file is left untouched. Creates parent directories.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(delete=False, dir=path.parent,
                                      prefix=f".{path.name}.", suffix=_TMP_SUFFIX)
    try:
        with tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp.name, 0o666 & ~_UMASK)
        os.replace(tmp.name, path)
    except BaseException:
        try:
            os.unlink(tmp.name)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX; not possible on Windows)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`write_bytes_atomic`).

    No newline translation is done, so the bytes are the same on every platform.
    """
    return write_bytes_atomic(path, text.encode(encoding))


# ------------------------------------------------------------------------------- store


class CorruptCacheError(RuntimeError):
    """A cache file exists but cannot be trusted (unreadable, incomplete or altered)."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(
            f"corrupt cache file {self.path}: {problem}. Delete this file "
            f"(rm '{self.path}') or clear the whole cache with `make clean-cache`, then "
            "re-run to recompute it.")


def _checksum(arrays: Mapping[str, np.ndarray], metadata_json: str) -> str:
    """sha256 hex over (sorted names, dtype, shape, C-order bytes) and the metadata JSON."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = arrays[name]
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode("utf-8"))
        h.update(a.tobytes(order="C"))
    h.update(f"{METADATA_ENTRY}\0".encode("utf-8") + metadata_json.encode("utf-8"))
    return h.hexdigest()


def _check_arrays(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validate names and dtypes; return C-ordered plain ndarrays."""
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"array name {name!r} is invalid: use letters, digits, '_', "
                             "'.', '-', not starting with '__' (reserved)")
        a = np.asarray(value, order="C")
        if a.dtype.kind not in _ALLOWED_KINDS:
            raise ValueError(f"array {name!r} has dtype {a.dtype} which cannot be stored "
                             "without pickle; convert it to a numeric, bool or string dtype")
        out[name] = a
    return out


def _npz_bytes(entries: Mapping[str, np.ndarray]) -> bytes:
    """Build a deterministic .npz (sorted, stored, fixed timestamps) in memory."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3  # Unix, whatever the host
            info.external_attr = 0o644 << 16
            npy = io.BytesIO()
            np.lib.format.write_array(npy, entries[name], allow_pickle=False)
            zf.writestr(info, npy.getvalue())
    return buf.getvalue()


class ResultStore:
    """Content-addressed store of run results: ``root/<key[:2]>/<key>.npz``.

    Keys are 64-character lowercase hex strings (see :func:`content_key`).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """Return the file path of ``key``; raises ValueError for a malformed key."""
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ValueError(f"invalid cache key {key!r}: expected 64 lowercase hex digits")
        return self.root / key[:2] / f"{key}.npz"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(_KEY_RE.match(key)) and self.path(key).is_file()

    def keys(self) -> list[str]:
        """Return the sorted keys of the complete files in the store (temp files ignored)."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("??/*.npz")
                      if _KEY_RE.match(p.stem) and p.parent.name == p.stem[:2] and p.is_file())

    def save(self, key: str, arrays: Mapping[str, Any], metadata: Mapping[str, Any]) -> Path:
        """Atomically write ``arrays`` and ``metadata`` under ``key``; return the file path.

        Arrays must have numeric, bool or string dtypes (object arrays raise ValueError
        naming the array); metadata must be JSON-able (see :func:`canonical_json`).
        Identical inputs give byte-identical files.
        """
        path = self.path(key)
        checked = _check_arrays(arrays)
        meta_json = canonical_json(dict(metadata))
        entries = dict(checked)
        entries[METADATA_ENTRY] = np.array(meta_json)
        entries[CHECKSUM_ENTRY] = np.array(_checksum(checked, meta_json))
        return write_bytes_atomic(path, _npz_bytes(entries))

    def load(self, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Return ``(arrays, metadata)`` stored under ``key``.

        Raises KeyError if absent and CorruptCacheError if the file is unreadable, lacks an
        entry, or fails its checksum; never returns partial data.
        """
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                entries = {name: npz[name] for name in npz.files}
        except Exception as e:  # any failure to decode means the file cannot be trusted
            raise CorruptCacheError(path, f"not a readable npz ({type(e).__name__}: {e})") from e
        for name in _RESERVED:
            a = entries.get(name)
            if a is None or a.shape != () or a.dtype.kind != "U":
                raise CorruptCacheError(path, f"entry {name!r} is missing or malformed")
        meta_json = str(entries.pop(METADATA_ENTRY)[()])
        stored = str(entries.pop(CHECKSUM_ENTRY)[()])
        actual = _checksum(entries, meta_json)
        if stored != actual:
            raise CorruptCacheError(path, f"checksum mismatch (stored {stored[:12]}..., "
                                          f"computed {actual[:12]}...)")
        try:
            metadata = json.loads(meta_json)
        except ValueError as e:
            raise CorruptCacheError(path, f"metadata is not valid JSON ({e})") from e
        if not isinstance(metadata, dict):
            raise CorruptCacheError(path, "metadata is not a JSON object")
        return entries, metadata

    def get_or_none(self, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """Like :meth:`load`, but return None if ``key`` is absent (corruption still raises)."""
        try:
            return self.load(key)
        except KeyError:
            return None

    def discard(self, key: str) -> None:
        """Delete the file of ``key`` if it exists."""
        self.path(key).unlink(missing_ok=True)

    def clean_temp(self, older_than_s: float = 0.0) -> list[Path]:
        """Delete temporary files left by interrupted saves; return the deleted paths.

        Another process may be saving right now: pass ``older_than_s`` (e.g. 3600) to
        spare temp files younger than that.
        """
        if not self.root.is_dir():
            return []
        now, removed = time.time(), []
        for p in sorted(self.root.glob(f"??/.*{_TMP_SUFFIX}")):
            try:
                if now - p.stat().st_mtime >= older_than_s:
                    p.unlink()
                    removed.append(p)
            except FileNotFoundError:
                pass
        return removed

