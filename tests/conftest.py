"""Root fixtures; each area keeps its own in tests/plugins/<area>.py."""

pytest_plugins = [
    "tests.plugins.cloud",
    "tests.plugins.edge",
    "tests.plugins.mqtt",
    "tests.plugins.deploy",
]
