"""The canonical fusion benchmarks as cards (datasets/hateful_memes, mm_imdb, cmu_mosi): every card
loads, and each local format is read offline from a small generated file in the very layout of
the real one: MultiBench's multimodal_imdb.hdf5 (format ``hdf5``) and MMSA's feature pickles
(format ``mmsa_pickle``, read with a restricted unpickler)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmark.data.cards import CardError, card_paths, load_card
from benchmark.data.loading import DataError, load_splits
from benchmark.paths import REPO_ROOT

CARDS = REPO_ROOT / "datasets"
GENRES = ["Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror", "Documentary",
          "Mystery", "Sci-Fi", "Fantasy", "Family", "Biography", "War", "History", "Music", "Animation", "Musical",
          "Western", "Sport", "Short", "Film-Noir"]


@pytest.mark.parametrize("path", card_paths(CARDS), ids=lambda p: p.stem)
def test_every_card_in_datasets_loads(path):
    card = load_card(path)
    assert card.name == path.stem
    for field in ("origin", "licence", "size", "splits_note", "citation"):
        assert card.info.get(field), f"{path.name}: documentation field {field!r} is empty"


def test_canonical_cards_state_their_task_and_published_metric():
    memes, imdb, mosi = (load_card(CARDS / f"{n}.yaml") for n in ("hateful_memes", "mm_imdb", "cmu_mosi"))
    assert (memes.task, memes.ranking_metric, memes.positive_class) == ("binary", "auroc", "hateful")
    assert (imdb.task, imdb.ranking_metric, list(imdb.classes)) == ("multilabel", "micro_f1", GENRES)
    assert imdb.source["local"]["ranges"] == {"train": [0, 15552], "validation": [15552, 18160],
                                              "test": [18160, 25959]}
    assert (mosi.task, mosi.ranking_metric, mosi.sign_accuracy) == ("regression", "mae", True)
    assert {m.encoder for m in imdb.modalities + mosi.modalities} == {"vector"}


# ----------------------------------------------------------------------------- MM-IMDb (hdf5)


def write_mmimdb_hdf5(path: Path, rows: int = 40, seed: int = 0) -> dict:
    """A small multimodal_imdb.hdf5 with the datasets, per-row shapes and dtypes that
    gmu-mmimdb's make_dataset.py writes (and MultiBench reads)."""
    import h5py

    rng = np.random.default_rng(seed)
    genres = (rng.random((rows, 23)) < 0.2).astype(np.int32)  # (N, 23)
    genres[np.arange(rows), rng.integers(0, 23, rows)] = 1  # every movie has a genre
    arrays = {
        "features": rng.normal(size=(rows, 300)).astype(np.float32),  # mean word2vec of the plot
        "vgg_features": rng.random((rows, 4096)).astype(np.float32),  # VGG-16 fc7 of the poster
        "genres": genres,
    }
    with h5py.File(path, "w") as handle:
        for name, value in arrays.items():
            handle.create_dataset(name, data=value)
        handle["genres"].attrs["target_names"] = json.dumps(GENRES)
        handle.create_dataset("images", shape=(rows, 3, 256, 160), dtype="int32", compression="gzip")  # not read
        handle.create_dataset("imdb_ids", data=np.array([f"{i:07d}" for i in range(rows)], dtype="S7"))
        sequences = handle.create_dataset("sequences", (rows,), dtype=h5py.special_dtype(vlen=np.dtype("int32")))
        for i in range(rows):
            sequences[i] = rng.integers(0, 1000, rng.integers(3, 9)).astype(np.int32)
    return arrays


def _card_copy(folder: Path, card_name: str, **source_changes) -> Path:
    """The repository's card with its source pointed at a generated file (everything else as is)."""
    raw = yaml.safe_load((CARDS / f"{card_name}.yaml").read_text())
    raw["source"]["local"].update(source_changes)
    path = folder / f"{card_name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


RANGES = {"train": [0, 24], "validation": [24, 30], "test": [30, 40]}


@pytest.fixture
def mmimdb_card(fusebench_home) -> tuple[Path, dict]:
    folder = fusebench_home / "cards"
    arrays = write_mmimdb_hdf5(folder / "multimodal_imdb.hdf5")
    return _card_copy(folder, "mm_imdb", data_files="multimodal_imdb.hdf5", ranges=RANGES), arrays


def test_mmimdb_hdf5_loads_into_splits_by_index_range(mmimdb_card):
    path, arrays = mmimdb_card
    loaded = load_splits(load_card(path))
    assert {s: len(d) for s, d in loaded.splits.items()} == {"train": 24, "validation": 6, "test": 10}
    assert loaded.class_names == GENRES
    validation = loaded.splits["validation"].with_format("numpy")[:]
    plot, poster, genres = validation["plot"], validation["poster"], validation["genres"]
    assert plot.shape == (6, 300) and poster.shape == (6, 4096) and genres.shape == (6, 23)
    np.testing.assert_array_equal(plot, arrays["features"][24:30])  # row 0 of validation is file row 24
    np.testing.assert_array_equal(poster[-1], arrays["vgg_features"][29])
    np.testing.assert_array_equal(genres, arrays["genres"][24:30])
    assert "images" not in loaded.splits["train"].column_names  # only the columns the card names


def test_mmimdb_builds_vector_features(mmimdb_card):
    from benchmark.features.tensors import build_features

    features = build_features(load_card(mmimdb_card[0]), log=lambda *_: None)
    assert features.task == "multilabel" and features.output_dim == 23
    train = features.splits["train"]
    assert tuple(train.pooled["text"].shape) == (24, 300) and tuple(train.pooled["image"].shape) == (24, 4096)
    assert tuple(train.labels.shape) == (24, 23) and set(train.labels.unique().tolist()) <= {0.0, 1.0}
    assert features.splits["test"].available.all()  # every movie has both modalities


def test_mmimdb_revision_follows_content_not_path(mmimdb_card, tmp_path):
    path, _ = mmimdb_card
    first = load_splits(load_card(path)).revision
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (path.parent / "multimodal_imdb.hdf5").rename(moved / "multimodal_imdb.hdf5")
    card = _card_copy(path.parent, "mm_imdb", data_files=str(moved / "multimodal_imdb.hdf5"), ranges=RANGES)
    assert load_splits(load_card(card)).revision == first
    write_mmimdb_hdf5(moved / "multimodal_imdb.hdf5", seed=1)
    assert load_splits(load_card(card)).revision != first


@pytest.mark.parametrize("change, field, words", [
    ({"ranges": {"train": [0, 24], "validation": [20, 30], "test": [30, 40]}}, "source.local.ranges", "overlap"),
    ({"ranges": {"train": [0, 24], "validation": [24, 30], "test": [30, 41]}}, "source.local.ranges.test",
     "ends past the 40 rows"),
    ({"ranges": {"train": [0, 24], "test": [30, 40]}}, "source.local.ranges", "validation"),
    ({"columns": {"plot": "features", "poster": "vgg", "genres": "genres"}}, "source.local.columns.poster",
     "'vgg' not found"),
    ({"columns": {"plot": "features", "poster": "images", "genres": "genres"}}, "source.local.columns.poster",
     "(40, 3, 256, 160)"),
])
def test_mmimdb_bad_source_options_name_the_field(mmimdb_card, change, field, words):
    path, _ = mmimdb_card
    card = _card_copy(path.parent, "mm_imdb", data_files="multimodal_imdb.hdf5", **{"ranges": RANGES, **change})
    with pytest.raises(CardError) as info:
        load_splits(load_card(card))
    assert info.value.field_name == field and words in str(info.value) and str(card) in str(info.value)


def test_mmimdb_classes_must_match_the_files_genre_order(mmimdb_card):
    path, _ = mmimdb_card
    raw = yaml.safe_load(path.read_text())
    raw["classes"] = GENRES[1:] + GENRES[:1]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(CardError, match="target_names") as info:
        load_splits(load_card(path))
    assert info.value.field_name == "classes"


def test_local_cards_without_their_file_say_where_to_put_it(fusebench_home):
    for name, fmt in (("mm_imdb", "hdf5"), ("cmu_mosi", "mmsa_pickle")):
        with pytest.raises(DataError) as info:
            load_splits(load_card(CARDS / f"{name}.yaml"))
        message = str(info.value)
        assert "not found" in message and f"format: {fmt}, data_files: /path/to/" in message
        assert ".fusebench/downloads" in message and "\n" not in message


# ------------------------------------------------------------------------- CMU-MOSI (MMSA pickle)


def mmsa_split(rows: int, rng, first_id: int) -> dict:
    """One split of MMSA's MOSI unaligned_50.pkl: the keys and per-row shapes its data loader reads."""
    text_len = rng.integers(5, 50, rows)
    text_bert = np.zeros((rows, 3, 50), dtype=np.float64)  # token ids / attention mask / segment ids
    for i, length in enumerate(text_len):
        text_bert[i, 0, :length] = rng.integers(100, 30000, length)
        text_bert[i, 1, :length] = 1
    audio = rng.normal(size=(rows, 375, 5))  # float64, as MMSA writes it
    vision = rng.normal(size=(rows, 500, 20)).astype(np.float32)
    audio_lengths = [int(v) for v in rng.integers(1, 375, rows)]
    vision_lengths = [int(v) for v in rng.integers(1, 500, rows)]
    vision_lengths[1] = 0  # a clip without a detected face
    audio[0, 3, 2] = -np.inf  # COVAREP's log energy of silence
    labels = np.round(rng.uniform(-3, 3, rows), 1).astype(np.float32)
    return {
        "id": np.array([f"clip{first_id + i}$_${i % 7}" for i in range(rows)], dtype=object),
        "raw_text": np.array([f"utterance {first_id + i}" for i in range(rows)], dtype=object),
        "text": rng.normal(size=(rows, 50, 768)).astype(np.float32),
        "text_bert": text_bert,
        "audio": audio, "vision": vision,
        "audio_lengths": audio_lengths, "vision_lengths": vision_lengths,
        "annotations": ["Positive" if v > 0 else "Negative" for v in labels],
        "classification_labels": (labels > 0).astype(np.float32),
        "regression_labels": labels,
    }


def write_mmsa_pickle(path: Path, protocol: int = pickle.HIGHEST_PROTOCOL, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    data = {"train": mmsa_split(20, rng, 0), "valid": mmsa_split(6, rng, 100), "test": mmsa_split(8, rng, 200)}
    with open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=protocol)
    return data


@pytest.fixture
def mosi_card(fusebench_home) -> tuple[Path, dict]:
    folder = fusebench_home / "cards"
    data = write_mmsa_pickle(folder / "unaligned_50.pkl")
    return _card_copy(folder, "cmu_mosi", data_files="unaligned_50.pkl"), data


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_mmsa_pickle_loads_trimmed_sequences_and_float_labels(fusebench_home, protocol):
    folder = fusebench_home / "cards"
    data = write_mmsa_pickle(folder / "unaligned_50.pkl", protocol=protocol)
    loaded = load_splits(load_card(_card_copy(folder, "cmu_mosi", data_files="unaligned_50.pkl")))
    assert {s: len(d) for s, d in loaded.splits.items()} == {"train": 20, "validation": 6, "test": 8}
    assert loaded.class_names == []
    test = loaded.splits["test"].with_format("numpy")
    np.testing.assert_allclose(test[:]["regression_labels"], data["test"]["regression_labels"])
    source = data["test"]
    text_len = int(source["text_bert"][2, 1].sum())
    assert test[2]["text"].shape == (text_len, 768)  # cut to the BERT attention mask
    np.testing.assert_array_equal(test[2]["text"], source["text"][2, :text_len])
    assert test[3]["audio"].shape == (source["audio_lengths"][3], 5)
    assert test[3]["vision"].shape == (source["vision_lengths"][3], 20)
    assert test[1]["vision"] is None  # no frame: the modality is absent in that row
    assert test[0]["audio"][3, 2] == 0.0  # -inf replaced as the card asks (replace_nonfinite: 0)
    assert test[4]["id"] == "clip204$_$4" and "text_bert" not in loaded.splits["test"].column_names


def test_mosi_builds_token_features_with_absent_rows(mosi_card):
    from benchmark.features.tensors import build_features

    path, data = mosi_card
    features = build_features(load_card(path), log=lambda *_: None)
    assert features.task == "regression" and features.output_dim == 1
    train = features.splits["train"]
    modalities = sorted(["audio", "text", "vision"])
    assert features.modalities == modalities
    assert tuple(train.labels.shape) == (20,) and train.labels.dtype.is_floating_point
    width = {"audio": 5, "text": 768, "vision": 20}
    for m in modalities:
        assert train.tokens[m].shape[-1] == width[m] and train.tokens[m].ndim == 3  # (N, T_max, D)
    longest = max(data["train"]["audio_lengths"])
    assert train.tokens["audio"].shape[1] == longest
    assert train.token_mask["audio"][0].sum().item() == data["train"]["audio_lengths"][0]
    vision = modalities.index("vision")
    assert not train.available[1, vision] and train.available[0].all()  # row 1 has no face frame


def test_mmsa_nonfinite_values_are_refused_unless_the_card_says_what_to_put(mosi_card):
    path, _ = mosi_card
    raw = yaml.safe_load(path.read_text())
    del raw["source"]["local"]["replace_nonfinite"]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(DataError, match=r"split 'train', key 'audio', row 0: 1 non-finite .*replace_nonfinite"):
        load_splits(load_card(path))


class _RunsAShellCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_mmsa_pickle_with_an_arbitrary_object_is_refused(fusebench_home):
    folder = fusebench_home / "cards"
    marker = fusebench_home / "pwned"
    data = write_mmsa_pickle(folder / "unaligned_50.pkl")
    data["train"]["extra"] = _RunsAShellCommand(marker)
    with open(folder / "unaligned_50.pkl", "wb") as handle:
        pickle.dump(data, handle)
    card = _card_copy(folder, "cmu_mosi", data_files="unaligned_50.pkl")
    with pytest.raises(DataError, match=r"refused global (posix|os|nt)\.system.*restricted unpickler"):
        load_splits(load_card(card))
    assert not marker.exists()


def test_mmsa_pickle_of_the_wrong_layout_is_named(fusebench_home):
    folder = fusebench_home / "cards"
    with open(folder / "unaligned_50.pkl", "wb") as handle:
        pickle.dump({"train": {}, "dev": {}}, handle)
    card = _card_copy(folder, "cmu_mosi", data_files="unaligned_50.pkl")
    with pytest.raises(DataError, match=r"expected MMSA's layout, a dict with keys \['train', 'valid', 'test'\]"):
        load_splits(load_card(card))
