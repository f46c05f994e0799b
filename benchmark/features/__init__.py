"""Features: encoders and the feature cache, turning each split into tensors.

base: the encoder contract; text, image, audio, tabular: the encoders; catalog: lookup by
name; cache: the on-disk feature cache; tensors: a card's splits as tensors (FeatureSet)."""
