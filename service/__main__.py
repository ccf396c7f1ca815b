"""Command line of the service.

python -m service serve                          # settings from TRIAGE_* variables
python -m service classify tickets.csv -o predictions.csv
python -m service knowledge import resolved.csv --column-mapping data/mappings/zammad.yaml
python -m service knowledge stats
python -m service knowledge rebuild              # rebuild the vector index from the database
python -m service keys create --name zammad --scope predict --scope knowledge:write
python -m service keys list
python -m service keys revoke 0123abcd           # by the key's prefix (tt_<prefix>_...)
python -m service models register onnx_models/acme-2026-12
python -m service models promote 2026.12.04-101500   # shadow evaluation first; --force
python -m service models rollback
python -m service models list
python -m service routing import data/routing/agents.yaml   # teams and agents from a pool file
python -m service routing agents
python -m service connectors poll zammad --once     # triage the system's new tickets now
python -m service connectors deliveries --status dead
python -m service connectors replay --all        # send dead outbound webhooks again
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.config
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

from service.columns import ColumnMapping, DataError
from service.connectors.hub import SYSTEMS, check_mappings
from service.errors import ServiceError
from service.files import FileFormatError, read_rows, write_rows
from service.inference.bundle import BundleError, ModelBundle, TriageRuntime
from service.knowledge import KnowledgeBase, make_embedder
from service.knowledge.importer import import_files
from service.learning.feedback import FeedbackStore
from service.learning.registry import ModelRegistry
from service.routing import RoutingDirectory
from service.routing.pool import PoolError, read_pool
from service.security.keys import SCOPES, ApiKeyError, ApiKeyStore
from service.security.privacy import knowledge_redactor, logging_config
from service.settings import Settings, SettingsError
from service.storage import StorageError, create_database_engine, upgrade_schema
from service.text import detect_language, ticket_text

__all__ = ["main"]

logger = logging.getLogger("service")


def serve(settings: Settings) -> int:
    import uvicorn

    from service.api.app import create_app

    # Refuse to start on a missing or broken bundle, a connector mapping that does not fit
    # it, or an unreachable database.
    bundle = ModelBundle.load(settings.model_dir)
    check_mappings(settings, bundle.heads)
    engine = create_database_engine(settings.resolved_database_url)
    upgrade_schema(engine)
    engine.dispose()

    # On SIGTERM uvicorn stops accepting, lets the requests in flight finish (the model
    # batches them to the end), runs the shutdown, and then raises the signal again; with
    # this handler in place that last signal is a no-op and the process exits 0.
    signal.signal(signal.SIGTERM, lambda _signal, _frame: None)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=logging_config(settings.log_level, settings.privacy.regions),
        timeout_graceful_shutdown=30,
    )
    logger.info("stopped")
    return 0


def classify_file(settings: Settings, source: Path, output: Path, batch_size: int) -> int:
    """Predict every ticket of a CSV/JSON/JSONL/Parquet file; write its rows with predictions."""
    from tqdm.auto import tqdm

    rows = read_rows(source)
    if rows and "body" not in rows[0]:
        raise SettingsError(f"{source}: expected a 'body' column, found {list(rows[0])}")
    bundle = ModelBundle.load(settings.model_dir)
    variant = settings.model_variant if settings.model_variant in bundle.model_files else "fp32"
    runtime = TriageRuntime(bundle, variant, settings.provider, settings.threads or None)

    for start in tqdm(range(0, len(rows), batch_size), desc="classifying", unit="batch"):
        chunk = rows[start : start + batch_size]
        texts = [
            ticket_text(
                str(row.get("subject") or ""), str(row.get("body") or ""), bundle.text_prefix
            )
            for row in chunk
        ]
        probabilities = runtime.probabilities(runtime.run(texts, batch_size).logits)
        for index, row in enumerate(chunk):
            for head, values in probabilities.items():
                row[f"predicted_{head}"] = bundle.heads[head][int(values[index].argmax())]
                row[f"{head}_probability"] = round(float(values[index].max()), 4)
            row["detected_language"] = detect_language(texts[index][len(bundle.text_prefix) :])[0]
    write_rows(rows, output)
    logger.info("wrote %d predictions to %s", len(rows), output)
    return 0


def open_knowledge_base(settings: Settings) -> KnowledgeBase:
    """The knowledge base as the server would open it, for command-line work."""
    engine = create_database_engine(settings.resolved_database_url)
    upgrade_schema(engine)
    name = settings.knowledge.embedder
    bundle = None if name == "use" else ModelBundle.load(settings.model_dir)
    embedder = make_embedder(name, bundle, settings.provider, settings.threads or None)
    base = KnowledgeBase(
        engine,
        embedder,
        settings.knowledge_index_dir,
        settings.knowledge,
        knowledge_redactor(settings.privacy),
    )
    base.open(progress=True)
    return base


def knowledge_command(settings: Settings, args: argparse.Namespace) -> int:
    base = open_knowledge_base(settings)
    if args.action == "import" and args.if_empty and base.store.count():
        sys.stdout.write(f"the knowledge base holds {base.store.count()} entries; not importing\n")
    elif args.action == "import":
        mapping = (
            ColumnMapping.from_yaml(args.column_mapping)
            if args.column_mapping
            else ColumnMapping.default()
        ).with_overrides(args.column)
        summary = import_files(
            base,
            args.sources,
            mapping,
            source_system=args.source_system,
            batch_size=args.batch_size,
        )
        base.save()
        sys.stdout.write(summary.line() + "\n")
    elif args.action == "rebuild":
        base.index = base.rebuild(progress=True)
        base.save()  # replays what changed during the rebuild, then writes
        sys.stdout.write(f"rebuilt the index: {len(base.index)} vectors\n")
    else:
        sys.stdout.write(json.dumps(base.statistics(), indent=2, ensure_ascii=False) + "\n")
    return 0


@contextmanager
def migrated_engine(settings: Settings) -> Iterator[Engine]:
    """The configured database, brought to the newest schema, for one command."""
    engine = create_database_engine(settings.resolved_database_url)
    try:
        upgrade_schema(engine)
        yield engine
    finally:
        engine.dispose()


def keys_command(settings: Settings, args: argparse.Namespace) -> int:
    with migrated_engine(settings) as engine:
        return _keys_action(ApiKeyStore(engine), args)


def _keys_action(keys: ApiKeyStore, args: argparse.Namespace) -> int:
    if args.action == "list":
        for info in keys.list(include_revoked=args.all):
            revoked = f"  revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else ""
            sys.stdout.write(
                f"tt_{info.prefix}_...  {info.name}  {','.join(info.scopes)}  "
                f"created {info.created_at:%Y-%m-%d %H:%M}{revoked}\n"
            )
    elif args.action == "revoke":
        info = keys.revoke(args.prefix)
        sys.stdout.write(f"revoked tt_{info.prefix}_... ({info.name})\n")
    elif args.if_none and (active := keys.count_active()):
        sys.stdout.write(f"{active} API keys exist; not making another\n")
    else:
        made = keys.create(args.name, args.scope)
        if args.output:
            # Readable by its owner only; the key is stored nowhere else.
            args.output.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(made.secret + "\n")
            sys.stdout.write(
                f"made API key tt_{made.info.prefix}_... ({made.info.name}, "
                f"{','.join(made.info.scopes)}); written to {args.output}\n"
            )
        else:
            sys.stdout.write(made.secret + "\n")
    return 0


def models_command(settings: Settings, args: argparse.Namespace) -> int:
    with migrated_engine(settings) as engine:
        registry = ModelRegistry(engine)
        if args.action == "register":
            record = registry.register(args.model_dir)
            sys.stdout.write(f"registered {record.name} {record.version} ({record.directory})\n")
        elif args.action == "promote":
            tickets = FeedbackStore(engine).labelled_tickets(settings.learning.shadow_tickets)
            record, comparison = registry.promote(args.version, tickets, args.force)
            sys.stdout.write(json.dumps(comparison, indent=2) + "\n")
            sys.stdout.write(f"active: {record.name} {record.version}; running servers follow ")
            sys.stdout.write(f"within {settings.learning.registry_poll_s:g} s\n")
        elif args.action == "rollback":
            record = registry.rollback()
            sys.stdout.write(f"active: {record.name} {record.version}\n")
        else:
            for version in registry.versions():
                mark = "*" if version.active else " "
                f1 = {
                    h: round(m.get("macro_f1", 0), 3)
                    for h, m in version.metrics.get("test", {}).items()
                }
                line = f"{mark} {version.version}  {version.name}  macro-F1 {f1}"
                sys.stdout.write(f"{line}  {version.directory}\n")
    return 0


def routing_command(settings: Settings, args: argparse.Namespace) -> int:
    with migrated_engine(settings) as engine:
        directory = RoutingDirectory(engine)
        if args.action == "import":
            pool = read_pool(args.pool)
            for team in pool.teams:
                directory.put_team(team.name, team.queues)
            for agent in pool.agents:
                directory.put_agent(agent)
            sys.stdout.write(
                f"{len(pool.teams)} teams and {len(pool.agents)} agents from {args.pool}\n"
            )
            return 0
        for state in directory.agents():
            away = "" if state.available else "  away"
            sys.stdout.write(
                f"{state.name}  team {state.team}  {','.join(state.languages)}  "
                f"{state.load}/{state.capacity}  {dict(state.skills)}{away}\n"
            )
    return 0


def connectors_command(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from service.connectors import runner

    if args.action == "poll":
        outcomes = asyncio.run(runner.poll(settings, args.system, args.once))
        for outcome in outcomes:
            sys.stdout.write(f"{outcome.ticket_id}  {outcome.outcome}  {outcome.detail}\n")
        sys.stdout.write(f"{len(outcomes)} new tickets in {args.system}\n")
    elif args.action == "replay":
        if not args.all and not args.ids:
            raise SettingsError("replay: expected delivery ids or --all, found neither")
        replayed, delivered = asyncio.run(runner.replay(settings, None if args.all else args.ids))
        sys.stdout.write(
            f"replayed {len(replayed)} dead deliveries, {delivered} delivered now; the rest "
            "are pending and retried by the server\n"
        )
    else:
        with migrated_engine(settings) as engine:
            from service.connectors import Outbox

            outbox = Outbox(engine, settings.connectors.webhooks)
            for record in outbox.deliveries(args.status, args.limit):
                sys.stdout.write(
                    f"{record.id}  {record.status}  {record.event}  attempts {record.attempts}  "
                    f"{record.created_at:%Y-%m-%d %H:%M:%S}  {record.last_error or ''}\n"
                )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="start the HTTP API")
    serve_parser.add_argument("--model-dir", type=Path, help="overrides TRIAGE_MODEL_DIR")
    serve_parser.add_argument("--host", help="overrides TRIAGE_HOST")
    serve_parser.add_argument("--port", type=int, help="overrides TRIAGE_PORT")
    classify_parser = commands.add_parser("classify", help="classify a file of tickets")
    classify_parser.add_argument("source", type=Path, help="CSV, JSON, JSONL or Parquet")
    classify_parser.add_argument("-o", "--output", type=Path, required=True)
    classify_parser.add_argument("--model-dir", type=Path, help="overrides TRIAGE_MODEL_DIR")
    classify_parser.add_argument("--batch-size", type=int, default=32)
    knowledge_parser = commands.add_parser("knowledge", help="manage the knowledge base")
    actions = knowledge_parser.add_subparsers(dest="action", required=True)
    import_parser = actions.add_parser("import", help="import resolved tickets from files")
    import_parser.add_argument("sources", type=Path, nargs="+", help="CSV, TSV, JSON(L), Parquet")
    import_parser.add_argument("--column-mapping", type=Path, help="YAML, see data/mappings/")
    import_parser.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="map one field, e.g. answer=resolution_text (repeatable)",
    )
    import_parser.add_argument(
        "--source-system", help="stored with each entry (default: file name)"
    )
    import_parser.add_argument("--batch-size", type=int, default=128)
    import_parser.add_argument(
        "--if-empty", action="store_true", help="import only into an empty knowledge base"
    )
    actions.add_parser("stats", help="entries per language and queue, index state")
    actions.add_parser("rebuild", help="rebuild the vector index from the stored vectors")
    keys_parser = commands.add_parser("keys", help="make, list and revoke API keys")
    key_actions = keys_parser.add_subparsers(dest="action", required=True)
    create_parser = key_actions.add_parser(
        "create", help="make a key and print it (it is shown only once)"
    )
    create_parser.add_argument("--name", required=True, help="who or what holds the key")
    create_parser.add_argument(
        "--scope", action="append", required=True, choices=SCOPES, help="repeatable"
    )
    create_parser.add_argument("--output", type=Path, help="write the key to this file (0600)")
    create_parser.add_argument(
        "--if-none", action="store_true", help="only when no active key exists"
    )
    list_parser = key_actions.add_parser("list", help="active keys (prefix, holder, scopes)")
    list_parser.add_argument("--all", action="store_true", help="include revoked keys")
    revoke_parser = key_actions.add_parser("revoke", help="revoke a key by its prefix")
    revoke_parser.add_argument("prefix", help="the 8 hex digits after tt_, or the whole key")
    models_parser = commands.add_parser("models", help="the model registry")
    model_actions = models_parser.add_subparsers(dest="action", required=True)
    register_parser = model_actions.add_parser("register", help="add a bundle folder")
    register_parser.add_argument("model_dir", type=Path)
    promote_parser = model_actions.add_parser(
        "promote", help="shadow-evaluate on the latest feedback, then make active"
    )
    promote_parser.add_argument("version")
    promote_parser.add_argument("--force", action="store_true", help="even if it is worse")
    model_actions.add_parser("rollback", help="make the previously active version active")
    model_actions.add_parser("list", help="registered versions; * marks the active one")
    routing_parser = commands.add_parser("routing", help="teams and agents")
    routing_actions = routing_parser.add_subparsers(dest="action", required=True)
    pool_parser = routing_actions.add_parser(
        "import", help="create or update teams and agents from a pool file (YAML)"
    )
    pool_parser.add_argument("pool", type=Path, help="e.g. data/routing/agents.yaml")
    routing_actions.add_parser("agents", help="every agent with load, capacity and skills")
    connectors_parser = commands.add_parser("connectors", help="ticket systems and webhooks")
    connector_actions = connectors_parser.add_subparsers(dest="action", required=True)
    poll_parser = connector_actions.add_parser(
        "poll", help="triage the new tickets a system's search finds"
    )
    poll_parser.add_argument("system", choices=[s for s in SYSTEMS if s != "webhook"])
    poll_parser.add_argument(
        "--once", action="store_true", help="poll once (else every POLL_INTERVAL_S)"
    )
    replay_parser = connector_actions.add_parser(
        "replay", help="send dead outbound webhook deliveries again"
    )
    replay_parser.add_argument("ids", type=int, nargs="*", help="delivery ids")
    replay_parser.add_argument("--all", action="store_true", help="every dead delivery")
    deliveries_parser = connector_actions.add_parser(
        "deliveries", help="outbound webhook deliveries, newest first"
    )
    deliveries_parser.add_argument("--status", choices=["pending", "delivered", "dead"])
    deliveries_parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args(argv)

    overrides = {
        k: v for k in ("model_dir", "host", "port") if (v := getattr(args, k, None)) is not None
    }
    try:
        settings = Settings.from_env(**overrides)
        logging.config.dictConfig(logging_config(settings.log_level, settings.privacy.regions))
        if args.command == "serve":
            return serve(settings)
        if args.command == "knowledge":
            return knowledge_command(settings, args)
        if args.command == "keys":
            return keys_command(settings, args)
        if args.command == "models":
            return models_command(settings, args)
        if args.command == "routing":
            return routing_command(settings, args)
        if args.command == "connectors":
            return connectors_command(settings, args)
        return classify_file(settings, args.source, args.output, args.batch_size)
    except (
        SettingsError,
        BundleError,
        FileFormatError,
        DataError,
        StorageError,
        ApiKeyError,
        ServiceError,
        PoolError,
    ) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
