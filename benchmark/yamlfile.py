"""Reading the YAML files a user writes (dataset cards, profiles): one safe loader that refuses
duplicate keys and alias expansion beyond a small size (a "billion laughs" file), UTF-8 text
only, and the "did you mean" hint for a misspelt field."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable

import yaml

# How many scalars and collection entries the aliases of one file may add when expanded. A card or a
# profile needs a handful; a "billion laughs" file adds billions (and a MemoryError when printed).
MAX_ALIAS_EXPANSION = 10_000


class YamlInputError(yaml.YAMLError):
    """A YAML file fusebench will not read: not UTF-8, a key twice, or aliases expanding too far."""


class DuplicateKey(YamlInputError):
    def __init__(self, key: str, line: int) -> None:
        self.key, self.line = key, line
        super().__init__(f"key {key!r} appears twice (line {line})")


class _StrictLoader(yaml.SafeLoader):
    """Safe loader that refuses duplicate mapping keys (plain YAML keeps the last one silently,
    which would hide a modality declared twice)."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise DuplicateKey(str(key), key_node.start_mark.line + 1)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path`` (UTF-8), read with the strict safe loader. Raises
    FileNotFoundError, or a yaml.YAMLError (YamlInputError for the refusals above)."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlInputError(f"is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        added = _alias_expansion(node)
        if added > MAX_ALIAS_EXPANSION:
            raise YamlInputError(f"its aliases (*name) expand it by more than {MAX_ALIAS_EXPANSION} entries "
                                 f"({'endlessly' if added == float('inf') else added}); write the values out")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _alias_expansion(root: yaml.Node) -> float:
    """How many nodes expanding the aliases adds: the expanded size of the document minus the
    number of distinct nodes (each counted once). Memoised, so a bomb is measured, never expanded;
    a node that contains itself expands endlessly (inf)."""
    sizes: dict[int, float] = {}
    distinct: set[int] = set()

    def size(node: yaml.Node, open_nodes: frozenset) -> float:
        if id(node) in open_nodes:
            return float("inf")
        distinct.add(id(node))
        if id(node) not in sizes:
            children: Iterable[yaml.Node] = ()
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = (n for pair in node.value for n in pair)
            inner = open_nodes | {id(node)}
            sizes[id(node)] = 1 + sum(size(child, inner) for child in children)
        return sizes[id(node)]

    return size(root, frozenset()) - len(distinct)


def closest(name: str, known: Iterable[str]) -> str | None:
    """The one of ``known`` closest to ``name`` (a misspelling of it), or None."""
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``known`` to a misspelt ``name``, or ""."""
    close = closest(name, known)
    return f" (did you mean {close!r}?)" if close else ""
