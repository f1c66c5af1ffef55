"""What data can do to a terminal and a PR comment, and the CLI's last lines (issue 27,
items 7, 11 and 12): control sequences in model names, file names and environments
reach the terminal as visible text on one line; ``@mentions`` and ``#123`` in
compare.md ping and link nothing; a reader that leaves a pipe early is no error; an
OSError is one clean line."""
import os
import re
import shutil
import subprocess
import sys

import pytest
import records

from resnets import cli
from resnets.case import Case
from resnets.commands import models as models_command
from resnets.text import md, printable, text_table

OSC_TITLE = "\x1b]0;pwned\x07"   # retitles the terminal
CLEAR = "\x1b[2J\x1b[H"          # clears it
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # anything but \t and \n
LIVE_MENTION = re.compile(r"@\w|(?<!&)#\d|GH-\d", re.IGNORECASE)


@pytest.mark.parametrize("raw, shown", [
    (f"a{OSC_TITLE}b", "a\\x1b]0;pwned\\x07b"),
    ("x\ny\r\tz", "x y  z"),
    ("csi\x9b31m", "csi\\x9b31m"),               # C1: CSI in one character
    ("abc\u202edcba", "abc\\u202edcba"),          # right-to-left override
    ("line\u2028sep", "line sep"),
    ("résumé ✓ lenet_bn 3x224x224", "résumé ✓ lenet_bn 3x224x224"),
])
def test_printable_shows_controls_as_text_on_one_line(raw, shown):
    assert printable(raw) == shown


def test_a_text_table_keeps_its_shape_whatever_the_cells_hold():
    table = text_table(["name", "n"], [[f"a{CLEAR}\nb", 1], [f"c{OSC_TITLE}", 22]],
                       [False, True])
    lines = table.splitlines()
    assert len(lines) == 4 and not CONTROL.search(table)
    assert len({len(line) for line in lines[1:]}) == 1  # aligned: every row as wide


@pytest.mark.parametrize("raw, escaped", [
    ("@everyone", "@&#8203;everyone"), ("ping @org/team now", "ping @&#8203;org/team now"),
    ("fixes #1", "fixes #&#8203;1"), ("GH-12", "GH-&#8203;12"),
    ("owner/repo#7", "owner/repo#&#8203;7"),
])
def test_markdown_pings_and_links_nothing(raw, escaped):
    assert md(raw) == escaped and not LIVE_MENTION.search(md(raw))


@pytest.mark.parametrize("plain", ["C# and F#", "## not a heading", "#tag", "a @ b"])
def test_markdown_leaves_what_links_nothing_as_it_was(plain):
    assert md(plain) == plain


def hostile_pair(tmp_path):
    """Two runs of a model whose name carries a title change, a mention and a
    reference, the candidate 50% slower on a CPU whose name clears the screen."""
    case = Case(f"m{OSC_TITLE}@everyone #1", input_shape=(1, 8, 8))
    runs = []
    for k, (level, cpu) in enumerate(((1.0, "Test CPU"), (1.5, f"cpu{CLEAR}"))):
        runs.append(records.write(tmp_path / f"run{k}", records.speed(
            case, records.steady(0.01 * level, seed=k), {"cpu_model": cpu})))
    return runs


def test_compare_prints_no_control_sequence_and_comments_ping_nobody(tmp_path, capsys):
    base, cand = hostile_pair(tmp_path)
    code = cli.main(["compare", str(base), str(cand), "--allow-env-mismatch",
                     "--markdown", str(tmp_path / "c.md")])
    out = capsys.readouterr().out
    assert code == 1, out
    assert not CONTROL.search(out) and "\\x1b]0;pwned\\x07" in out and "cpu\\x1b[2J" in out
    comment = (tmp_path / "c.md").read_text()
    assert "everyone" in comment and not LIVE_MENTION.search(comment), comment


def test_advise_prints_no_control_sequence(tmp_path, capsys):
    model = f"r{CLEAR}"
    run = records.write(tmp_path / "run", *(
        records.speed(Case(model, "infer", device="cpu", precision=p, batch_size=4,
                           input_shape=(3, 32, 32)), records.steady(step, seed=i))
        for i, (p, step) in enumerate((("fp32", 0.010), ("bf16", 0.005)))))
    assert cli.main(["advise", str(run)]) == 0
    out = capsys.readouterr().out
    assert "r\\x1b[2J" in out and "use contiguous-bf16-eager" in out and not CONTROL.search(out)


def test_a_skipped_file_is_named_on_one_line(tmp_path, capsys):
    run, _ = hostile_pair(tmp_path)
    (run / "cases" / f"bad{CLEAR}\nname.json").write_text("{not json")
    assert cli.main(["compare", str(run), str(run)]) == 0
    lines = capsys.readouterr().err.splitlines()  # the folder is read once per side
    assert lines and all(x.startswith("resnets: warning: skipped ") for x in lines), lines
    assert all("bad\\x1b[2J\\x1b[H name.json" in x and not CONTROL.search(x) for x in lines)


# --- the CLI's last lines ----------------------------------------------------------------

def shell(command: str, unbuffered: bool) -> subprocess.CompletedProcess:
    """``command`` under pipefail; with ``unbuffered`` (PYTHONUNBUFFERED, common in CI)
    the pipe breaks in mid-print, else in the last flush."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                          text=True, timeout=120,
                          env={**env, **({"PYTHONUNBUFFERED": "1"} if unbuffered else {})})


RESNETS = f"{sys.executable} -m resnets"


@pytest.mark.slow
def test_models_into_head_is_no_error():
    r = shell(f"{RESNETS} models | head -1", unbuffered=False)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith("name ") and r.stdout.count("\n") == 1


@pytest.mark.parametrize("unbuffered", [False, True])
@pytest.mark.parametrize("reader", ["head -1", "true"])
def test_a_reader_that_leaves_early_keeps_the_exit_code(tmp_path, reader, unbuffered):
    """Under pipefail, `compare | head -1` still fails on a regression, and says nothing
    more: ``true`` leaves before anything is written, ``head -1`` after the first line."""
    base, cand = hostile_pair(tmp_path)
    r = shell(f"{RESNETS} compare {base} {cand} --allow-env-mismatch | {reader}", unbuffered)
    assert r.returncode == 1 and r.stderr == "", r.stderr
    assert r.stdout.count("\n") == (reader == "head -1")


def test_a_broken_pipe_that_is_not_stdout_is_an_error(monkeypatch, capsys):
    """A worker's pipe that broke is no reader leaving: exit 2, not a silent 0."""
    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(models_command, "main", broken)
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err == "resnets models: error: Broken pipe\n"


@pytest.mark.parametrize("exc, line", [
    (shutil.Error([("/r/cases/p.json", "/t/p.json", "`/r/cases/p.json` is a named pipe"),
                   ("/r/cases/q.json", "/t/q.json", "x")]),
     "/r/cases/p.json: `/r/cases/p.json` is a named pipe (and 1 more)"),
    (OSError(6, "No such device or address", "/r/pipe.json"),
     "/r/pipe.json: No such device or address"),
    (OSError("disk\nfull"), "disk full"),
])
def test_an_os_error_is_one_clean_line(monkeypatch, capsys, exc, line):
    def fails(args):
        raise exc

    monkeypatch.setattr(models_command, "main", fails)
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err == f"resnets models: error: {line}\n"
