"""What a result is made of: fingerprints of every input that changes a cell's result.

A cell's identity (its configuration hash, the work-queue unit, its Optuna study and the
matrix id; benchmark/run/planning.py) includes the fingerprint of

- the dataset card's content: every field that reaches training, canonical (parsed and
  re-serialised, so comments, layout and key order do not count; the documentation fields
  ``description`` and ``DOCUMENTATION_FIELDS`` do not either), never its path;
- the data itself (benchmark/data/fingerprint.py): the content of the local files the card
  names (in place of their paths), a built-in preparer's version, a hub dataset's resolved
  revision;
- the version of each modality's encoder (``Encoder.version``, the one the feature cache keys by);
- the strategy's code: the source of its module, of the modules of its base classes and of
  every module they import that is not an installed package (its own package, ``strategies``,
  a plugin's helper module anywhere on ``sys.path``), plus its search space;
- :data:`PROTOCOL_VERSION`, the version of the shared training protocol (loop, tuning, cell).

So a result is never reused once one of them changed, and two machines with the same
checkout and cards compute the same ids: fingerprints hold no absolute path, time or memory
address. Each is cached per process (by content where the content can change between calls:
the cards), so planning a 600-cell matrix stays fast.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import sys
from dataclasses import asdict, fields, is_dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from benchmark.data.cards import CardError, card_paths, load_card
from benchmark.data.fingerprint import data_fingerprint

if TYPE_CHECKING:
    from benchmark.data.cards import DatasetCard

# The version of the training protocol every cell goes through (benchmark/train/loop.py,
# tuning.py, cell.py, evaluation.py, model.py): bump it whenever a change there can change a
# result, so that no earlier result is reused.
PROTOCOL_VERSION = "4"  # 2: robustness in the ranking metric, with a minimum lead; 3: early-stopping wait
# that grows with the best epoch, shared tuning across dropout rates, the token budget, each run seeding
# its own in-model dropout masks; 4: the tuning sampler's seeds come from what is tuned, not from the
# budget or protocol (common random numbers across protocols, benchmark/train/seeds.py)

# DatasetCard attributes that are not part of its identity: where it lies, and documentation.
CARD_FIELDS_NOT_HASHED = ("path", "description", "info")
_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")


def _canonical(value: Any) -> Any:
    """JSON-able stand-in for values json cannot write (dataclasses, sets, dates, types)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__, **{f.name: getattr(value, f.name) for f in fields(value)}}
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return _ADDRESS.sub("", repr(value))


def digest(value: Any) -> str:
    """Full sha256 (hex) of ``value`` as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_canonical)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------ cards


def card_content(card: DatasetCard) -> dict[str, Any]:
    """The card as it reaches training: every field but its path and documentation, the
    modalities in name order, and its source as the data it names (file contents instead of
    paths, a built-in preparer's version, a hub revision resolved)."""
    data = {k: v for k, v in asdict(card).items() if k not in CARD_FIELDS_NOT_HASHED}
    data["source"] = data_fingerprint(card)
    data["modalities"] = sorted(data["modalities"], key=lambda m: m["name"])
    if data.get("folds") is None:
        data.pop("folds", None)  # a card without k-fold keeps the fingerprint it had before the field
    return data


def card_fingerprint(card: DatasetCard) -> str:
    """Fingerprint of the card's content (not of its encoders' versions)."""
    return digest(card_content(card))


@lru_cache(maxsize=None)
def _encoder_version(encoder: str, options_json: str) -> str:
    from benchmark.features.catalog import get_encoder

    try:
        return str(get_encoder(encoder, **json.loads(options_json)).version)
    except Exception as exc:  # noqa: BLE001 - an unusable encoder fails later, with its context
        return f"unavailable ({type(exc).__name__})"  # (benchmark/features/tensors.py names the card and modality)


def encoder_version(encoder: str, options: dict[str, Any] | None = None) -> str:
    """``Encoder.version`` of the encoder a card names, with the card's options (cached)."""
    return _encoder_version(encoder, json.dumps(options or {}, sort_keys=True, default=_canonical))


def encoder_versions(card: DatasetCard) -> dict[str, str]:
    """Modality -> "encoder@version", as FeatureSet.encoders records it."""
    return {m.name: f"{m.encoder}@{encoder_version(m.encoder, m.options)}" for m in card.modalities}


def dataset_fingerprint(card: DatasetCard) -> str:
    """Fingerprint of the card's content and of its encoders' versions."""
    return digest({"card": card_fingerprint(card), "encoders": encoder_versions(card)})


_cards_cache: dict[str, dict[str, DatasetCard]] = {}


def current_cards() -> dict[str, DatasetCard]:
    """Dataset name -> card, as the cards folder holds them now (as ``load_all_cards``, same
    errors). Cached by the files' content, not their times: an edited card is seen at once, and an
    unchanged folder is parsed once per process however often a matrix's cells are hashed."""
    snapshot = [(path, path.read_bytes()) for path in card_paths()]
    key = digest([[str(path), hashlib.sha256(data).hexdigest()] for path, data in snapshot])
    if key not in _cards_cache:
        cards: dict[str, DatasetCard] = {}
        for path, _ in snapshot:
            card = load_card(path)
            if card.name in cards:
                raise CardError(path, "name", f"dataset name {card.name!r} is already used by {cards[card.name].path}")
            cards[card.name] = card
        _cards_cache.clear()  # one folder at a time is enough
        _cards_cache[key] = cards
    return dict(_cards_cache[key])


# ------------------------------------------------------------------------------- strategies


def _source(module: ModuleType) -> str:
    try:
        text = inspect.getsource(module)
    except (OSError, TypeError):
        path = getattr(module, "__file__", None)
        try:
            text = open(path, encoding="utf-8").read() if path else ""
        except OSError:
            text = ""
    return text.replace("\r\n", "\n")


@lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    """Folders of the standard library and of installed packages: code there is versioned by its
    package (and pinned by the install), not fingerprinted file by file."""
    import site
    import sysconfig

    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(site.getsitepackages())
    roots.add(site.getusersitepackages())
    return tuple(sorted(str(Path(r).resolve()) + "/" for r in roots if r))


# The strategy registry's own modules: discovery (the package), the decorator and the registry it
# fills, and the generic Registry type. A strategy's result does not depend on them, so they are no
# part of its fingerprint (a plugin that imports its decorator from the package or from
# strategies.registration gets the same one).
REGISTRY_MACHINERY = ("strategies", "strategies.registration", "strategies.registry")


def is_own_code(module: ModuleType) -> bool:
    """Code a strategy's result depends on beyond installed packages: a module with a source file
    outside the standard library and site-packages (this checkout, a plugin's folder, a helper
    module a plugin imports from anywhere on ``sys.path``). The registry machinery does not count."""
    if module.__name__ in REGISTRY_MACHINERY or module.__name__ == "__main__":
        return False
    path = getattr(module, "__file__", None)
    if not path:
        return False  # built into the interpreter
    return not str(Path(path).resolve()).startswith(_installed_roots())


def _code_modules(cls: type) -> list[ModuleType]:
    """The modules whose code makes up the strategy: its own, its base classes' and, transitively,
    every module they use that is not an installed package (:func:`is_own_code`): helpers in the
    strategy's own package, in ``strategies``, or anywhere else a plugin imports from."""

    def ours(name: str) -> bool:
        module = sys.modules.get(name)
        return module is not None and is_own_code(module)

    names = [c.__module__ for c in cls.__mro__ if ours(c.__module__)]
    seen: dict[str, ModuleType] = {}
    while names:
        name = names.pop(0)
        module = sys.modules.get(name)
        if name in seen or module is None:
            continue
        seen[name] = module
        for value in vars(module).values():
            used = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
            if isinstance(used, str) and used not in seen and ours(used):
                names.append(used)
    return [seen[name] for name in sorted(seen)]


@lru_cache(maxsize=None)
def _class_fingerprint(cls: type) -> str:
    code = {module.__name__: hashlib.sha256(_source(module).encode("utf-8")).hexdigest()
            for module in _code_modules(cls)}
    space = {name: _canonical(param) for name, param in dict(getattr(cls, "search_space", {})).items()}
    return digest({"class": cls.__qualname__, "code": code, "search_space": space})


def load_strategies(plugins: tuple[str, ...] | list[str] = ()):
    """The strategy registry with a matrix's plugin files loaded (each once per process)."""
    from strategies import discover, load_plugin

    for plugin in plugins:
        load_plugin(plugin)
    return discover()


def strategy_fingerprint(name: str) -> str:
    """Fingerprint of a registered strategy's code and search space (cached per class)."""
    from strategies import discover

    return _class_fingerprint(discover().get(name))


# ------------------------------------------------------------------------------------ cells


def cell_fingerprint(card: DatasetCard, strategy: str, dataset: str | None = None) -> str:
    """Fingerprint of everything outside the matrix configuration that makes a cell's result:
    the card and its data, its encoders' versions, the strategy's code and search space, the
    protocol. ``dataset``: the card's ``dataset_fingerprint`` where the caller has it already."""
    return digest({"dataset": dataset or dataset_fingerprint(card), "strategy": strategy_fingerprint(strategy),
                   "protocol": PROTOCOL_VERSION})


def matrix_inputs_fingerprint(cards: list[DatasetCard], strategies: list[str], datasets: dict[str, str]) -> str:
    """Fingerprint of a matrix's inputs: its datasets' cards and encoder versions, its strategies'
    code and search spaces, the protocol (part of the matrix id, benchmark/run/planning.py).
    ``datasets``: dataset name -> ``dataset_fingerprint`` of its card (the data hashed once)."""
    return digest({"datasets": {card.name: datasets[card.name] for card in cards},
                   "strategies": {name: strategy_fingerprint(name) for name in strategies},
                   "protocol": PROTOCOL_VERSION})
