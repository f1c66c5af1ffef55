from resnets.suite.speed import test_speed  # noqa: F401
