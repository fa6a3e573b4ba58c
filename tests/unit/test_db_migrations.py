"""Alembic migrations: they build exactly the tables the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from cloud.db.migrate import alembic_config, current_revision, head_revision, upgrade
from cloud.db.models import Base
from cloud.db.session import make_engine


def test_upgrade_creates_every_table_and_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'linewatch.db'}"  # the folder is created

    assert upgrade(url) == head_revision() == "0004"

    engine = make_engine(url)
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    expected = {
        "nodes",
        "alerts",
        "samples",
        "reviews",
        "model_versions",
        "deployments",
        "deployment_targets",
        "users",
        "sample_embeddings",
        "rejected_messages",
    }
    assert expected <= tables
    assert diff == []


def test_upgrade_twice_is_a_no_op(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'linewatch.db'}"
    assert current_revision(url) is None
    upgrade(url)
    assert upgrade(url) == "0004"


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'linewatch.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_rollout_records_survive_the_rollback_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'linewatch.db'}"
    assert upgrade(url, "0001") == "0001"
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO model_versions (id, name, version, model_sha256, mlflow_run_id, "
            "metrics, created_at) VALUES (1, 'line3', '4', 'ab', '', '{}', '2026-11-29')"
        )
        connection.exec_driver_sql(
            "INSERT INTO deployments (id, model_version_id, state, requested_by, created_at) "
            "VALUES (7, 1, 'succeeded', 'cli', '2026-11-29')"
        )
    engine.dispose()

    assert upgrade(url) == "0004"

    engine = make_engine(url)
    with engine.connect() as connection:
        row = connection.exec_driver_sql(
            "SELECT kind, model_version_id, state FROM deployments WHERE id = 7"
        ).one()
    engine.dispose()
    assert tuple(row) == ("rollout", 1, "succeeded")


def test_web_app_migration_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'linewatch.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
        assert "users" not in inspect(connection).get_table_names()
    engine.dispose()
    assert current_revision(url) == "0002"
    assert upgrade(url) == "0004"


def test_dead_letter_migration_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'linewatch.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
        assert "rejected_messages" not in inspect(connection).get_table_names()
    engine.dispose()
    assert current_revision(url) == "0003"
    assert upgrade(url) == "0004"
