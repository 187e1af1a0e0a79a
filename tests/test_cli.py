"""The command line, run as a user would (tiny budgets)."""

import json
import subprocess
import sys

import numpy as np


def _run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pgsom", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_train_writes_results_and_uses_the_cache(tmp_path):
    args = ["train", "--method", "hessian", "--clip", "--seeds", "2", "--episodes", "4", "--eval-episodes", "1",
            "--workers", "1", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    first = _run(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "hessian+clip: 2 seeds x 4 episodes" in first.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    runs = np.load(tmp_path / "out" / "runs.npz")
    assert runs["episode_return"].shape == (2, 4)
    assert summary["final_return_mean"] == runs["episode_return"][:, -1].mean()
    assert summary["config"]["algo"]["clip_norm"] == 50.0 and summary["config"]["algo"]["lr_scale"] == 2.0
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 2
    second = _run(*args, cwd=tmp_path)
    assert second.returncode == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "runs.npz")["episode_return"], runs["episode_return"])


def test_bad_arguments_are_named(tmp_path):
    bad = _run("train", "--method", "sgd", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice: 'sgd'" in bad.stderr
    neg = _run("train", "--method", "pg", "--episodes", "-3", cwd=tmp_path)
    assert neg.returncode == 2 and "expected a positive integer, got -3" in neg.stderr
    lr = _run("train", "--method", "pg", "--lr", "-0.1", "--episodes", "2", "--no-cache", cwd=tmp_path)
    assert lr.returncode == 2 and "lr must be a finite number > 0" in lr.stderr
    rk = _run("train", "--method", "rk", "--episodes", "3", "--no-cache", cwd=tmp_path)
    assert rk.returncode == 2 and "multiple of 2" in rk.stderr
    bench = _run("bench", "--methods", "pg,sgd", cwd=tmp_path)
    assert bench.returncode == 2 and "unknown ['sgd']" in bench.stderr


def test_bench_prints_both_throughputs_and_their_ratio(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- BEGIN PERFORMANCE -->\nold\n<!-- END PERFORMANCE -->\ntail\n")
    out = _run("bench", "--methods", "pg,rk", "--seeds", "4", "--episodes", "2", "--markdown", str(tmp_path / "b.md"),
               "--readme", str(readme), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| pg") or line.startswith("| rk")]
    assert len(rows) == 2
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    batched, sequential, ratio = float(cells[2]), float(cells[3]), float(cells[4].rstrip("x"))
    assert abs(batched / sequential - ratio) <= 0.5 + 0.01 * ratio
    assert (tmp_path / "b.md").read_text().strip() == out.stdout.strip()
    text = readme.read_text()
    assert "old" not in text and rows[0] in text and text.endswith("<!-- END PERFORMANCE -->\ntail\n")
    assert "python -m pgsom bench --methods pg,rk --seeds 4 --episodes 2" in text
