"""The knowledge base without HTTP, on SQLite and PostgreSQL, with the real multilingual USE."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, delete

from service.knowledge import EntryInput, KnowledgeBase, SuggestFilters, UniversalSentenceEncoder
from service.knowledge.index import INDEX_FILE, VectorIndex
from service.storage import KnowledgeEntry, create_database_engine, upgrade_schema

ENGLISH_TICKETS = [
    EntryInput(
        "T-1",
        "The VPN client disconnects every few minutes and we lose the connection to the CRM.",
        "Updated the VPN client to version 5.2 and raised the keep-alive interval.",
        subject="VPN keeps dropping",
        labels={"queue": "IT Support"},
        tags=["vpn", "network"],
        created_at=datetime(2025, 3, 1, tzinfo=UTC),
    ),
    EntryInput(
        "T-2",
        "I was charged twice for the same invoice this month.",
        "Refunded the duplicate payment; it shows on the card within five days.",
        subject="Double charge on my invoice",
        labels={"queue": "Billing and Payments"},
        tags=["billing", "refund"],
        created_at=datetime(2025, 6, 1, tzinfo=UTC),
    ),
    EntryInput(
        "T-3",
        "The shoes I ordered arrived damaged and I want to return them.",
        "Sent a prepaid return label; the replacement ships when the parcel arrives.",
        subject="Return damaged shoes",
        labels={"queue": "Returns and Exchanges"},
        tags=["return"],
        created_at=datetime(2025, 9, 1, tzinfo=UTC),
    ),
    EntryInput(
        "T-4",
        "I forgot my password and cannot log in to my account anymore.",
        "Sent a password reset link and unlocked the account.",
        subject="Locked out of my account",
        labels={"queue": "Customer Service"},
        tags=["account", "password"],
        created_at=datetime(2025, 12, 1, tzinfo=UTC),
    ),
    EntryInput(
        "T-5",
        "The printer on the third floor does not print, there is a paper jam.",
        "Cleared the paper jam and replaced the worn feed roller.",
        subject="Printer not printing",
        labels={"queue": "IT Support"},
        tags=["printer", "hardware"],
        created_at=datetime(2026, 2, 1, tzinfo=UTC),
    ),
]

TRANSLATED_QUESTIONS = [
    ("Die VPN-Verbindung bricht alle paar Minuten ab, das CRM ist nicht erreichbar.", "T-1"),
    ("Me han cobrado dos veces la misma factura este mes.", "T-2"),
    ("Les chaussures sont arrivées abîmées, je voudrais les retourner.", "T-3"),
    ("Esqueci minha senha e não consigo entrar na minha conta.", "T-4"),
    ("Der Drucker im dritten Stock druckt nicht, es gibt einen Papierstau.", "T-5"),
]


class CountingEmbedder:
    """The real encoder, counting how many tickets it was asked to embed."""

    def __init__(self, inner: UniversalSentenceEncoder) -> None:
        self.inner = inner
        self.identity = inner.identity
        self.dimension = inner.dimension
        self.embedded = 0

    def embed(self, subjects: Sequence[str | None], bodies: Sequence[str]) -> np.ndarray:
        self.embedded += len(bodies)
        return self.inner.embed(subjects, bodies)


@pytest.fixture(scope="module")
def encoder() -> UniversalSentenceEncoder:
    return UniversalSentenceEncoder()


@pytest.fixture
def engine(database_url: str) -> Engine:
    engine = create_database_engine(database_url)
    upgrade_schema(engine)
    return engine


def open_base(engine: Engine, embedder: object, index_dir: Path) -> KnowledgeBase:
    base = KnowledgeBase(engine, embedder, index_dir)  # type: ignore[arg-type]
    base.open()
    return base


@pytest.fixture
def base(engine: Engine, encoder: UniversalSentenceEncoder, tmp_path: Path) -> KnowledgeBase:
    knowledge = open_base(engine, CountingEmbedder(encoder), tmp_path / "index")
    knowledge.add(ENGLISH_TICKETS)
    return knowledge


def top_ids(base: KnowledgeBase, body: str, k: int = 3, **filters: object) -> list[str]:
    query = base.embed_query(None, body)
    found = base.suggest(query, k, SuggestFilters(**filters))  # type: ignore[arg-type]
    return [s.record.source_id for s in found]


def assert_index_matches_database(base: KnowledgeBase) -> None:
    assert base.index is not None
    assert sorted(base.index.keys().tolist()) == sorted(base.store.all_ids().tolist())


def test_importing_the_same_entries_again_changes_nothing(base: KnowledgeBase) -> None:
    embedder = base.embedder
    assert isinstance(embedder, CountingEmbedder)
    before = embedder.embedded

    results = base.add(ENGLISH_TICKETS)

    assert {r.status for r in results} == {"unchanged"}
    assert embedder.embedded == before
    assert base.store.count() == len(ENGLISH_TICKETS)
    assert_index_matches_database(base)


def test_a_changed_resolution_updates_the_entry_without_embedding_it_again(
    base: KnowledgeBase,
) -> None:
    embedder = base.embedder
    assert isinstance(embedder, CountingEmbedder)
    before = embedder.embedded
    changed = EntryInput(**{**vars(ENGLISH_TICKETS[0]), "resolution": "Replaced the router."})

    assert [r.status for r in base.add([changed])] == ["updated"]

    assert embedder.embedded == before
    record = base.get("T-1")
    assert record is not None and record.resolution == "Replaced the router."


def test_a_changed_body_is_embedded_again(base: KnowledgeBase) -> None:
    changed = EntryInput(
        **{**vars(ENGLISH_TICKETS[0]), "body": "My monitor shows no picture since this morning."}
    )

    base.add([changed])

    assert top_ids(base, "The screen stays black, no picture at all.", k=1) == ["T-1"]


def test_language_is_detected_and_timestamps_come_back_in_utc(base: KnowledgeBase) -> None:
    record = base.get("T-2")

    assert record is not None
    assert record.language == "en"
    assert record.created_at == datetime(2025, 6, 1, tzinfo=UTC)
    assert record.tags == ["billing", "refund"]


def test_deleted_entries_are_suggested_no_more(base: KnowledgeBase) -> None:
    assert top_ids(base, "Charged two times for one bill", k=1) == ["T-2"]

    assert base.delete("T-2") is True

    assert "T-2" not in top_ids(base, "Charged two times for one bill", k=5)
    assert base.get("T-2") is None
    assert base.delete("T-2") is False
    assert_index_matches_database(base)


@pytest.mark.parametrize(("question", "expected"), TRANSLATED_QUESTIONS)
def test_questions_in_other_languages_find_the_english_ticket(
    base: KnowledgeBase, question: str, expected: str
) -> None:
    assert top_ids(base, question, k=1) == [expected]


def test_queue_filter_keeps_only_that_queue(base: KnowledgeBase) -> None:
    found = top_ids(base, "The VPN keeps disconnecting", k=5, queues=("IT Support",))

    assert set(found) == {"T-1", "T-5"}


def test_language_filter_excludes_other_languages(base: KnowledgeBase) -> None:
    base.add([EntryInput("T-6", "Das VPN trennt sich ständig.", "VPN-Client aktualisiert.")])

    assert top_ids(base, "VPN disconnects", k=5, languages=("de",)) == ["T-6"]


def test_date_filter_keeps_the_window(base: KnowledgeBase) -> None:
    found = top_ids(
        base,
        "anything",
        k=5,
        created_after=datetime(2025, 5, 1, tzinfo=UTC),
        created_before=datetime(2025, 10, 1, tzinfo=UTC),
    )

    assert sorted(found) == ["T-2", "T-3"]


def test_near_identical_entries_are_folded_into_one_suggestion(base: KnowledgeBase) -> None:
    copy = EntryInput(**{**vars(ENGLISH_TICKETS[0]), "source_id": "T-1-copy"})
    base.add([copy])

    found = base.suggest(base.embed_query(None, "VPN keeps dropping"), 3)

    assert found[0].record.source_id in {"T-1", "T-1-copy"}
    assert found[0].duplicates in (["T-1"], ["T-1-copy"])
    assert len({s.record.source_id for s in found}) == 3


def test_an_index_saved_before_a_crash_catches_up_from_the_change_log(
    base: KnowledgeBase, engine: Engine, encoder: UniversalSentenceEncoder, tmp_path: Path
) -> None:
    base.save()
    # Writes after the last save that the crashed process never saved to disk.
    base.add([EntryInput("T-7", "Outlook crashes on start.", "Repaired the Office install.")])
    base.delete("T-3")

    reopened = open_base(engine, encoder, tmp_path / "index")

    assert_index_matches_database(reopened)
    assert top_ids(reopened, "Outlook crashes on start", k=1) == ["T-7"]


def test_an_index_saved_after_the_writes_opens_without_replaying_them(
    base: KnowledgeBase, engine: Engine, encoder: UniversalSentenceEncoder, tmp_path: Path
) -> None:
    base.save()

    reopened = KnowledgeBase(engine, encoder, tmp_path / "index")
    state = reopened.open()

    assert state.how == "loaded"
    assert_index_matches_database(reopened)


def test_a_damaged_index_file_is_rebuilt_from_the_database(
    base: KnowledgeBase, engine: Engine, encoder: UniversalSentenceEncoder, tmp_path: Path
) -> None:
    base.save()
    (tmp_path / "index" / INDEX_FILE).write_bytes(b"not an index")

    reopened = open_base(engine, encoder, tmp_path / "index")

    assert_index_matches_database(reopened)
    assert top_ids(reopened, "charged twice", k=1) == ["T-2"]


def test_an_index_disagreeing_with_the_database_is_rebuilt(
    base: KnowledgeBase, engine: Engine, encoder: UniversalSentenceEncoder, tmp_path: Path
) -> None:
    base.save()
    # A row removed behind the change log's back, e.g. by a restored database backup.
    with engine.begin() as connection:
        connection.execute(delete(KnowledgeEntry).where(KnowledgeEntry.source_id == "T-4"))

    reopened = open_base(engine, encoder, tmp_path / "index")

    assert_index_matches_database(reopened)
    assert len(reopened.index or []) == len(ENGLISH_TICKETS) - 1


def test_writes_of_another_process_reach_the_index_on_sync(
    base: KnowledgeBase, engine: Engine, encoder: UniversalSentenceEncoder, tmp_path: Path
) -> None:
    other = open_base(engine, encoder, tmp_path / "other-index")
    other.add([EntryInput("T-8", "Teams calls have no sound.", "Reset the audio device.")])
    other.delete("T-5")

    assert base.sync() == 2

    assert_index_matches_database(base)
    assert top_ids(base, "No audio in Teams meetings", k=1) == ["T-8"]


def test_an_index_of_another_embedder_is_not_reused(base: KnowledgeBase, tmp_path: Path) -> None:
    base.save()
    other_identity = base.identity.__class__(embedder="someone-else", dimension=512)

    assert VectorIndex.load(tmp_path / "index", other_identity) is None
    assert VectorIndex.load(tmp_path / "index", base.identity) is not None
