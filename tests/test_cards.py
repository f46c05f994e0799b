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


BOMB = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10))
BOMB = "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + BOMB  # 10**10 entries expanded


def test_unknown_card_field_names_the_closest_field(tmp_path, fusebench_home, capsys):
    """Issue 21, item 3: a typo in a field name (here `ranking_metrc`) is refused, not ignored,
    with the closest valid name; through the CLI, exit 2 and one line."""
    from benchmark.cli import main

    path = write(tmp_path, VALID + "ranking_metrc: macro_f1\n")
    with pytest.raises(CardError, match="unknown field \\(did you mean 'ranking_metric'\\?\\)") as info:
        load_card(path)
    assert info.value.field_name == "ranking_metrc"
    assert main(["bench", "--profile", "smoke", "--datasets", str(path), "--dry-run"]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "ranking_metrc" in line and "did you mean 'ranking_metric'" in line, line


@pytest.mark.parametrize("where", ["description", "modality option"])
def test_a_billion_laughs_card_is_refused_fast(tmp_path, where):
    """Issue 21, item 3: aliases that expand to billions of entries are refused when the card is
    read (a MemoryError traceback before), in well under a second and without expanding them."""
    import time

    bomb = "\n".join("  " + line for line in BOMB.splitlines())
    text = (VALID.replace("name: toy", f"name: toy\ndescription:\n{bomb}") if where == "description" else
            VALID.replace("  text: {column: t, encoder: minilm}", f"  text:\n    column: t\n    encoder: minilm\n"
                          f"    bomb:\n{bomb.replace('  ', '      ')}"))
    started = time.monotonic()
    with pytest.raises(CardError, match="aliases .* expand it by more than 10000 entries"):
        load_card(write(tmp_path, text))
    assert time.monotonic() - started < 2


def test_a_self_referencing_alias_is_refused(tmp_path):
    with pytest.raises(CardError, match="expand it by more than .* \\(endlessly\\)"):
        load_card(write(tmp_path, VALID + "citation: &c [a, *c]\n"))


def test_a_card_that_is_not_utf8_is_one_error(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_bytes(VALID.replace("name: toy", "name: t\xf6y").encode("latin-1"))
    with pytest.raises(CardError, match="is not UTF-8 text"):
        load_card(path)


def test_a_few_aliases_are_still_fine(tmp_path):
    card = load_card(write(tmp_path, VALID + "origin: &o somewhere\nsplits_note: *o\n"))
    assert card.info["splits_note"] == "somewhere"
