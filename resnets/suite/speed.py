"""Speed benchmarks: one per case of the selected matrix (see ``plugin``)."""


def test_speed(benchmark, speed_case, bench_session):
    """Throughput, latency, memory and FLOPs of one case; the stats are per-step times."""
    bench_session.run_speed(benchmark, speed_case)
