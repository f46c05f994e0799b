"""Every built-in encoder, registered, and the lookup by card name (``get_encoder``).

Importing this module imports each encoder module once, so their ``@ENCODERS.register``
decorators run; nothing else imports the encoder modules for that side effect."""

from __future__ import annotations

from typing import Any

from benchmark.features import audio, audio_pretrained, clip, image, openclip, tabular, text, vector  # noqa: F401 - registration side effects
from benchmark.features.base import ENCODERS, Encoder
from benchmark.features.encoder_options import check_options


def get_encoder(name: str, **options: Any) -> Encoder:
    """Resolve a registered encoder name, or an online ``prefix:model-id`` spec, with the card's
    options (checked against the encoder's constructor: benchmark/features/encoder_options.py)."""
    if ":" in name:
        prefix, model_id = name.split(":", 1)
        factory = ENCODERS.get(prefix + ":")
        check_options(name, factory, options)
        return factory(model_id=model_id, **options)
    factory = ENCODERS.get(name)
    check_options(name, factory, options)  # an unknown option is refused, not ignored
    return factory(**options)


__all__ = ["ENCODERS", "get_encoder"]
