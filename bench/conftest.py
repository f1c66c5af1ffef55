# The suite's options, parametrization and result files come from the installed package,
# so `pytest bench` and `resnets run` are one suite. Registered as a plugin by name, so a
# run that also passes `-p resnets.suite.plugin` gets it once.
def pytest_addoption(parser, pluginmanager):
    pluginmanager.import_plugin("resnets.suite.plugin")
