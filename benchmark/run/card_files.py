"""Which dataset cards a matrix uses: names and globs of the cards in the cards folder
(``datasets/`` or ``FUSEBENCH_DATASETS``), and card files anywhere, given by their path.

A matrix stores each path card as an absolute path and pins it by the sha256 of the card
file's bytes (``MatrixConfig.card_files``). A process on another machine (a Ray node, `fusebench
status`) uses the file at that path when its bytes are the same; where the path does not exist
there, the card with the same bytes among the cards it knows (the cards folder and ``--datasets``); where the
file differs, it stops with an error that says so. The path itself is never part of a result's
identity (benchmark/run/identity.py): the same card at another path is the same dataset.

Nothing here imports the matrix configuration (benchmark/run/config.py imports this module)."""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
from pathlib import Path

from benchmark.data.cards import CardError, DatasetCard, card_paths, load_card
from benchmark.paths import cards_dir
from benchmark.run.identity import current_cards
from strategies.registry import Registry

CARD_SUFFIXES = (".yaml", ".yml")
GLOB_CHARS = "*?["


class DatasetSelectionError(LookupError):
    """A ``--datasets`` entry or a profile's ``datasets`` entry names no card, or a matrix's card
    file is missing or differs here. The message names the entry, the path and what was expected."""


def is_card_path(entry: str) -> bool:
    """Whether a datasets entry is a card file (or a glob of files) rather than a dataset name."""
    return entry.endswith(CARD_SUFFIXES) or "/" in entry or os.sep in entry


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _short(sha: str) -> str:
    return sha[:12]


def normalise_entries(entries: tuple[str, ...] | list[str], base_dir: Path, where: str) -> tuple[str, ...]:
    """Names and name globs unchanged; card paths made absolute (relative ones against
    ``base_dir``: the current folder for a flag, the profile's folder for a profile); path globs
    expanded to the card files they match, sorted. ``where`` names the flag or profile field."""
    out: list[str] = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise DatasetSelectionError(f"{where}: expected dataset names, globs or card paths, got {entry!r}")
        entry = entry.strip()
        if not is_card_path(entry):
            found = [entry]
        else:
            full = os.path.abspath(os.path.join(base_dir, os.path.expanduser(entry)))
            if any(ch in entry for ch in GLOB_CHARS):
                found = sorted(p for p in glob.glob(full) if p.endswith(CARD_SUFFIXES) and os.path.isfile(p))
                if not found:
                    raise DatasetSelectionError(f"{where}: card glob {entry!r} matches no .yaml/.yml file "
                                                f"(looked for {full})")
            elif os.path.isdir(full):
                raise DatasetSelectionError(f"{where}: {entry!r} is a folder; expected a card file (.yaml) or a "
                                            f"glob such as {os.path.join(entry, '*.yaml')!r}")
            else:
                if not os.path.isfile(full):
                    raise DatasetSelectionError(f"{where}: card file {full} does not exist (from {entry!r}; "
                                                f"relative paths resolve against {base_dir})")
                found = [full]
        out += [f for f in found if f not in out]
    return tuple(out)


def pin(datasets: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(absolute path, sha256 of the file's bytes) of every card path among ``datasets``."""
    return tuple((entry, file_sha256(entry)) for entry in datasets if is_card_path(entry) and os.path.isfile(entry))


def _differs(name: str, path: str, registered: str, here: str) -> DatasetSelectionError:
    return DatasetSelectionError(
        f"dataset {name!r}: {path}: the card file differs from the one the matrix was registered with "
        f"(sha256 {_short(registered)} registered, {_short(here)} here); restore that card or start a new "
        f"matrix with `fusebench bench`")


def _card_name(path: str) -> str:
    try:
        return load_card(path).name
    except CardError:
        return Path(path).stem


def _candidates(search: tuple[str, ...]) -> list[str]:
    """Card files this machine knows: the cards folder, plus its ``--datasets`` entries (card paths,
    path globs, folders of cards)."""
    found = [str(p) for p in card_paths()]
    for entry in search:
        full = os.path.abspath(os.path.expanduser(entry))
        if os.path.isdir(full):
            found += sorted(str(p) for suffix in CARD_SUFFIXES for p in Path(full).glob(f"*{suffix}"))
        elif any(ch in entry for ch in GLOB_CHARS):
            found += sorted(glob.glob(full))
        elif os.path.isfile(full):
            found.append(full)
    return list(dict.fromkeys(p for p in found if p.endswith(CARD_SUFFIXES)))


def localise(datasets: tuple[str, ...], card_files: tuple[tuple[str, str], ...],
             search: tuple[str, ...] = ()) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The matrix's datasets and pins with every pinned card path replaced by a file on this
    machine with the same bytes: the path itself when it exists here, else the first card with
    the same sha256 among the cards folder and ``search``. Raises DatasetSelectionError when the
    file at the path differs, or when no file with those bytes is found."""
    pins = dict(card_files)
    moved: dict[str, str] = {}
    for path, sha in pins.items():
        if os.path.isfile(path):
            here = file_sha256(path)
            if here != sha:
                raise _differs(_card_name(path), path, sha, here)
            continue
        match = next((c for c in _candidates(search) if file_sha256(c) == sha), None)
        if match is None:
            where = ", ".join([str(cards_dir())] + list(search))
            raise DatasetSelectionError(
                f"card file {path} (sha256 {_short(sha)}) of the matrix does not exist on this machine, and no card "
                f"with the same content was found in {where}; copy the card here and pass its path with --datasets")
        moved[path] = os.path.abspath(match)
    new_datasets = tuple(moved.get(entry, entry) for entry in datasets)
    new_pins = tuple((moved.get(path, path), sha) for path, sha in card_files)
    return new_datasets, new_pins


_cache: dict[tuple[str, str], DatasetCard] = {}  # (path, sha256 of its bytes) -> parsed card


def matrix_cards(datasets: tuple[str, ...], card_files: tuple[tuple[str, str], ...] = ()) -> dict[str, DatasetCard]:
    """Dataset name -> card for a matrix's datasets entries (names, name globs, absolute card
    paths), in entry order without duplicates. A pinned card path must hold the pinned bytes.
    Two different card files with the same dataset name is an error naming both paths. Cached by
    the files' content, like ``identity.current_cards``."""
    pins = dict(card_files)
    paths = [entry for entry in datasets if is_card_path(entry)]
    snapshot = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise DatasetSelectionError(
                f"card file {path} does not exist" + (" on this machine; `fusebench status --datasets <card or "
                                                      "folder>` finds a copy with the same content" if path in pins
                                                      else "")) from None
        sha = hashlib.sha256(data).hexdigest()
        if path in pins and pins[path] != sha:
            raise _differs(_card_name(path), path, pins[path], sha)
        snapshot.append((path, sha))
    loaded = {}
    for path, sha in snapshot:
        if (path, sha) not in _cache:
            _cache[path, sha] = load_card(path)
        loaded[path] = _cache[path, sha]
    return _select(datasets, current_cards(), loaded)


def _select(datasets: tuple[str, ...], folder: dict[str, DatasetCard],
            loaded: dict[str, DatasetCard]) -> dict[str, DatasetCard]:
    chosen: dict[str, DatasetCard] = {}

    def add(card: DatasetCard) -> None:
        other = chosen.get(card.name)
        if other is not None and os.path.abspath(other.path) != os.path.abspath(card.path):
            raise CardError(card.path, "name", f"dataset name {card.name!r} is also the name of {other.path} in the "
                                               f"same matrix; dataset names must be unique (rename one card)")
        chosen[card.name] = card

    for entry in datasets:
        if is_card_path(entry):
            add(loaded[entry])
        elif any(ch in entry for ch in GLOB_CHARS):
            matches = fnmatch.filter(sorted(folder), entry)
            if not matches:
                raise DatasetSelectionError(f"dataset pattern {entry!r} matches nothing; known: {', '.join(sorted(folder))}")
            for name in matches:
                add(folder[name])
        else:
            registry: Registry[DatasetCard] = Registry("dataset")
            for name, card in folder.items():
                registry.add(name, card)
            add(registry.get(entry))
    return chosen


def dataset_names(datasets: tuple[str, ...], cards: dict[str, DatasetCard]) -> list[str]:
    """The entries with each card path replaced by its card's name (what a matrix id hashes:
    where a card lies is not part of what it is); ``cards``: the entries' cards (``matrix_cards``)."""
    by_path = {os.path.abspath(card.path): name for name, card in cards.items()}
    return [by_path.get(os.path.abspath(entry), entry) if is_card_path(entry) else entry for entry in datasets]
