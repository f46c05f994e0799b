"""A tiny randomly initialised CLIP (no weights are reachable here): a CLIPModel built from a small
CLIPConfig, a byte-level CLIPTokenizer over a vocabulary written here, a CLIPImageProcessor at 32 px,
saved with save_pretrained into a folder that ``hf-clip:<folder>`` names."""

from __future__ import annotations

from pathlib import Path


def tiny_vocab(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP BPE vocabulary: every byte symbol (alone and word-final), merges that spell ``words``
    letter by letter (so they become single tokens), and the start/end tokens."""
    from tokenizers.pre_tokenizers import ByteLevel

    symbols = sorted(ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(symbols) + i for i, s in enumerate(symbols)})
    merges: list[tuple[str, str]] = []
    for word in words:
        current = word[0]
        for k, char in enumerate(word[1:], start=1):
            piece = char + ("</w>" if k == len(word) - 1 else "")
            if (current, piece) not in merges:
                merges.append((current, piece))
                vocab.setdefault(current + piece, len(vocab))
            current = current + piece
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, merges


def save_tiny_clip(folder: Path, words: list[str] = ("a", "photo", "of", "red", "green", "blue"), seed: int = 0,
                   projection_dim: int = 16) -> Path:
    """Write a tiny random CLIP (model + processor) to ``folder``; -> ``folder``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab, merges = tiny_vocab([w for w in words if len(w) > 1])
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    end = vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=32, eos_token_id=end,
                         bos_token_id=vocab["<|startoftext|>"], pad_token_id=end),
        vision_config=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=projection_dim)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder
