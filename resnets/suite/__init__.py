"""The pytest-benchmark suite: a pytest plugin (options, case parametrization, result
files) and the benchmark test functions. ``bench/`` in the repository and ``resnets run``
both use these, so there is one suite."""
