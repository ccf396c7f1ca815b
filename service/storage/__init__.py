"""Persistence: the SQLAlchemy engine, the tables and their Alembic migrations.

SQLite in the data folder is the embedded default; any SQLAlchemy URL (PostgreSQL
above all) is used when ``TRIAGE_DATABASE_URL`` names one.
"""

from service.storage.database import (
    StorageError,
    create_database_engine,
    database_url_for_display,
    upgrade_schema,
)
from service.storage.tables import ApiKey, Base, KnowledgeChange, KnowledgeEntry

__all__ = [
    "ApiKey",
    "Base",
    "KnowledgeChange",
    "KnowledgeEntry",
    "StorageError",
    "create_database_engine",
    "database_url_for_display",
    "upgrade_schema",
]
