"""Measurement statistics on raw samples."""
import numpy as np
import pytest

from resnets.stats import Measurement


def test_summary_matches_numpy_and_pytest_benchmark():
    """Our own fields (p90, p99) are numpy's quantiles; the fields pytest-benchmark
    defines are its ``Stats``, whose quartiles follow other rules than numpy's."""
    from pytest_benchmark.stats import Stats

    rng = np.random.default_rng(0)
    x = rng.lognormal(-5, 0.1, size=501)
    m = Measurement(tuple(x))
    s = m.summary()
    theirs = Stats()
    for v in x:
        theirs.update(float(v))
    assert s.rounds == 501
    assert s.median == pytest.approx(np.median(x))
    assert (s.q1, s.q3, s.iqr) == (theirs.q1, theirs.q3, theirs.iqr)
    assert s.q1 != np.quantile(x, 0.25)  # numpy's interpolation: the old, second answer
    assert s.p99 == pytest.approx(np.quantile(x, 0.99))
    assert s.stddev == pytest.approx(np.std(x, ddof=1))
    assert s.min == x.min() and s.max == x.max()


def test_median_ci_covers_the_true_median_about_95_percent():
    rng = np.random.default_rng(1)
    true_median = np.exp(0.0)  # lognormal(0, s) has median 1
    hits = 0
    for _ in range(400):
        lo, hi = Measurement(tuple(rng.lognormal(0, 0.3, size=40))).median_ci()
        hits += lo <= true_median <= hi
    assert 0.92 <= hits / 400 <= 0.995


def test_ci_narrows_with_more_samples():
    rng = np.random.default_rng(2)
    wide = Measurement(tuple(rng.normal(1, 0.05, 20))).median_ci_rel()
    narrow = Measurement(tuple(rng.normal(1, 0.05, 2000))).median_ci_rel()
    assert narrow < wide / 4


def test_pytest_benchmark_stats_block():
    m = Measurement((0.3, 0.1, 0.2, 0.2, 5.0))
    s = m.pytest_benchmark_stats()
    assert s["data"] == [0.3, 0.1, 0.2, 0.2, 5.0] and s["rounds"] == 5
    assert s["median"] == 0.2 and s["iqr_outliers"] == 1 and s["hd15iqr"] == 0.3


def test_empty_measurement_is_rejected():
    with pytest.raises(ValueError):
        Measurement(())
