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
    assert [nb.name for nb in pl.NOTEBOOKS] == ["derivations", "ablation", "main_results", "statistics"]
    assert pl.NOTEBOOKS[0].outputs[0] == "paper/derivations.csv"
    stats_nb = pl.NOTEBOOKS[3]
    assert {"paper/claims.md", "paper/claims.csv", "paper/numbers.tex", "paper/comparisons.csv",
            "figures/fig4_effects.pdf", "figures/fig4_effects.png"} <= set(stats_nb.outputs)
    sp = pl.notebook_parameters(stats_nb, quick, out, ROOT / "results" / "cache")
    assert sp["derivations_csv"] == "results/quick/paper/derivations.csv"  # the derivations' verdicts
    assert sp["n_boot"] == 1000 and sp["fpr_trials"] == 1000


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
    entity = {"type": "object", "required": ["name"], "additionalProperties": False,
              "properties": {"name": {"type": "string", "minLength": 1}}}
    reference = {"type": "object", "required": ["authors", "title", "type"],
                 "properties": {"authors": {"type": "array", "minItems": 1, "items": entity},
                                "title": {"type": "string", "minLength": 1},
                                "type": {"enum": ["article", "generic", "unpublished"]},
                                "notes": {"type": "string"}}}
    schema = {  # the parts of the CFF 1.2.0 schema this file uses
        "type": "object", "required": ["authors", "cff-version", "message", "title"],
        "additionalProperties": False,
        "properties": {
            "cff-version": {"type": "string", "pattern": r"^1\.2\.0$"},
            "message": {"type": "string", "minLength": 1}, "title": {"type": "string", "minLength": 1},
            "type": {"enum": ["software", "dataset"]}, "version": {"type": "string"},
            "license": {"enum": ["MIT"]}, "abstract": {"type": "string"},
            "keywords": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "authors": {"type": "array", "minItems": 1, "items": entity},
            "preferred-citation": reference,
        },
    }
    jsonschema.validate(cff, schema)
    assert cff["preferred-citation"]["title"] == "Policy Gradient with Second-Order Momentum (PG-SOM)"


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
