"""Tests for pgsom.pipeline and pgsom.experiments: parameters, output redirection, failures,
and byte-identical outputs from two runs of the quick pipeline."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from pgsom import experiments as ex
from pgsom import pipeline as pl

ROOT = Path(__file__).resolve().parent.parent
TINY = {"paper_seeds": 2, "powered_seeds": 2, "episodes": 4, "eval_episodes": 1,
        "variants": ["pg", "rk", "hessian+clip"], "methods": ["pg", "rk"], "max_workers": 1}


# --------------------------------------------------------------------------- parameters


def test_protocols_have_distinct_fixed_root_seeds():
    assert ex.PROTOCOLS["paper"].n_seeds == 5 and ex.PROTOCOLS["powered"].n_seeds == 50
    assert ex.PROTOCOLS["paper"].root_seed == 20250005
    assert ex.PROTOCOLS["powered"].root_seed == 20250050
    assert ex.PROTOCOLS["replication"].root_seed == 20250150 and ex.PROTOCOLS["replication"].n_seeds == 50
    roots = [p.root_seed for p in ex.PROTOCOLS.values()]
    assert len(set(roots)) == len(roots)  # independent samples, never the same runs twice
    assert ex.all_variants()[:12] == ("pg", "pg+clip", "pg+entropy", "pg+baseline", "hessian",
                                      "hessian+clip", "hessian+entropy", "hessian+baseline", "rk",
                                      "rk+clip", "rk+entropy", "rk+baseline")
    assert {"adam", "npg", "rk+clip_same_lr", "hessian+lr2"} <= set(ex.all_variants())


def test_validate_parameters_normalises():
    p = ex.validate_parameters(protocols="paper", paper_seeds=3, episodes=4, variants="pg, rk",
                               methods=["rk"], figure_protocol="paper", cache_dir="results/x",
                               max_workers=None, paper_root_seed=None)
    assert p["protocols"] == ["paper"] and p["variants"] == ["pg", "rk"]
    assert p["cache_dir"] == ROOT / "results" / "x" and p["paper_root_seed"] is None
    assert ex.validate_parameters(variants=None, methods=["npg"], episodes=2)["variants"] is None


@pytest.mark.parametrize("params, message", [
    ({"episodes": -3}, "episodes must be an int >= 1"),
    ({"episodes": "abc"}, "episodes must be an int >= 1"),
    ({"episodes": 2.5}, "episodes must be an int >= 1"),
    ({"paper_seeds": True}, "paper_seeds must be an int >= 1"),
    ({"powered_seeds": "50"}, "powered_seeds must be an int >= 1"),
    ({"paper_root_seed": -1}, "paper_root_seed must be an int >= 0 or None"),
    ({"protocols": ["paper", "big"]}, "protocols: unknown name(s) ['big']"),
    ({"variants": ["pg", "sgd"]}, "variants: unknown name(s) ['sgd']; allowed: ['pg', "),
    ({"variants": []}, "variants must be a non-empty list"),
    ({"methods": "pg,pg"}, "methods lists a name twice"),
    ({"variants": ["pg"], "methods": ["rk"]}, "methods ['rk'] are not among variants=['pg']"),
    ({"protocols": ["paper"], "figure_protocol": "powered"}, "figure_protocol='powered' must be one of"),
    ({"episodes": 7, "variants": ["pg", "rk"]}, "episodes=7 does not suit variant 'rk'"),
    ({"cache_dir": ""}, "cache_dir must be a non-empty path"),
    ({"progress": "yes"}, "progress must be True or False"),
    ({"epsiodes": 3}, "no check is defined for parameter 'epsiodes'"),
])
def test_validate_parameters_rejects_with_a_clear_message(params, message):
    with pytest.raises(ValueError) as err:
        ex.validate_parameters(**params)
    assert message in str(err.value)


def test_load_experiment_tidy_and_cached(tmp_path):
    lines = []
    kw = dict(n_seeds={"paper": 2}, variants=["pg", "rk"], episodes=4, eval_episodes=1,
              cache_dir=tmp_path, max_workers=1, log=lines.append)
    a = ex.load_experiment(["paper"], **kw)
    b = ex.load_experiment(["paper"], **kw)
    assert "4 to train" in lines[0] and "4 cached, 0 to train" in lines[-1]
    assert a.finals.equals(b.finals) and a.curves.equals(b.curves)
    assert a.returns("paper", "rk").shape == (2, 4)
    np.testing.assert_array_equal(a.final_returns("paper", "pg"),
                                  a.finals.query("variant == 'pg'")["final_return"])
    assert a.protocols["paper"].root_seed == 20250005
    c = ex.load_experiment(["paper"], **{**kw, "root_seeds": {"paper": 7}, "log": None})
    assert c.protocols["paper"].root_seed == 7 and not c.curves.equals(a.curves)


# --------------------------------------------------------------------------- profiles


def test_quick_profile_redirects_every_output_under_results_quick():
    quick = pl.PROFILES["quick"]
    out = ex.resolve_path(quick.out)
    assert out == ROOT / "results" / "quick"
    for spec in pl.NOTEBOOKS:
        params = pl.notebook_parameters(spec, quick, out, ROOT / "results" / "cache")
        for name, value in params.items():
            if name.endswith(("_dir", "_csv")) and name != "cache_dir":
                assert str(value).startswith("results/quick/"), (spec.name, name, value)
    full = pl.PROFILES["full"]
    params = pl.notebook_parameters(pl.NOTEBOOKS[2], full, ROOT, ROOT / "results" / "cache")
    assert params["figures_dir"] == "figures" and params["paper_dir"] == "paper"
    assert (full.paper_seeds, full.powered_seeds, full.episodes) == (5, 50, 500)
    assert [nb.name for nb in pl.NOTEBOOKS] == ["derivations", "ablation", "main_results", "readings", "benchmarks",
                                                "statistics"]
    assert pl.NOTEBOOKS[0].outputs[0] == "paper/derivations.csv"
    readings_nb = pl.NOTEBOOKS[3]
    assert {"paper/readings.csv", "paper/readings.md", "figures/fig5_readings.pdf"} <= set(readings_nb.outputs)
    rparams = pl.notebook_parameters(readings_nb, full, ROOT, ROOT / "results" / "cache")
    assert (rparams["selection_seeds"], rparams["confirmation_seeds"]) == (20, 50)
    stats_nb = pl.NOTEBOOKS[5]
    sfull = pl.notebook_parameters(stats_nb, full, ROOT, ROOT / "results" / "cache")
    assert sfull["readings_csv"] == "paper/readings.csv"
    assert sfull["benchmarks_csv"] == "paper/benchmark_finals.csv"  # the benchmarks study (claim C13)
    bench_nb = pl.NOTEBOOKS[4]
    assert {"paper/benchmarks.csv", "paper/benchmark_finals.csv", "figures/fig6_benchmarks.png"} <= set(bench_nb.outputs)
    bfull = pl.notebook_parameters(bench_nb, full, ROOT, ROOT / "results" / "cache")
    assert (bfull["seeds"], bfull["pilot_seeds"]) == (3, 3) and "budget" not in bfull  # each benchmark's own
    assert pl.notebook_parameters(bench_nb, quick, out, ROOT / "results" / "cache")["budget"] == 8
    assert {"paper/claims.md", "paper/claims.csv", "paper/numbers.tex", "paper/comparisons.csv",
            "figures/fig4_effects.pdf", "figures/fig4_effects.png"} <= set(stats_nb.outputs)
    sp = pl.notebook_parameters(stats_nb, quick, out, ROOT / "results" / "cache")
    assert sp["derivations_csv"] == "results/quick/paper/derivations.csv"  # the derivations' verdicts
    assert sp["n_boot"] == 1000 and sp["fpr_trials"] == 1000
    # the claims report decides on two independent samples: powered and replication
    fs = pl.notebook_parameters(stats_nb, full, ROOT, ROOT / "results" / "cache")
    assert fs["protocols"] == ["paper", "powered", "replication"] and fs["replication_seeds"] == 50
    assert pl.notebook_parameters(pl.NOTEBOOKS[1], full, ROOT, ROOT / "results" / "cache")["protocols"] == [
        "paper", "powered"]


def _run_quick(tmp: Path, tag: str) -> Path:
    out = tmp / f"out_{tag}"
    pl.run_pipeline("quick", only=["ablation", "main_results"], out=out,
                    cache_dir=tmp / f"cache_{tag}", overrides=TINY, progress_bar=False,
                    log=lambda s: None)
    return out


def test_quick_pipeline_twice_gives_identical_bytes(tmp_path):
    readme = (ROOT / "README.md").read_bytes()
    a, b = _run_quick(tmp_path, "a"), _run_quick(tmp_path, "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.suffix in {".csv", ".md", ".tex", ".png", ".pdf"})
    assert {f.as_posix() for f in files} == {
        "paper/table1.csv", "paper/table1.md", "paper/table1.tex", "paper/final_returns.csv",
        "paper/curves.csv", "figures/fig2_learning_curves.pdf", "figures/fig2_learning_curves.png",
        "figures/fig3_final_returns.pdf", "figures/fig3_final_returns.png"}
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f"{f} differs between two runs"
    assert (a / "paper" / "notebooks" / "ablation.ipynb").is_file()
    assert (ROOT / "README.md").read_bytes() == readme  # quick never edits the README


# --------------------------------------------------------------------------- failures


def _notebook(path: Path, body: str) -> Path:
    params = new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_pipeline_fails_loudly_on_a_missing_output(tmp_path, monkeypatch, capsys):
    src = _notebook(tmp_path / "lazy.ipynb", "y = x + 1")
    spec = pl.NotebookSpec("lazy", ("paper/never.csv",), source=str(src))
    monkeypatch.setattr(pl, "NOTEBOOKS", (spec,))
    code = pl.main(["--profile", "quick", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 1
    assert "notebook 'lazy' did not write expected output" in err and "never.csv" in err


def test_pipeline_fails_loudly_on_a_notebook_error(tmp_path):
    src = _notebook(tmp_path / "broken.ipynb", "raise ValueError('boom: x is wrong')")
    spec = pl.NotebookSpec("broken", (), source=str(src))
    with pytest.raises(pl.PipelineError) as err:
        pl.run_pipeline("quick", out=tmp_path / "out", notebooks=[spec], progress_bar=False,
                        log=lambda s: None)
    msg = str(err.value)
    assert "notebook 'broken' failed" in msg and "ValueError: boom: x is wrong" in msg
    assert "broken.ipynb" in msg


def test_pipeline_bad_parameter_is_one_line_naming_the_notebook(tmp_path, capfd):
    # the validation cell's ParameterError: the notebook's own one line, named; and no
    # "Kernel is running over TCP without encryption" from the kernel (CurveZMQ is provisioned)
    src = _notebook(tmp_path / "checked.ipynb",
                    "from pgsom import experiments as ex\nex.validate_parameters(episodes=-3)")
    spec = pl.NotebookSpec("checked", (), source=str(src))
    with pytest.raises(pl.PipelineError) as err:
        pl.run_pipeline("quick", out=tmp_path / "out", notebooks=[spec], progress_bar=False,
                        log=lambda s: None)
    assert str(err.value) == ("notebook 'checked': bad parameter: episodes must be an int >= 1 "
                              "(training episodes per run), got -3")
    out = capfd.readouterr()
    assert "without encryption" not in out.err + out.out


def test_pipeline_relays_training_progress_to_the_terminal(tmp_path):
    body = ("from pgsom import experiments as ex\n"
            f"ex.load_experiment(['paper'], n_seeds={{'paper': 3}}, variants=['pg', 'rk'], episodes=4, "
            f"eval_episodes=1, cache_dir={str(tmp_path / 'cache')!r}, max_workers=1, log=None)\n"
            "print('trained')")
    src = _notebook(tmp_path / "trains.ipynb", body)
    spec = pl.NotebookSpec("trains", (), source=str(src))
    lines = []
    pl.run_pipeline("quick", out=tmp_path / "out", notebooks=[spec], progress_bar=False, log=lines.append)
    progress = [line for line in lines if "runs trained" in line]
    assert progress, lines
    assert progress[0].startswith("  trains: protocol 'paper': ") and "/6 runs trained" in progress[0]
    assert progress[-1].startswith("  trains: protocol 'paper': 6/6 runs trained (100%), done in ")
    executed = nbformat.read(tmp_path / "out" / "paper" / "notebooks" / "trains.ipynb", as_version=4)
    outputs = executed.cells[-1].outputs
    assert [o.get("text") for o in outputs] == ["trained\n"]  # the notebook shows no progress
    assert ex.PROGRESS_FILE_ENV not in __import__("os").environ  # restored


def test_notebooks_run_two_at_once_in_the_order_after_allows(tmp_path):
    """With jobs=2, a notebook with nothing to wait for runs beside a running one; one that
    comes after another starts only when that one has finished; jobs=1 runs one at a time."""
    def timed(name, seconds):
        body = (f"import pathlib, time\nt0 = time.time()\ntime.sleep({seconds})\n"
                f"pathlib.Path({str(tmp_path / name)!r}).write_text(f'{{t0}} {{time.time()}}')")
        return str(_notebook(tmp_path / f"{name}.ipynb", body))

    specs = [pl.NotebookSpec("slow", (), source=timed("slow", 4)),
             pl.NotebookSpec("beside", (), source=timed("beside", 0)),
             pl.NotebookSpec("later", (), source=timed("later", 0), after=("slow",))]

    def spans():
        return {n: tuple(map(float, (tmp_path / n).read_text().split())) for n in ("slow", "beside", "later")}

    pl.run_pipeline("quick", out=tmp_path / "out", notebooks=specs, progress_bar=False, log=lambda s: None, jobs=2)
    t = spans()
    assert t["beside"][0] < t["slow"][1]  # ran while slow was running
    assert t["later"][0] >= t["slow"][1]  # waited for slow
    pl.run_pipeline("quick", out=tmp_path / "out", notebooks=specs, progress_bar=False, log=lambda s: None, jobs=1)
    t = spans()
    assert t["slow"][1] <= t["beside"][0] and t["beside"][1] <= t["later"][0]
    with pytest.raises(pl.PipelineError, match="jobs must be an int >= 1 .* got 0"):
        pl.run_pipeline("quick", out=tmp_path / "out", notebooks=specs, log=lambda s: None, jobs=0)
    bad = [specs[2], specs[0]]  # 'later' listed before the notebook it comes after
    with pytest.raises(pl.PipelineError, match="notebook 'later' comes after \\['slow'\\]"):
        pl.run_pipeline("quick", out=tmp_path / "out", notebooks=bad, log=lambda s: None)
    # every real notebook comes after notebooks listed before it, and statistics after the
    # notebooks whose outputs it reads
    names = [nb.name for nb in pl.NOTEBOOKS]
    assert all(set(nb.after) <= set(names[:k]) for k, nb in enumerate(pl.NOTEBOOKS))
    stats = pl.NOTEBOOKS[names.index("statistics")]
    assert {"derivations", "ablation", "readings", "benchmarks"} <= set(stats.after)


def test_progress_relay_lines_and_time_left(tmp_path):
    import json
    import os

    lines = []
    with pl.ProgressRelay("nb", lines.append, every_s=0.0, poll_s=0.05) as relay:
        path = os.environ[ex.PROGRESS_FILE_ENV]
        t0 = 1000.0
        reports = [(0, 1, 10), (1, 1, 10), (0, 5, 10), (1, 5, 10), (0, 10, 10), (1, 10, 10)]
        with open(path, "a") as f:
            for k, (shard, done, rounds) in enumerate(reports):
                f.write(json.dumps({"protocol": "powered", "runs": 100, "shard": shard, "shards": 2,
                                    "shard_runs": 50, "round": done, "rounds": rounds,
                                    "time": t0 + 10.0 * done}) + "\n")
            f.write("not json\n")
    assert relay.path == path and not Path(path).exists()
    assert lines[0] == "  nb: protocol 'powered': 5/100 runs trained (5%), time left not known yet"
    # half done after 40 s (first report at 10 s): about 40 s left
    assert lines[3] == "  nb: protocol 'powered': 50/100 runs trained (50%), about 40 s left"
    assert lines[-1] == "  nb: protocol 'powered': 100/100 runs trained (100%), done in 1 min 30 s"
    assert "runs trained" in lines[4] and len(lines) == 6


def test_figure_cells_without_image():
    from nbformat.v4 import new_output

    save = new_code_cell("fig = make()\nplots.save_figure(fig, 'x')\nfig")
    shown = new_code_cell("fig.savefig('y.png')")
    shown.outputs = [new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]
    helper = new_code_cell("def savefig(fig, name):\n    fig.savefig(name)")  # defines, does not save
    listed = new_code_cell("plots.save_figure(fig, 'z')")
    listed.outputs = [new_output("execute_result", data={"text/plain": "[PosixPath('z.pdf')]"})]
    nb = new_notebook(cells=[helper, save, shown, listed, new_code_cell("x = 1")])
    assert pl.figure_cells_without_image(nb) == [1, 3]


def test_pipeline_rejects_unknown_names(tmp_path):
    with pytest.raises(pl.PipelineError, match="unknown notebook"):
        pl.run_pipeline("quick", only=["nope"], out=tmp_path, log=lambda s: None)
    with pytest.raises(pl.PipelineError, match="unknown profile"):
        pl.run_pipeline("huge", out=tmp_path, log=lambda s: None)
    missing = pl.NotebookSpec("ghost", (), source=str(tmp_path / "ghost.ipynb"))
    with pytest.raises(pl.PipelineError, match="ghost.*does not exist"):
        pl.run_pipeline("quick", out=tmp_path, notebooks=[missing], log=lambda s: None)


def test_parse_set_values():
    assert pl._parse_value("3") == 3 and pl._parse_value("None") is None
    assert pl._parse_value('["pg", "rk"]') == ["pg", "rk"] and pl._parse_value("pg,rk") == "pg,rk"


# --------------------------------------------------------------------------- artifact files


def test_citation_cff_is_valid_cff_1_2_0():
    import jsonschema
    import yaml

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    # the parts of the CFF 1.2.0 schema (schema.json of citation-file-format) this file uses
    text = {"type": "string", "minLength": 1}
    entity = {"type": "object", "required": ["name"], "additionalProperties": False,
              "properties": {"name": text}}
    person = {"type": "object", "required": ["family-names", "given-names"], "additionalProperties": False,
              "properties": {"family-names": text, "given-names": text, "affiliation": text}}
    doi = {"type": "string", "pattern": r"^10\.\d{4,9}(\.\d+)?/[A-Za-z0-9:/_;\-\.\(\)\[\]\\]+$"}
    url = {"type": "string", "pattern": r"^(https|http|ftp|sftp)://.+"}
    identifier = {"type": "object", "required": ["type", "value"], "additionalProperties": False,
                  "properties": {"type": {"enum": ["doi", "url", "swh", "other"]}, "value": text,
                                 "description": text}}
    reference = {"type": "object", "required": ["authors", "title", "type"], "additionalProperties": False,
                 "properties": {"authors": {"type": "array", "minItems": 1, "items": {"anyOf": [person, entity]}},
                                "title": text, "type": {"enum": ["article", "generic", "unpublished"]},
                                "journal": text, "year": {"type": "integer"},
                                "month": {"type": "integer", "minimum": 1, "maximum": 12},
                                "doi": doi, "url": url, "notes": text,
                                "identifiers": {"type": "array", "minItems": 1, "items": identifier},
                                "keywords": {"type": "array", "items": text, "uniqueItems": True}}}
    schema = {
        "type": "object", "required": ["authors", "cff-version", "message", "title"],
        "additionalProperties": False,
        "properties": {
            "cff-version": {"type": "string", "pattern": r"^1\.2\.0$"},
            "message": text, "title": text,
            "type": {"enum": ["software", "dataset"]}, "version": {"type": "string"},
            "license": {"enum": ["MIT"]}, "abstract": {"type": "string"},
            "keywords": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "authors": {"type": "array", "minItems": 1, "items": {"anyOf": [person, entity]}},
            "preferred-citation": reference,
        },
    }
    jsonschema.validate(cff, schema)
    ref = cff["preferred-citation"]
    assert ref["title"] == "Policy Gradient with Second Order Momentum"  # as on arXiv
    assert ref["authors"] == [{"family-names": "Sun", "given-names": "Tianyu",
                               "affiliation": "Department of Mathematics, Indiana University, Bloomington, Indiana"}]
    assert (ref["year"], ref["month"], ref["doi"]) == (2025, 5, "10.48550/arXiv.2505.11561")
    assert ref["url"] == "https://arxiv.org/abs/2505.11561" and "unknown" not in str(cff).lower()
    assert {i["type"]: i["value"] for i in ref["identifiers"]}["other"] == "arXiv:2505.11561 [cs.LG]"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")  # the README cites the same entry
    citing = readme[readme.index("## Citing"):]
    for needle in ("Tianyu Sun", "Policy Gradient with Second Order Momentum", "2505.11561",
                   "10.48550/arXiv.2505.11561", "year          = {2025}"):
        assert needle in citing, needle


def test_license_and_environment_mirror_the_lock():
    import yaml

    lic = (ROOT / "LICENSE").read_text()
    assert lic.startswith("MIT License") and "2026 pgsom contributors" in lic
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip = [p for p in next(d["pip"] for d in deps if isinstance(d, dict)) if not p.startswith("--")]
    lock = [line.strip() for line in (ROOT / "requirements.lock").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert pip == lock and "torch==2.13.0" in pip


def test_readme_section_lists_every_output(tmp_path):
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "table1.md").write_text("**Table 1.** caption\n\n| Variant |\n|---|\n| x |\n")
    section = pl.readme_section(tmp_path)
    assert "| Variant |" in section and "do not edit by hand" in section
    for spec in pl.NOTEBOOKS:
        assert f"`notebooks/{spec.name}.ipynb`" in section
        for out in spec.outputs:
            assert f"`{out}`" in section, out
