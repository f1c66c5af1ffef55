"""The pull-request gate and the history push end to end, on CPU, in temporary git
repositories: what the GPU workflow runs, with a head that really is slower.

The slowed head spins in every model's forward for 60% of the forward's own time (a
slowdown far above the noise, so the test stands on a busy machine); the unchanged head
is the merge-base itself. alpha is 0.001 here, so an A/A false alarm (at most 0.1% of
runs by construction) does not make the test flaky. Each real gate costs seconds of
interpreter and torch start-up, so each times as little as its test needs: the gates
that must see a slowdown a 1 s budget (less drowns it on the busy 2-core machine), the
others 0.2 s; tests of what the comment and the history push say use no gate at all.
"""
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import cli, git, once, slow_setup

from resnets import publish as publish_module
from resnets.compare.render import MARKER

ROOT = Path(__file__).resolve().parents[1]
SLOW = '''
def _slow(name, model):
    import time

    def pre(m, args):
        m._t0 = time.perf_counter()

    def post(m, args, out):
        end = time.perf_counter() + FACTOR * (time.perf_counter() - m._t0)
        while time.perf_counter() < end:
            pass

    if name in SLOWED:
        model.register_forward_pre_hook(pre)
        model.register_forward_hook(post)
    return model
'''
# A head whose lenet never returns from a forward, and whose lenet_bn raises in every one.
BROKEN = '''
def _broken(name, model):
    import time

    def hang(m, args):
        while True:
            time.sleep(0.05)

    def pre(m, args):
        raise RuntimeError("bad input")

    model.register_forward_pre_hook(hang if name == "lenet" else pre)
    return model
'''
CASES = ["--preset", "quick", "--models", "lenet,lenet_bn", "--modes", "infer", "--devices",
         "cpu", "--memory-formats", "contiguous", "--precisions", "fp32", "--time-budget", "1",
         "--repeats", "1", "--alpha", "0.001", "--threads", "1"]
# One thread: two OpenMP threads on two cores beside other busy processes can stretch a
# step 50-fold and drown any slowdown; one thread keeps the gate's proof possible there.
QUICK = ["--time-budget", "0.2"]  # for the gates that need no power (later options win)


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> Path:
    """main: this checkout's package; branch slow: the same with every forward slowed by
    60%; mixed30: lenet_bn's slowed by 30%, lenet's not; broken: lenet hangs, lenet_bn
    raises. One per worker (a second), never shared: each test checks that its gate
    removed its worktrees, which another worker's gate in the same repository would
    hold."""
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "resnets", repo / "resnets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    registry = repo / "resnets" / "models" / "registry.py"
    original = registry.read_text()
    call = "    return _BUILDERS[_check(name)](**kwargs)"
    for branch, hook, code in (
            ("slow", "_slow", f"FACTOR = 0.6\nSLOWED = ('lenet', 'lenet_bn')\n{SLOW}"),
            ("mixed30", "_slow", f"FACTOR = 0.3\nSLOWED = ('lenet_bn',)\n{SLOW}"),
            ("broken", "_broken", BROKEN)):
        git(repo, "checkout", "-q", "-b", branch, "main")
        registry.write_text(original.replace(
            call, f"    return {hook}(name, _BUILDERS[_check(name)](**kwargs))") + code)
        git(repo, "commit", "-qam", branch)
    git(repo, "checkout", "-q", "main")
    return repo


def gate(repo, out, head, *extra):
    """``resnets gate`` in this process (its workers are processes of their own, as in
    CI): a fresh interpreter would add seconds of start-up and imports to every gate;
    test_sigterm_stops_a_gate_stuck_on_a_hung_head_within_seconds starts one as a user
    does."""
    return cli("gate", "--repo", repo, "--base", "main", "--head", head, *CASES, *extra,
               "-o", out)


@pytest.mark.slow
def test_a_slowed_head_fails_the_gate_with_a_comment(repo, tmp_path):
    """The head is 1.6x slower. On a machine so loaded that the noise would hide even
    that (the case's detectable slowdown above 60%), the only right answer is "noisy";
    anything else must be a failed gate, each case a regression or (under load) noisy,
    never unchanged or faster. (One case: the gate's every case is timed the same way,
    and test_an_unchanged_head_passes sees two.)"""
    r = gate(repo, tmp_path / "out", "slow", "--models", "lenet")
    doc = json.loads((tmp_path / "out" / "compare.json").read_text())
    drowned = all(c["verdict"] == "noisy" and c["timing"]["detectable"] > 0.6
                  for c in doc["cases"])
    body = (tmp_path / "out" / "compare.md").read_text()
    assert body.startswith(MARKER) and len(body) < 60_000
    if drowned:
        assert r.returncode == 0 and "noisy" in body
    else:
        assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
        assert "FAIL" in body and "regression" in body
        slowed = [c for c in doc["cases"] if c["verdict"] == "regression"]
        assert slowed and all(c["timing"]["ratio"] > 1.05 for c in slowed)
        assert all(c["timing"]["paired"] for c in slowed)
        assert {c["verdict"] for c in doc["cases"]} <= {"regression", "noisy"}
    state = json.loads((tmp_path / "out" / "gate.json").read_text())
    assert state["commits"]["head"] == git(repo, "rev-parse", "slow")
    assert state["commits"]["base"] == git(repo, "rev-parse", "main")
    assert git(repo, "worktree", "list").count("\n") == 0  # the worktrees are gone


@pytest.mark.slow
def test_two_processes_pass_an_unchanged_head_and_fail_one_30_percent_slower(repo, tmp_path):
    """The mode the GPU workflow uses when dependencies change (one worker process per
    side, each drawing its own level), with its own noise prior, in one gate whose head
    leaves lenet as it was (A/A: nothing called a regression or an improvement) and makes
    lenet_bn 30% slower: a regression and exit 1 (or, where load drowns even that,
    noisy)."""
    r = gate(repo, tmp_path / "out", "mixed30", "--two-processes")
    doc = json.loads((tmp_path / "out" / "compare.json").read_text())
    verdicts = {c["key"].split("-")[0]: c for c in doc["cases"]}
    assert verdicts.keys() == {"lenet", "lenet_bn"}, r.stdout[-3000:] + r.stderr[-3000:]
    assert verdicts["lenet"]["verdict"] not in {"regression", "improvement"}
    assert "one process per side" in (tmp_path / "out" / "compare.md").read_text()
    slowed = verdicts["lenet_bn"]
    if not (slowed["verdict"] == "noisy" and slowed["timing"]["detectable"] > 0.3):
        assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
        assert slowed["verdict"] == "regression"
    else:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.fixture(scope="session")
@slow_setup
def broken_gate(request, repo) -> Path:
    """One gate on the broken head, read by both of its tests: lenet's head hangs (its
    case times out, 8 s: 40 times the budget, so a loaded machine still times the base
    alone within it), then lenet_bn's raises."""
    def make(folder):
        r = gate(repo, folder / "out", "broken", *QUICK, "--case-timeout", "8")
        (folder / "rc").write_text(str(r.returncode))
        (folder / "output").write_text(r.stdout[-3000:] + r.stderr[-3000:])

    return once(request, "test_gate-broken-head", make)


@pytest.mark.parametrize("model, why", [("lenet", "the head side gave no answer within"),
                                        ("lenet_bn", "RuntimeError: bad input")])
def test_a_hung_or_raising_head_is_a_newly_failing_case_and_the_base_is_kept(
        broken_gate, model, why):
    """A head whose forward never returns was 'pass 1' for minutes with nothing written;
    one that raises was exit 2, 'baseline: no benchmark results' (the base was recorded
    as skipped). Each is now exit 1: the base timed alone and kept, the head failed with
    what happened, in compare.md."""
    out = broken_gate / "out"
    assert (broken_gate / "rc").read_text() == "1", (broken_gate / "output").read_text()
    case = f"{model}-infer-"
    (row,) = [line for line in (out / "compare.md").read_text().splitlines()
              if f"| {case}" in line]
    assert row.startswith("| failed") and why in row, row
    (base,) = (out / "base" / "r1" / "cases").glob(f"{case}*.json")
    extra = json.loads(base.read_text())["benchmarks"][0]["extra_info"]
    assert extra["status"] == "ok" and "alone" in extra["timing"]["pairing"]


@pytest.mark.slow
def test_sigterm_stops_a_gate_stuck_on_a_hung_head_within_seconds(repo, tmp_path):
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "resnets", "gate", "--repo", str(repo),
                             "--base", "main", "--head", "broken", *CASES, *QUICK,
                             "--models", "lenet", "-o", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "out" / "pair-worker.log"
    deadline = time.time() + 120
    while time.time() < deadline and "head side: start" not in (
            log.read_text() if log.exists() else ""):
        time.sleep(0.1)
    time.sleep(1)  # the head is inside its hung warm-up now
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 143 and time.time() - t0 < 8


@pytest.mark.slow
def test_an_unchanged_head_passes(repo, tmp_path):
    r = gate(repo, tmp_path / "out", "main", *QUICK)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    doc = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert doc["counts"].get("regression", 0) == 0 and len(doc["cases"]) == 2
    for side in ("base", "head"):  # each side's records, as resnets run writes them
        assert len(list((tmp_path / "out" / side / "r1" / "cases").glob("*.json"))) == 2


@pytest.mark.parametrize("args, message", [
    (["--blocks", "2"], "--blocks: at least 3"),
    (["--alpha", "0.6"], "--alpha must be between 0 and 0.5"),
    (["--threshold", "150%"], "--threshold must be a fraction in (0, 1)"),
    (["--head", "no-such-ref"], "git rev-parse: fatal: "),
    (["--base-src", "{empty}", "--head-src", str(ROOT)], "no resnets package in it"),
    (["--base-src", "{broken}", "--head-src", str(ROOT)],
     "could not start: the pair worker ended (exit 1): RuntimeError: broken package"),
])
@pytest.mark.slow
def test_bad_gate_input_is_one_line_before_anything_is_measured(repo, tmp_path, args, message):
    """Each was a traceback, a Python list in the message, or an error only after a
    whole pass had been measured."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken" / "resnets").mkdir(parents=True)
    (tmp_path / "broken" / "resnets" / "__init__.py").write_text(
        "raise RuntimeError('broken package')\n")
    args = [a.format(empty=tmp_path / "empty", broken=tmp_path / "broken") for a in args]
    r = cli("gate", "--repo", repo, "--base", "main", *CASES, *args, "-o", tmp_path / "out")
    assert r.returncode == 2 and message in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
    assert "['" not in r.stderr
    assert not list((tmp_path / "out").glob("*/r1"))  # nothing measured
    assert git(repo, "worktree", "list").count("\n") == 0


def test_the_comment_body_stays_short_at_any_case_count(tmp_path):
    """The comment is cut to fit GitHub's limit, and says how many cases it left out, at
    every case count: from one case, through the count where the table first outgrows
    the limit (found by halving), to thousands. The cases are a real comparison's (a
    regression, an unchanged case and one that newly fails, with its error), repeated
    under new names: the comment's length is the point, not the measuring."""
    import re

    import records
    from records import steady

    from resnets.case import Case
    from resnets.compare import Options, compare
    from resnets.compare.render import MAX_COMMENT, markdown

    cases = [Case(f"m{i}", batch_size=1, input_shape=(1, 8, 8)) for i in range(3)]
    records.write(tmp_path / "a", *(records.speed(c, steady(0.01, n=12, seed=i))
                                    for i, c in enumerate(cases)))
    records.write(tmp_path / "b", *(records.speed(c, s) for c, s in zip(cases, [
        steady(0.02, n=12, seed=7), steady(0.01, n=12, seed=8), None])))
    real = compare([tmp_path / "a"], [tmp_path / "b"], Options())
    assert {c.verdict for c in real.cases} == {"regression", "unchanged", "failed"}

    def body(n):
        many = [replace(real.cases[i % 3], key=f"{i:05d}-{real.cases[i % 3].key}")
                for i in range(n)]
        text = markdown(replace(real, cases=many))
        shown = [c.key for c in many if c.verdict != "unchanged"]
        listed = re.findall(r"^\| (?!verdict )\w+ \| (\S+) \|", text, re.MULTILINE)  # in order
        assert len(text) <= MAX_COMMENT, (n, len(text))
        same = len(many) - len(shown)
        assert (f"\n{same} case(s) unchanged." in text) == bool(same)
        cut = re.search(r"_(\d+) more case\(s\) not listed here for length", text)
        assert listed == shown[:len(listed)]  # the first ones, in order
        assert (int(cut.group(1)) if cut else 0) == len(shown) - len(listed), n
        return bool(cut)

    assert not any(map(body, (1, 2, 3, 30)))
    assert all(map(body, (1500, 5000)))
    fits, cut = 30, 1500  # the smallest count cut: just past the largest that fits
    while cut - fits > 1:
        middle = (fits + cut) // 2
        fits, cut = (fits, middle) if body(middle) else (middle, cut)
    assert body(cut + 1) and body(cut + 2)


@pytest.fixture(scope="session")
@slow_setup
def tiny_run(request) -> Path:
    """One real run (lenet inference, 0.1 s) that the publishing tests copy: what
    resnets run writes (cases, run-state.json, run-options.json) is what they publish."""
    def make(folder):
        r = subprocess.run([sys.executable, "-m", "resnets", "run", "--models", "lenet",
                            "--modes", "infer", "--memory-formats", "contiguous",
                            "--precisions", "fp32", "--devices", "cpu", "--time-budget",
                            "0.1", "--no-convergence", "--no-report", "-o",
                            str(folder / "run")], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]

    return once(request, "test_gate-tiny-run", make) / "run"


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def test_history_is_pushed_with_rebase_and_retry(tiny_run, tmp_path, monkeypatch):
    """Two jobs publishing at once: the second's first push is rejected (the branch
    moved), so it fetches, rebases and pushes again; both runs end up on the branch."""
    remote = tmp_path / "history.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    run = copy_run(tiny_run, tmp_path / "night1")
    assert publish_module.publish(run, str(remote)) == "runs/night1"

    real_git, raced = publish_module.git, []

    def racing_git(cwd, *args, check=True):
        if args[0] == "push" and not raced:  # another job lands first
            raced.append(True)
            other = tmp_path / "other"
            subprocess.run(["git", "clone", "-q", "-b", "benchmark-results", str(remote),
                            str(other)], check=True)
            (other / "runs" / "elsewhere").mkdir(parents=True)
            (other / "runs" / "elsewhere" / "note").write_text("x")
            git(other, "add", ".")
            git(other, "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-qm", "other")
            git(other, "push", "-q", "origin", "benchmark-results")
        return real_git(cwd, *args, check=check)

    monkeypatch.setattr(publish_module, "git", racing_git)
    monkeypatch.setattr(publish_module.time, "sleep", lambda s: None)
    second = copy_run(tiny_run, tmp_path / "night2")
    assert publish_module.publish(second, str(remote)) == "runs/night2"
    listing = subprocess.run(["git", "--git-dir", str(remote), "ls-tree", "-r", "--name-only",
                              "benchmark-results"], capture_output=True, text=True).stdout
    assert "runs/night1/cases/" in listing and "runs/night2/cases/" in listing
    assert "runs/elsewhere/note" in listing and raced


@pytest.mark.parametrize("name", ["../../escaped", "a/b", ".hidden"])
def test_a_published_name_is_one_folder(tiny_run, tmp_path, name):
    """A --name with a path in it once copied the run outside the temporary clone."""
    remote = tmp_path / "history.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    r = cli("publish", copy_run(tiny_run, tmp_path / "night1"), "--remote", remote,
            "--name", name, cwd=tmp_path)
    assert r.returncode == 2 and "a name under runs/ is letters" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.git", "night1"]


def test_a_partial_run_is_refused_unless_marked(tiny_run, tmp_path):
    remote = tmp_path / "history.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    run = copy_run(tiny_run, tmp_path / "cut")
    state = json.loads((run / "run-state.json").read_text())
    state["complete"] = False
    (run / "run-state.json").write_text(json.dumps(state))
    r = cli("publish", run, "--remote", remote)
    assert r.returncode == 2 and "not a complete run" in r.stderr
    r = cli("publish", run, "--remote", remote, "--partial")
    assert r.returncode == 0 and "runs/cut-partial" in r.stdout


def test_a_change_counts_only_once_a_second_pair_agrees():
    """Cases beyond the threshold that one pair has seen, and cases too noisy to see twice
    the threshold, are timed again; quiet unchanged ones and confirmed ones are not."""
    from types import SimpleNamespace

    from resnets.gate import again

    def case(key, ratio, detectable):
        return SimpleNamespace(key=key, timing=SimpleNamespace(ratio=ratio,
                                                               detectable=detectable))
    result = SimpleNamespace(cases=[case("quiet", 1.01, 0.06), case("slower", 1.08, 0.06),
                                    case("faster", 0.90, 0.06), case("noisy", 1.0, 0.2),
                                    case("confirmed", 1.08, 0.06),
                                    SimpleNamespace(key="memory only", timing=None)])
    done = {"quiet": 1, "slower": 1, "faster": 1, "noisy": 2, "confirmed": 2}
    assert again(result, done, 0.05) == {"slower", "faster", "noisy"}
