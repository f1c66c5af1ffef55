"""The CLI: tables on stdout, one-line errors with exit code 2 on bad input."""
import subprocess
import sys

import pytest

from resnets import models


def run(*args):
    return subprocess.run([sys.executable, "-m", "resnets", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_models_table_lists_every_model_with_params():
    r = run("models")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["name", "family", "params", "input", "torchvision"]
    body = {ln.split()[0]: ln.split() for ln in lines[2:]}
    assert list(body) == models.names()
    assert body["resnet50"][2] == "25,557,032" and body["resnet50"][3] == "3x224x224"


def test_bad_option_is_one_line_and_exits_nonzero():
    r = run("models", "--bogus")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "--bogus" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_unknown_family_is_one_line():
    r = run("models", "--family", "vgg")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_cli_report_and_comparison_import_no_torch():
    """`resnets --help`, report and compare must run anywhere in seconds, without torch."""
    code = ("import sys, resnets, resnets.results, resnets.stats, resnets.report, "
            "resnets.compare, resnets.history, resnets.case, resnets.presets, resnets.schema, "
            "resnets.options, resnets.text, resnets.profiling.render; "
            "from resnets.cli import build_parser; build_parser(); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_the_parser_imports_neither_pandas_nor_numpy():
    """Every command's options are declared at start-up: a module-level import of the
    statistics there made `resnets --version` load pandas (0.09 s to 0.5 s)."""
    code = ("import sys; from resnets.cli import build_parser; build_parser(); "
            "sys.exit(sorted({'pandas', 'numpy', 'torch'} & set(sys.modules)) or 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
