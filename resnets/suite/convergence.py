"""Convergence benchmarks: one per (experiment run, seed); see ``resnets.convergence``."""


def test_convergence(benchmark, convergence_trial, bench_session):
    """Iterations and seconds to the target accuracy, with the whole accuracy curve."""
    bench_session.run_convergence(benchmark, convergence_trial)
