"""Frozen encoder networks, loaded once per process: every split (and every dataset) that
uses the same encoder model reuses it instead of loading the weights again. A few models are
kept (the least recently used one is dropped beyond ``MAX_MODELS``); ``loads`` counts the
real loads per key, which the tests read."""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Hashable

MAX_MODELS = 4

_models: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
_lock = threading.Lock()
loads: collections.Counter[Hashable] = collections.Counter()


def cached_model(key: Hashable, load: Callable[[], Any]) -> Any:
    """The model for ``key`` (e.g. ("minilm", model directory)), calling ``load()`` only the first time."""
    with _lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
        model = load()
        loads[key] += 1
        _models[key] = model
        while len(_models) > MAX_MODELS:
            _models.popitem(last=False)
        return model


def clear() -> None:
    """Forget every loaded model (the next use loads it again)."""
    with _lock:
        _models.clear()
