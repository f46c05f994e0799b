from pathlib import Path

import pytest

from benchmark.data.cards import CardError, load_all_cards, load_card

VALID = """
name: toy
source:
  local: {format: csv, data_files: toy.csv}
label: y
modalities:
  text: {column: t, encoder: minilm}
  image: {column: img, encoder: efficientnet_lite0}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(text)
    return path


def test_valid_card_parses(tmp_path):
    card = load_card(write(tmp_path, VALID))
    assert card.name == "toy" and card.modality_names == ["image", "text"] and card.source_kind == "local"


@pytest.mark.parametrize("broken, field", [
    (VALID.replace("label: y\n", ""), "label"),
    (VALID.replace("encoder: minilm", "encoder: 3"), "modalities.text.encoder"),
    (VALID.replace("{column: t, encoder: minilm}", "{encoder: minilm}"), "modalities.text.column"),
    (VALID.replace("format: csv", "format: xlsx"), "source.local.format"),
    (VALID.replace("local: {format: csv, data_files: toy.csv}", "hub: {id: a/b}"), "source.hub.revision"),
    (VALID.replace("name: toy", "name: [1, 2]"), "name"),
    (VALID + "split: {validation: 2}\n", "split.validation"),
])
def test_errors_name_file_and_field(tmp_path, broken, field):
    path = write(tmp_path, broken)
    with pytest.raises(CardError) as info:
        load_card(path)
    assert info.value.field_name == field
    assert str(path) in str(info.value) and f"'{field}'" in str(info.value)


def test_modality_declared_twice_is_an_error(tmp_path):
    text = VALID.replace("  image: {column: img, encoder: efficientnet_lite0}", "  text2: {column: t, encoder: minilm}")
    with pytest.raises(CardError, match="declared twice"):
        load_card(write(tmp_path, text))


def test_invalid_yaml_names_file(tmp_path):
    path = write(tmp_path, "name: [unclosed\n")
    with pytest.raises(CardError, match="not valid YAML") as info:
        load_card(path)
    assert str(path) in str(info.value)


def test_builtin_cards_are_valid():
    cards = load_all_cards()
    assert "emoji" in cards
    for card in cards.values():
        assert card.info.get("licence") and card.info.get("origin"), card.path
