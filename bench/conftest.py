# The suite's options, parametrization and result files come from the installed package,
# so `pytest bench` and `resnets run` are one suite.
from resnets.suite.plugin import *  # noqa: F401,F403
