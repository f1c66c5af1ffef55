from resnets.suite.convergence import test_convergence  # noqa: F401
