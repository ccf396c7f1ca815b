"""The migrations create exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.storage import Base, create_database_engine, upgrade_schema


def test_migrations_match_the_table_models(database_url: str) -> None:
    engine = create_database_engine(database_url)
    upgrade_schema(engine)

    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()

    assert differences == []


def test_upgrading_twice_changes_nothing(database_url: str) -> None:
    engine = create_database_engine(database_url)
    upgrade_schema(engine)
    upgrade_schema(engine)

    with engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
    engine.dispose()

    assert revision == "0004"
