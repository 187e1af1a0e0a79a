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


def test_train_takes_a_reading(tmp_path):
    out = _run("train", "--method", "rk", "--reading", "reuse", "midpoint", "--seeds", "1", "--episodes", "2",
               "--eval-episodes", "0", "--workers", "1", "--no-cache", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["variant"] == "rk@midpoint,reuse"
    assert (summary["config"]["algo"]["rk_rule"], summary["config"]["algo"]["rk_stage"]) == ("midpoint", "reuse")


def test_train_takes_another_benchmark(tmp_path):
    out = _run("train", "--method", "pg", "--env", "Acrobot-v1", "--backend", "fast", "--seeds", "1", "--episodes",
               "2", "--eval-episodes", "0", "--workers", "1", "--no-cache", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["config"]["env_id"] == "Acrobot-v1" and summary["final_return_mean"] < 0
    fused = _run("train", "--method", "pg", "--env", "Acrobot-v1", "--episodes", "2", "--no-cache", cwd=tmp_path)
    assert fused.returncode == 2 and "use backend='fast' or 'gymnasium'" in fused.stderr


def test_bad_arguments_are_named(tmp_path):
    bad = _run("train", "--method", "sgd", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice: 'sgd'" in bad.stderr
    neg = _run("train", "--method", "pg", "--episodes", "-3", cwd=tmp_path)
    assert neg.returncode == 2 and "expected a positive integer, got -3" in neg.stderr
    lr = _run("train", "--method", "pg", "--lr", "-0.1", "--episodes", "2", "--no-cache", cwd=tmp_path)
    assert lr.returncode == 2 and "lr must be a finite number > 0" in lr.stderr
    rk = _run("train", "--method", "rk", "--episodes", "3", "--no-cache", cwd=tmp_path)
    assert rk.returncode == 2 and "multiple of 2" in rk.stderr
    foreign = _run("train", "--method", "pg", "--reading", "reuse", "--episodes", "2", "--no-cache", cwd=tmp_path)
    assert foreign.returncode == 2 and "do not apply to method 'pg'" in foreign.stderr
    unknown = _run("train", "--method", "rk", "--reading", "rk4", cwd=tmp_path)
    assert unknown.returncode == 2 and "invalid choice: 'rk4'" in unknown.stderr
    bench = _run("bench", "--methods", "pg,sgd", cwd=tmp_path)
    assert bench.returncode == 2 and "unknown ['sgd']" in bench.stderr


def test_bench_prints_ratios_measured_in_the_same_run(tmp_path):
    import re

    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- BEGIN PERFORMANCE -->\nold\n<!-- END PERFORMANCE -->\ntail\n")
    out = _run("bench", "--methods", "pg,rk", "--seeds", "4", "--episodes", "2", "--ref-runs", "1",
               "--workers", "1", "--markdown", str(tmp_path / "b.md"), "--readme", str(readme), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| pg") or line.startswith("| rk")]
    assert len(rows) == 2
    for row in rows:  # | method | seeds x episodes | steps | old s (rate) | new s (rate) | ratio |
        cells = [c.strip() for c in row.strip("|").split("|")]
        old_rate, new_rate = (float(re.search(r"\(([\d.]+)\)", c).group(1)) for c in cells[3:5])
        ratio = float(cells[5].strip("*").rstrip("x"))
        if old_rate >= 0.05:  # rates are printed in M steps/s with two decimals
            assert abs(new_rate / old_rate - ratio) <= 0.15 * ratio
    runs = re.search(r"\*\*([\d.e+-]+)x\*\* the runs per second", out.stdout)
    assert runs and float(runs.group(1)) > 0
    assert (tmp_path / "b.md").read_text().strip() == out.stdout.strip()
    text = readme.read_text()
    assert rows[0] in text and text.endswith("<!-- END PERFORMANCE -->\ntail\n") and "\nold\n" not in text
    assert "python -m pgsom bench --methods pg,rk --seeds 4 --episodes 2" in text
