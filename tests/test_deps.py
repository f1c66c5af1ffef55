"""resnets.deps: whether the merge-base and the head ask for the same dependencies (the
GPU gate workflow's choice between one environment and two)."""
import pytest

from resnets import deps

HEAD = """
[project]
name = "resnets"
dependencies = ["torch>=2.4", "numpy>=1.24", "pandas>=2.0"]

[project.optional-dependencies]
test = ["scipy>=1.10", "ruff>=0.6"]
docs = ["sphinx"]

[tool.ruff]
line-length = 100
"""


def verdict(tmp_path, capsys, base: str, head: str = HEAD):
    """``python -m resnets.deps`` on the two texts: (exit code, captured output)."""
    (tmp_path / "base.toml").write_text(base)
    (tmp_path / "head.toml").write_text(head)
    code = deps.main([str(tmp_path / "base.toml"), str(tmp_path / "head.toml")])
    return code, capsys.readouterr()


@pytest.mark.parametrize("base,expected", [
    (HEAD, "same"),
    # The same requirements in another order, one repeated, other tables changed.
    (HEAD.replace('"torch>=2.4", "numpy>=1.24", "pandas>=2.0"',
                  '"pandas>=2.0", "torch>=2.4", "numpy>=1.24", "torch>=2.4"')
         .replace('test = ["scipy>=1.10", "ruff>=0.6"]\ndocs = ["sphinx"]',
                  'docs = ["sphinx"]\ntest = ["ruff>=0.6", "scipy>=1.10"]')
         .replace("line-length = 100", "line-length = 88"), "same"),
    (HEAD.replace("torch>=2.4", "torch>=2.3"), "changed"),
    (HEAD.replace('"ruff>=0.6"', '"ruff>=0.5"'), "changed"),
    (HEAD.replace('docs = ["sphinx"]\n', ""), "changed"),   # a whole extra more on one side
    (HEAD.replace('"pandas>=2.0"', '"pandas>=2.0", "filelock"'), "changed"),
])
def test_same_or_changed_on_stdout_and_exit_0(tmp_path, capsys, base, expected):
    code, out = verdict(tmp_path, capsys, base)
    assert (code, out.out) == (0, f"{expected}\n")
    assert (out.err == "") == (expected == "same")


def test_what_changed_goes_to_stderr_per_table(tmp_path, capsys):
    base = HEAD.replace("torch>=2.4", "torch>=2.3").replace('"ruff>=0.6"', '"ruff>=0.5"')
    _, out = verdict(tmp_path, capsys, base)
    assert out.err.splitlines() == ["dependencies: -torch>=2.3, +torch>=2.4",
                                    "optional-dependencies.test: -ruff>=0.5, +ruff>=0.6"]


def test_dynamic_dependencies_count_as_changed(tmp_path, capsys):
    dynamic = '[project]\nname = "resnets"\ndynamic = ["dependencies"]\n'
    _, out = verdict(tmp_path, capsys, dynamic, dynamic)
    assert out.out == "changed\n" and "declared dynamic" in out.err


def test_no_tables_on_either_side_are_the_same(tmp_path, capsys):
    empty = '[project]\nname = "resnets"\n'
    assert verdict(tmp_path, capsys, empty, empty)[1].out == "same\n"


@pytest.mark.parametrize("base,message", [
    ("[project\n", "not TOML"),
    ('[project]\ndependencies = "torch"\n', "dependencies is not a list"),
    ('[project]\noptional-dependencies = ["x"]\n', "is not a table"),
])
def test_bad_files_are_one_line_and_exit_2(tmp_path, capsys, base, message):
    code, out = verdict(tmp_path, capsys, base)
    assert code == 2 and out.out == ""
    assert out.err.startswith("resnets deps: error: ") and message in out.err
    assert len(out.err.splitlines()) == 1


def test_a_missing_file_or_wrong_arguments_exit_2(tmp_path, capsys):
    (tmp_path / "head.toml").write_text(HEAD)
    assert deps.main([str(tmp_path / "nope.toml"), str(tmp_path / "head.toml")]) == 2
    assert "nope.toml: No such file" in capsys.readouterr().err
    assert deps.main([str(tmp_path / "head.toml")]) == 2
    assert "usage: python -m resnets.deps" in capsys.readouterr().err


def test_the_project_itself_is_the_same_as_itself(capsys):
    """The entry the workflow runs, on the real pyproject.toml (which tomllib must read)."""
    from pathlib import Path

    here = str(Path(__file__).resolve().parents[1] / "pyproject.toml")
    assert deps.main([here, here]) == 0 and capsys.readouterr().out == "same\n"


def test_without_a_toml_reader_it_says_what_is_needed(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(deps, "tomllib", None)
    code, out = verdict(tmp_path, capsys, HEAD)
    assert code == 2 and "needs Python >= 3.11 (tomllib) or the tomli package" in out.err
