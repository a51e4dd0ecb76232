"""Shared test setup: each real service lives in a plugin under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.gunicorn",
    "tests.fixtures.mlflow",
    "tests.fixtures.granian",
    "tests.fixtures.redis",
    "tests.fixtures.chromium",
    "tests.fixtures.workers",
    "tests.fixtures.palladium",
    "tests.fixtures.podman",
    "tests.fixtures.online",
    "tests.fixtures.mlserver",
]
