"""How ticket text is prepared for the model, identically in training and serving."""

from __future__ import annotations

import pytest

from service.text import QUERY_PREFIX, clean_text, detect_language, ticket_text


def test_clean_text_removes_html_but_keeps_placeholders() -> None:
    text = "Hallo <name>,<br><br>Konto <acc_num> &amp; <b>Drucker</b> defekt.<p>Danke</p>"

    assert clean_text(text) == "Hallo <name>,\nKonto <acc_num> & Drucker defekt.\nDanke"


def test_clean_text_turns_escaped_newlines_into_real_ones_and_collapses_blanks() -> None:
    assert (
        clean_text("first line\\n\\n  second   line \\r\\nthird")
        == "first line\nsecond line\nthird"
    )


def test_ticket_text_joins_prefix_subject_and_body() -> None:
    assert ticket_text("VPN down", "Since  9:00") == f"{QUERY_PREFIX}VPN down\nSince 9:00"


def test_ticket_text_without_subject_is_prefix_and_body() -> None:
    assert ticket_text(None, "Only a body", prefix="") == "Only a body"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Mein Drucker druckt seit gestern keine Rechnungen mehr aus.", "de"),
        ("Ma facture de novembre contient une erreur de montant.", "fr"),
        ("Mi pedido llegó dañado y quiero devolverlo, por favor.", "es"),
        ("O meu pedido chegou danificado e quero devolvê-lo.", "pt"),
        ("The VPN disconnects every hour since the last update.", "en"),
    ],
)
def test_detect_language_names_the_language_of_the_text(text: str, language: str) -> None:
    assert detect_language(text)[0] == language


def test_detect_language_gives_undetermined_for_text_without_letters() -> None:
    assert detect_language("1234 // ---") == ("und", 0.0)
