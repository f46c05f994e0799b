"""Data: dataset cards -> train/validation/test splits as Hugging Face datasets.

cards: parse and validate YAML cards; loading: load a card's splits; splits: stratified
split indices; builtin: the offline built-in datasets (preparers); fetch: their downloads."""
