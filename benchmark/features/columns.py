"""A split's column as the encoders read it: image and audio columns undecoded, so that the encoder
decodes each row itself and can name the row of an unreadable file."""

from __future__ import annotations

from benchmark.data.loading import DataError, LoadedDataset


def column_values(loaded: LoadedDataset, dataset, spec, split: str, columns) -> list:
    """The raw values of ``spec``'s column in ``dataset`` (one of ``loaded``'s splits, named ``split`` in
    errors); with ``columns`` (an encoder that reads several), one mapping per row."""
    import datasets as hf

    try:
        if columns:
            return dataset.select_columns(list(columns)).to_list()
        feature = dataset.features.get(spec.column)
        if isinstance(feature, hf.Image) and feature.decode:
            dataset = dataset.cast_column(spec.column, hf.Image(decode=False))
        elif isinstance(feature, hf.Audio) and feature.decode:  # read as {bytes, path}: the encoder decodes
            dataset = dataset.cast_column(spec.column, hf.Audio(decode=False))
        return dataset[spec.column]
    except Exception as exc:  # decoding inside datasets (e.g. audio) without a row number
        raise DataError(
            f"dataset {loaded.card.name!r}, split {split!r}, column {spec.column!r} (modality {spec.name!r}): "
            f"cannot read the column: {exc.__class__.__name__}: {exc}"
        ) from exc
