"""tox.ini under tox 4: every environment has its own env dir (the earlier tox.ini shared
one, and tox 4 broke on it), arguments after ``--`` reach the commands, and ``tox -e
lint`` passes in a fresh copy of the tree (what a clone holds: the tracked files and
new ones git does not ignore). Skips where tox is not installed (pip install -e '.[test]')."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOX = shutil.which("tox") or str(Path(sys.executable).with_name("tox"))
needs_tox = pytest.mark.skipif(not Path(TOX).exists(), reason="tox is not installed")
ENVS = ("test", "lint", "bench", "report")


def tox(*args, cwd=ROOT, timeout=120):
    return subprocess.run([TOX, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def settings(text: str) -> dict[str, dict[str, str]]:
    """``tox config`` output as {env: {key: value}}."""
    out: dict[str, dict[str, str]] = {}
    env = None
    for line in text.splitlines():
        if line.startswith("[testenv:"):
            env = out.setdefault(line[len("[testenv:"):-1], {})
        elif env is not None and " = " in line:
            key, value = line.split(" = ", 1)
            env[key] = value
    return out


@needs_tox
def test_each_env_has_its_own_env_dir_and_gets_the_arguments():
    r = tox("config", "-e", ",".join(ENVS), "-k", "env_dir", "commands", "skip_install",
            "--", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    got = settings(r.stdout)
    assert sorted(got) == sorted(ENVS)
    assert len({got[e]["env_dir"] for e in ENVS}) == len(ENVS)
    assert got["bench"]["commands"] == "resnets run --preset quick --dry-run"
    assert got["report"]["commands"] == "resnets report --dry-run"
    assert got["test"]["commands"].startswith("python -m pytest tests -q -n 2 --dist load")
    assert got["lint"]["skip_install"] == "True"  # lint never installs torch


@needs_tox
@pytest.mark.slow
def test_tox_lint_passes_in_a_fresh_copy(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: which files a clone holds is unknown")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=ROOT, capture_output=True,
                           check=True, timeout=60).stdout.decode().split("\0")
    copy = tmp_path / "tree"
    for name in filter(None, files):
        if (ROOT / name).is_file():  # a tracked file deleted in the work tree is not copied
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    r = tox("-e", "lint", cwd=copy, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "lint: OK" in r.stdout
