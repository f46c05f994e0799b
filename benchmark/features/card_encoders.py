"""A card's encoders checked from the card alone, before anything is registered or written: each
modality's encoder name is known, its options are ones the encoder takes (with the closest valid
name for a misspelt one), the encoder gets ``column:`` or ``columns:`` as it reads one column or
several, the option values pass the encoder's own checks, and a CLIP adapted to the card's pairs
(option ``adapt``) has its image and text modality. Without this an unknown encoder
was found only when the features were built, after the matrix was registered (a FAILED parent
run left behind on every attempt), and an unknown option was ignored."""

from __future__ import annotations

import re

from benchmark.data.cards import CardError, DatasetCard, ModalitySpec
from benchmark.features.adapted_clip import pair_modalities
from benchmark.features.catalog import get_encoder
from benchmark.features.clip import ClipTower
from benchmark.features.encoder_options import EncoderOptionError
from strategies.registry import RegistryError

# Modality fields the card itself uses (benchmark/features/tensors.py), not handed to the encoder.
CARD_OPTIONS = ("missing",)


def encoder_options(spec: ModalitySpec) -> dict:
    """The options of ``spec`` that its encoder is constructed with."""
    return {k: v for k, v in spec.options.items() if k not in CARD_OPTIONS}


def check_encoders(card: DatasetCard) -> None:
    """Construct every modality's encoder as the features will (constructors load no model), and
    raise CardError naming the card file, the modality and the field at fault."""
    for spec in card.modalities:
        where = f"modalities.{spec.name}"
        try:
            encoder = get_encoder(spec.encoder, **encoder_options(spec))
            if isinstance(encoder, ClipTower) and encoder.adapt is not None:
                pair_modalities(card, spec)  # an adapted CLIP needs one image and one text modality to pair
        except RegistryError as exc:
            raise CardError(card.path, f"{where}.encoder", str(exc)) from None
        except EncoderOptionError as exc:
            raise CardError(card.path, f"{where}.{exc.option}", str(exc)) from None
        except (TypeError, ValueError) as exc:  # a value the encoder refuses, e.g. standardize: "yes"
            named = re.match(r"option '(\w+)'", str(exc))
            field = f"{where}.{named.group(1)}" if named and named.group(1) in spec.options else where
            raise CardError(card.path, field, f"encoder {spec.encoder!r}: {exc}") from None


def check_all_encoders(cards) -> None:
    """``check_encoders`` for each card of a matrix (dataset name -> card)."""
    for card in cards.values():
        check_encoders(card)
