"""Publishing a hostile run folder, and values that would reach git as options (issue 27,
items 1, 4 and 12): symlinks, FIFOs and folders in ``cases/`` publish nothing of their
targets, the temporary clone is gone whatever happens, ``--branch``/``--remote`` and the
gate's ``--base``/``--head`` never become git options, and git's own reason is kept."""
import json
import os
import subprocess
import sys

import pytest

from resnets import cli, files, gate
from resnets import publish as publish_module
from resnets.errors import UserError

SECRET = "TOP-SECRET-7f3a"


def bare(path):
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def run_folder(path, **state):
    """A finished run as ``resnets run`` leaves it: cases/*.json and run-state.json."""
    (path / "cases").mkdir(parents=True)
    (path / "cases" / "lenet.json").write_text(json.dumps({"benchmarks": [], "case": 1}))
    (path / "run-state.json").write_text(json.dumps(
        {"complete": True, "planned": 1, "attempted": 1, **state}))
    return path


def published_text(remote, branch="benchmark-results") -> tuple[list[str], str]:
    """(every path on ``branch``, the text of every object in the remote)."""
    git = ["git", "--git-dir", str(remote)]
    paths = subprocess.run([*git, "ls-tree", "-r", "--name-only", branch], capture_output=True,
                           text=True, check=True).stdout.split()
    objects = subprocess.run([*git, "cat-file", "--batch-all-objects", "--batch"],
                             capture_output=True, check=True).stdout
    return paths, objects.decode("utf-8", "replace")


def cli_publish(*args, cwd, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "resnets", "publish", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, **(env or {})})


def test_links_fifos_and_folders_in_a_run_publish_none_of_their_targets(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "inner.json").write_text(json.dumps({"x": SECRET}))
    run = run_folder(tmp_path / "night")
    cases = run / "cases"
    (cases / "zz.json").symlink_to(secret)                  # a file
    (cases / "tree.json").symlink_to(tmp_path / "elsewhere")  # a folder
    (cases / "up").symlink_to("..")                          # a loop
    os.mkfifo(cases / "pipe.json")                           # blocks whoever reads it
    (cases / "sub.json").mkdir()
    (cases / "sub.json" / "x.json").write_text(json.dumps({"x": SECRET}))
    (run / "run-options.json").symlink_to(secret)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    remote = bare(tmp_path / "history.git")

    r = cli_publish(run, "--remote", remote, cwd=tmp_path, env={"TMPDIR": str(tmp)})
    assert r.returncode == 0, r.stderr
    paths, text = published_text(remote)
    assert paths == ["runs/night/cases/lenet.json", "runs/night/run-state.json"]
    assert SECRET not in text
    warnings = r.stderr.strip().splitlines()
    skipped = ["pipe.json", "run-options.json", "sub.json", "tree.json", "up", "zz.json"]
    assert len(warnings) == len(skipped), r.stderr
    assert all(line.startswith("resnets: warning: skipped ") for line in warnings), r.stderr
    for name in skipped:
        assert sum(f"/{name}: " in line for line in warnings) == 1, (name, r.stderr)
    assert list(tmp.iterdir()) == []  # the temporary clone is gone


def test_a_case_file_over_the_size_limit_is_not_published(tmp_path, monkeypatch, capsys):
    run = run_folder(tmp_path / "night")
    (run / "cases" / "huge.json").write_text(json.dumps({"pad": "x" * 500}))
    monkeypatch.setattr(files, "MAX_BYTES", 200)
    remote = bare(tmp_path / "history.git")
    assert publish_module.publish(run, str(remote)) == "runs/night"
    assert "huge.json: larger than" in capsys.readouterr().err
    assert published_text(remote)[0] == ["runs/night/cases/lenet.json",
                                         "runs/night/run-state.json"]


def test_linked_run_state_or_cases_folder_is_not_a_run(tmp_path):
    """A run-state.json that links to another run's says nothing about this one; a
    cases/ that links elsewhere is not this run's."""
    other = run_folder(tmp_path / "other")
    run = tmp_path / "night"
    (run / "cases").mkdir(parents=True)
    (run / "run-state.json").symlink_to(other / "run-state.json")
    remote = bare(tmp_path / "history.git")
    with pytest.raises(UserError, match="not a complete run .no readable run-state.json"):
        publish_module.publish(run, str(remote))
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "cases").symlink_to(other / "cases")
    (linked / "run-state.json").write_text((other / "run-state.json").read_text())
    with pytest.raises(UserError, match="not a run folder"):
        publish_module.publish(linked, str(remote))


@pytest.mark.parametrize("option", ["--branch", "--remote"])
def test_a_value_that_git_would_take_for_an_option_runs_nothing(tmp_path, option):
    """``--branch '--upload-pack=touch PWNED;'`` once ran the command in git fetch."""
    marker = tmp_path / "PWNED"
    run = run_folder(tmp_path / "night")
    values = {"--remote": str(bare(tmp_path / "history.git")), "--branch": "benchmark-results"}
    values[option] = f"--upload-pack=touch {marker};"
    r = cli_publish(run, *(x for kv in values.items() for x in kv), cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert ("not a valid branch name" if option == "--branch" else "does not start with '-'") \
        in r.stderr
    assert not marker.exists()


@pytest.mark.parametrize("branch", ["a b", "x..y", "@{-1}", "HEAD:refs/heads/main", "-x"])
def test_a_branch_name_git_would_refuse_is_refused_first(tmp_path, branch):
    with pytest.raises(UserError, match="not a valid branch name"):
        publish_module.publish(run_folder(tmp_path / "night"), str(bare(tmp_path / "h.git")),
                               branch=branch)


def test_a_branch_with_a_path_is_published_there(tmp_path):
    remote = bare(tmp_path / "history.git")
    publish_module.publish(run_folder(tmp_path / "night"), str(remote), branch="results/ci")
    assert "runs/night/run-state.json" in published_text(remote, "results/ci")[0]


def test_git_gives_its_reason_and_nothing_is_left_behind(tmp_path):
    """The last line of git's message ("and the repository exists.") is advice; the
    first fatal: line is the reason."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = cli_publish(run_folder(tmp_path / "night"), "--remote", tmp_path / "missing.git",
                    cwd=tmp_path, env={"TMPDIR": str(tmp)})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "does not appear to be a git repository" in r.stderr, r.stderr
    assert "repository exists" not in r.stderr
    assert list(tmp.iterdir()) == []


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
                  "-m", "one"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    return repo


@pytest.mark.parametrize("side", ["--base", "--head"])
def test_gate_refs_that_start_with_a_dash_are_refused_before_git(repo, tmp_path, side, capsys):
    marker = tmp_path / "PWNED"
    with pytest.raises(SystemExit) as exit_:  # an argument error, before anything runs
        cli.main(["gate", "--repo", str(repo), f"{side}=--output={marker}",
                  "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {side}" in err, err
    assert "does not start with '-'" in err
    assert len(err.strip().splitlines()) == 1 and not marker.exists()
    made = []
    with pytest.raises(UserError, match=f"{side} '--output=.*does not start with '-'"):
        refs = {"--base": "main", "--head": "HEAD", side: f"--output={marker}"}
        gate.worktrees(repo, refs["--base"], refs["--head"], tmp_path / "src", made)
    assert made == [] and not marker.exists()


def test_gate_worktrees_take_any_revision_and_name_a_bad_one(repo, tmp_path):
    made = []
    try:
        trees = gate.worktrees(repo, "main", "HEAD~0", tmp_path / "src", made)
        assert trees["base"][1] == trees["head"][1] and len(made) == 2
    finally:
        gate.remove_worktrees(repo, made)
    with pytest.raises(UserError, match=r"--head 'nope': git rev-parse: fatal: "):
        gate.worktrees(repo, "main", "nope", tmp_path / "src2", [])
