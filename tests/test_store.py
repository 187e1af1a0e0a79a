"""Tests for pgsom.store: keys, round trips, atomicity, corruption detection, determinism."""

from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pgsom import store as st
from pgsom.store import (CorruptCacheError, ResultStore, canonical_json, content_key,
                         environment_info, source_version, write_bytes_atomic,
                         write_text_atomic)

CONFIG = {"env": "CartPole-v1", "algorithm": {"name": "hessian", "lr": 0.002},
          "episodes": 500, "seeds": (0, 1, 2)}
META = {"config": CONFIG, "versions": {"numpy": "2.4.0"}, "notes": None}


def _arrays() -> dict[str, np.ndarray]:
    returns = np.array([[10.0, np.nan, 500.0], [np.inf, -0.0, 1e-300]])
    return {
        "returns": returns,
        "lengths": np.arange(12, dtype=np.int32).reshape(3, 4),
        "clipped": np.array([True, False, True]),
        "grad_norm": np.linspace(0, 1, 5, dtype=np.float32),
        "steps": np.array([1, 2, 3], dtype=np.uint64),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 3), dtype=np.int16),
    }


@pytest.fixture
def store(tmp_path: Path) -> ResultStore:
    return ResultStore(tmp_path / "cache")


@pytest.fixture
def key() -> str:
    return content_key(CONFIG, "v1")


def _rewrite_npz(path: Path, entries: dict[str, np.ndarray]) -> None:
    """Write a readable npz holding exactly ``entries`` (to forge altered cache files)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, a in entries.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a, allow_pickle=False)
            zf.writestr(f"{name}.npy", buf.getvalue())


def _raw_entries(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


# ------------------------------------------------------------------------------ JSON/keys


def test_canonical_json_format() -> None:
    assert canonical_json({"b": 0.1, "a": (1, 2), "c": {"z": True, "y": None}}) == \
        '{"a":[1,2],"b":0.1,"c":{"y":null,"z":true}}'
    assert canonical_json({"x": 1 / 3}) == '{"x":0.3333333333333333}'
    assert canonical_json({"x": np.float64(0.1)}) == '{"x":0.1}'


@pytest.mark.parametrize("bad, where", [
    ({"config": {"obs": np.zeros(2)}}, "config.obs"),
    ({"config": {"seeds": {1, 2}}}, "config.seeds"),
    ({"runs": [1, {"n": np.int64(3)}]}, "runs[1].n"),
    ({"a": {1: "x"}}, "a"),
])
def test_canonical_json_rejects_non_json_naming_key(bad: dict, where: str) -> None:
    with pytest.raises(TypeError, match=re.escape(where)):
        canonical_json(bad)


def test_canonical_json_rejects_nan() -> None:
    with pytest.raises(ValueError, match="lr"):
        canonical_json({"lr": float("nan")})


def test_content_key_stability() -> None:
    k = content_key(CONFIG, "v1")
    assert re.fullmatch(r"[0-9a-f]{64}", k)
    reordered = {"seeds": [0, 1, 2], "episodes": 500,
                 "algorithm": {"lr": 0.002, "name": "hessian"}, "env": "CartPole-v1"}
    assert content_key(reordered, "v1") == k
    assert content_key({**CONFIG, "episodes": 501}, "v1") != k
    assert content_key({**CONFIG, "algorithm": {"name": "hessian", "lr": 0.004}}, "v1") != k
    assert content_key(CONFIG, "v2") != k


def test_source_version(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "sub" / "b.py"
    b.parent.mkdir()
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    v = source_version([a, b])
    assert source_version([b, a]) == v
    b.write_text("y = 3\n")
    assert source_version([a, b]) != v
    b.write_text("y = 2\n")
    assert source_version([a, b]) == v
    c = tmp_path / "sub" / "c.py"
    b.rename(c)
    assert source_version([a, c]) != v


def test_environment_info() -> None:
    info = environment_info()
    assert info["numpy"] == np.__version__
    assert {"python", "torch", "gymnasium", "machine", "git_commit"} <= info.keys()
    assert info["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", info["git_commit"])
    canonical_json(info)  # must be storable as metadata


# ---------------------------------------------------------------------------- round trip


def test_round_trip(store: ResultStore, key: str) -> None:
    arrays = _arrays()
    path = store.save(key, arrays, META)
    assert path == store.root / key[:2] / f"{key}.npz" == store.path(key)
    loaded, meta = store.load(key)
    assert loaded.keys() == arrays.keys()
    for name, a in arrays.items():
        assert loaded[name].dtype == a.dtype, name
        assert loaded[name].shape == a.shape, name
        np.testing.assert_array_equal(loaded[name], a)
    assert np.isnan(loaded["returns"][0, 1])
    assert meta == json.loads(json.dumps(META))  # tuples come back as lists
    # a plain numpy reader needs no pickle
    raw = _raw_entries(path)
    assert json.loads(str(raw["__metadata__"][()])) == meta


def test_contains_keys_discard_missing(store: ResultStore, key: str) -> None:
    assert store.keys() == [] and key not in store
    with pytest.raises(KeyError):
        store.load(key)
    assert store.get_or_none(key) is None
    store.save(key, {"x": np.ones(2)}, {})
    other = content_key(CONFIG, "v2")
    store.save(other, {"x": np.ones(2)}, {})
    assert key in store and store.keys() == sorted([key, other])
    assert "not-a-key" not in store
    store.discard(key)
    store.discard(key)  # idempotent
    assert key not in store and store.keys() == [other]


def test_invalid_key_rejected(store: ResultStore) -> None:
    with pytest.raises(ValueError, match="invalid cache key"):
        store.save("../escape", {}, {})


def test_object_and_reserved_arrays_rejected(store: ResultStore, key: str) -> None:
    with pytest.raises(ValueError, match="ragged"):
        store.save(key, {"ok": np.ones(2), "ragged": np.array([[1], [1, 2]], dtype=object)}, {})
    with pytest.raises(ValueError, match="__metadata__"):
        store.save(key, {"__metadata__": np.ones(2)}, {})
    assert key not in store and not store.root.exists()


def test_overwrite_replaces(store: ResultStore, key: str) -> None:
    store.save(key, {"x": np.zeros(3)}, {"v": 1})
    store.save(key, {"y": np.ones(2)}, {"v": 2})
    arrays, meta = store.load(key)
    assert list(arrays) == ["y"] and meta == {"v": 2}


# ------------------------------------------------------------------------- determinism


def test_identical_saves_are_byte_identical(tmp_path: Path, key: str) -> None:
    s1, s2 = ResultStore(tmp_path / "one"), ResultStore(tmp_path / "two")
    p1 = s1.save(key, _arrays(), META)
    time.sleep(2.1)  # zip timestamps have 2 s resolution
    arrays = dict(reversed(list(_arrays().items())))  # other insertion order
    arrays["lengths"] = np.asfortranarray(arrays["lengths"])  # other memory layout
    meta = dict(reversed(list(META.items())))
    p2 = s2.save(key, arrays, meta)
    assert p1.read_bytes() == p2.read_bytes()
    p3 = s2.save(key, {**arrays, "scalar": np.array(3.25)}, meta)
    assert p3.read_bytes() != p1.read_bytes()


# --------------------------------------------------------------------------- atomicity


def test_failed_replace_leaves_no_file(store: ResultStore, key: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(src: str, dst: str) -> None:
        raise OSError("simulated crash during replace")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        store.save(key, _arrays(), META)
    assert not store.path(key).exists() and key not in store
    assert list(store.path(key).parent.iterdir()) == []  # temp file removed


def test_failed_replace_keeps_old_file(store: ResultStore, key: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store.save(key, {"x": np.arange(3)}, {"v": "old"})
    before = store.path(key).read_bytes()
    monkeypatch.setattr(os, "replace", lambda s, d: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError):
        store.save(key, {"x": np.arange(4)}, {"v": "new"})
    monkeypatch.undo()
    assert store.path(key).read_bytes() == before
    arrays, meta = store.load(key)
    assert meta == {"v": "old"} and arrays["x"].tolist() == [0, 1, 2]


def test_keys_ignore_leftover_temp_files(store: ResultStore, key: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    other = content_key(CONFIG, "v2")
    store.save(other, {"x": np.ones(1)}, {})
    # a hard crash: neither the rename nor the cleanup happens
    monkeypatch.setattr(os, "replace", lambda s, d: (_ for _ in ()).throw(OSError("crash")))
    monkeypatch.setattr(os, "unlink", lambda p: None)
    with pytest.raises(OSError):
        store.save(key, {"x": np.ones(1)}, {})
    monkeypatch.undo()
    (store.root / "README.txt").write_text("not a result")
    temps = [p for p in store.path(key).parent.iterdir()]
    assert len(temps) == 1 and temps[0].name.endswith(".tmp")
    assert store.keys() == [other] and key not in store
    assert store.clean_temp(older_than_s=3600) == []  # too young
    assert store.clean_temp() == temps
    assert not temps[0].exists() and store.keys() == [other]


def test_write_text_and_bytes_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "paper" / "table1.csv"
    write_text_atomic(target, "a,b\n1,2\n")
    assert target.read_bytes() == b"a,b\n1,2\n"
    write_bytes_atomic(target, b"x\n")
    assert target.read_bytes() == b"x\n"
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~st._UMASK)
    monkeypatch.setattr(os, "replace", lambda s, d: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError):
        write_text_atomic(target, "partial")
    monkeypatch.undo()
    assert target.read_bytes() == b"x\n"
    assert [p.name for p in target.parent.iterdir()] == ["table1.csv"]


# -------------------------------------------------------------------------- corruption


def _assert_corrupt(store: ResultStore, key: str, *fragments: str) -> None:
    path = store.path(key)
    for call in (store.load, store.get_or_none):
        with pytest.raises(CorruptCacheError) as info:
            call(key)
        msg = str(info.value)
        assert str(path) in msg and "make clean-cache" in msg
        for f in fragments:
            assert f in msg


def test_truncated_file(store: ResultStore, key: str) -> None:
    path = store.save(key, _arrays(), META)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_corrupt(store, key, "not a readable npz")
    path.write_bytes(b"")
    _assert_corrupt(store, key)


def test_garbage_file(store: ResultStore, key: str) -> None:
    path = store.save(key, _arrays(), META)
    path.write_bytes(b"this is not a zip file at all" * 10)
    _assert_corrupt(store, key)


def test_flipped_data_byte(store: ResultStore, key: str) -> None:
    path = store.save(key, {"x": np.arange(100, dtype=np.int64)}, META)
    data = bytearray(path.read_bytes())
    needle = np.arange(100, dtype=np.int64).tobytes()
    at = bytes(data).find(needle)
    assert at > 0
    data[at + 8 * 50] ^= 0xFF  # change element 50 in place (zip CRC now mismatches)
    path.write_bytes(bytes(data))
    _assert_corrupt(store, key)


def test_changed_array_with_old_checksum(store: ResultStore, key: str) -> None:
    path = store.save(key, _arrays(), META)
    entries = _raw_entries(path)
    entries["returns"] = entries["returns"].copy()
    entries["returns"][1, 2] = 123.0
    _rewrite_npz(path, entries)  # a readable zip with consistent CRCs
    _assert_corrupt(store, key, "checksum mismatch")


def test_changed_metadata_with_old_checksum(store: ResultStore, key: str) -> None:
    path = store.save(key, _arrays(), META)
    entries = _raw_entries(path)
    entries["__metadata__"] = np.array(canonical_json({**META, "notes": "edited"}))
    _rewrite_npz(path, entries)
    _assert_corrupt(store, key, "checksum mismatch")


def test_dropped_array_detected(store: ResultStore, key: str) -> None:
    path = store.save(key, _arrays(), META)
    entries = _raw_entries(path)
    del entries["clipped"]
    _rewrite_npz(path, entries)
    _assert_corrupt(store, key, "checksum mismatch")


@pytest.mark.parametrize("entry", ["__metadata__", "__checksum__"])
def test_missing_reserved_entry(store: ResultStore, key: str, entry: str) -> None:
    path = store.save(key, _arrays(), META)
    entries = _raw_entries(path)
    del entries[entry]
    _rewrite_npz(path, entries)
    _assert_corrupt(store, key, entry)
