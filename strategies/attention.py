"""Attention fusion over token sequences (attention through ``strategies.fused_attention``)."""

from __future__ import annotations

import torch
from torch import nn

from strategies.base import FusionStrategy, key_padding, masked_mean, masked_softmax, mlp, pool_tokens, zero_absent
from strategies.fused_attention import MaskedAttention, SelfAttentionLayer
from strategies.positions import add_positions
from strategies.registration import register_strategy
from strategies.search_space import Categorical, FloatParam, IntParam

# Search space shared by the token-attention strategies with one attention width and heads.
TOKEN_ATTENTION_SPACE = {
    "hidden": Categorical([64, 128, 256], default=128),
    "heads": Categorical([2, 4], default=4),
    "dropout": FloatParam(0.0, 0.5, default=0.1),
}


@register_strategy("cross_attention")
class CrossAttention(FusionStrategy):
    """Each modality's tokens (projected, plus sinusoidal positions) query the tokens of all
    other present modalities; the attended sequences are pooled per modality and averaged over
    present modalities.

    Crossmodal attention as in Lu et al., "ViLBERT", NeurIPS 2019 (co-attention) and the
    crossmodal blocks of Tsai et al., "Multimodal Transformer", ACL 2019. Unlike ViLBERT: one
    co-attention layer per modality (no stack, no intra-modal self-attention, no pre-training),
    each modality attends to all the others at once, and the output is a masked mean pool
    instead of a [CLS]-style token.
    """

    family = "attention"
    consumes_tokens = True
    description = "one co-attention layer: each modality's tokens (with positions) attend to the other present modalities' tokens"
    paper = "Lu et al. 2019, ViLBERT: co-attentional transformer layers (NeurIPS)"
    search_space = TOKEN_ATTENTION_SPACE

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        hidden = self.hp("hidden")
        self.projections = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in self.input_dims.items()})
        self.attend = nn.ModuleDict(
            {m: MaskedAttention(hidden, self.hp("heads"), self.hp("dropout")) for m in self.modalities}
        )
        self.norm = nn.LayerNorm(hidden)
        self.head = mlp(hidden, hidden, num_classes, self.hp("dropout"))

    def forward(self, inputs, present, token_mask=None):
        # tokens: (B, T_m, H) from zeroed-when-absent inputs; valid: (B, T_m), absent modalities all False
        tokens, valid = project_tokens(self.projections, self.modalities, inputs, present, token_mask)
        pooled = []
        for i, m in enumerate(self.modalities):
            others = [o for o in self.modalities if o != m]
            keys = torch.cat([tokens[o] for o in others], dim=1)  # (B, sum T_o, H)
            key_valid = torch.cat([valid[o] for o in others], dim=1)  # (B, sum T_o)
            # Rows where no other modality is present attend to nothing (zero): keep their own tokens.
            attended = self.attend[m](tokens[m], keys, key_valid)  # (B, T_m, H)
            mixed = self.norm(tokens[m] + attended)  # (B, T_m, H)
            pooled.append(pool_tokens(mixed, valid[m] | ~present[:, i : i + 1]))  # (B, H)
        fused = masked_mean(torch.stack(pooled, dim=1), present)  # (B, H)
        return self.head(fused)  # (B, C)


def project_tokens(projections: nn.ModuleDict, modalities, inputs, present, token_mask):
    """The input stage of every token strategy: zero absent inputs, project them to the hidden
    width, add sinusoidal positions (``strategies.positions``), and build valid-token masks
    (False for absent modalities).

    -> tokens: name -> (B, T_m, H); valid: name -> bool (B, T_m)."""
    tokens, valid = {}, {}
    for i, m in enumerate(modalities):
        projected = projections[m](zero_absent(inputs[m], present[:, i]))  # (B, T_m, H)
        tokens[m] = add_positions(projected)  # (B, T_m, H)
        valid[m] = key_padding(token_mask, m, inputs[m]) & present[:, i : i + 1]  # (B, T_m)
    return tokens, valid


@register_strategy("gated_cross_attention")
class GatedCrossAttention(FusionStrategy):
    """A small trainable base model (tokens projected plus sinusoidal positions, masked mean
    pool per modality, mean over present modalities, MLP head) into which one tanh-gated
    cross-attention block and one tanh-gated feed-forward block are inserted: each modality's
    tokens attend to the other present modalities' tokens. Gates (one scalar per modality and
    block) start at zero, so at initialisation the model computes exactly its base model, which
    mean-pools and so sees token order only through which positions are padding; order enters
    through the cross-attention once the gates open.

    Gated cross-attention dense blocks of Alayrac et al., "Flamingo: a Visual Language Model for
    Few-Shot Learning", NeurIPS 2022. What remains of Flamingo is only that block (x + tanh(a) *
    attention, then x + tanh(b) * FFW, gates initialised at 0). There is no frozen pretrained
    language model (the base is tiny and trained from scratch, with no self-attention), no
    frozen vision encoder, no Perceiver resampler, no per-image attention masking, and a single
    block instead of blocks interleaved between the frozen LM layers; the block is symmetric
    (every modality queries the others) instead of text querying vision.
    """

    family = "attention"
    consumes_tokens = True
    description = ("Flamingo's tanh-gated (init 0) cross-attention + FFW block only, over a small trainable "
                   "mean-pooled token base; no frozen LM, no resampler")
    paper = "Alayrac et al. 2022, Flamingo: a Visual Language Model for Few-Shot Learning (NeurIPS)"
    search_space = TOKEN_ATTENTION_SPACE

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        hidden, heads, dropout = self.hp("hidden"), self.hp("heads"), self.hp("dropout")
        self.projections = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in self.input_dims.items()})
        self.attend = nn.ModuleDict({m: MaskedAttention(hidden, heads, dropout) for m in self.modalities})
        self.attn_norm = nn.LayerNorm(hidden)
        self.ff_norm = nn.LayerNorm(hidden)
        self.ff = mlp(hidden, 2 * hidden, hidden, dropout)
        self.attn_gate = nn.Parameter(torch.zeros(len(self.modalities)))  # tanh(0) = 0: base model at init
        self.ff_gate = nn.Parameter(torch.zeros(len(self.modalities)))
        self.head = mlp(hidden, hidden, num_classes, dropout)

    def _classify(self, tokens, valid, present):
        pooled = [pool_tokens(tokens[m], valid[m] | ~present[:, i : i + 1])  # (B, H)
                  for i, m in enumerate(self.modalities)]
        return self.head(masked_mean(torch.stack(pooled, dim=1), present))  # (B, C)

    def base_logits(self, inputs, present, token_mask=None):
        """The base model alone (no cross-attention): what forward computes while gates are 0."""
        tokens, valid = project_tokens(self.projections, self.modalities, inputs, present, token_mask)
        return self._classify(tokens, valid, present)  # (B, C)

    def forward(self, inputs, present, token_mask=None):
        tokens, valid = project_tokens(self.projections, self.modalities, inputs, present, token_mask)
        gated = {}
        for i, m in enumerate(self.modalities):
            others = [o for o in self.modalities if o != m]
            keys = self.attn_norm(torch.cat([tokens[o] for o in others], dim=1))  # (B, sum T_o, H)
            key_valid = torch.cat([valid[o] for o in others], dim=1)  # (B, sum T_o)
            attended = self.attend[m](self.attn_norm(tokens[m]), keys, key_valid)  # (B, T_m, H)
            x = tokens[m] + torch.tanh(self.attn_gate[i]) * attended  # (B, T_m, H)
            gated[m] = x + torch.tanh(self.ff_gate[i]) * self.ff(self.ff_norm(x))  # (B, T_m, H)
        return self._classify(gated, valid, present)  # (B, C)


@register_strategy("additive_attention")
class AdditiveAttention(FusionStrategy):
    """A learned, input-dependent modality weighting of pooled vectors: each modality's pooled
    features give one embedding z_m = tanh(W_m x_m); each present modality is scored by
    v^T tanh(W q + U z_m) with q the mean of the present embeddings; the scores are softmax-
    normalised over the present modalities only, and the weighted sum of the embeddings is
    classified. It attends over M modality vectors, one per modality, never over tokens.

    The additive scoring function of Bahdanau, Cho & Bengio, "Neural Machine Translation by
    Jointly Learning to Align and Translate", ICLR 2015, applied across modalities instead of
    over the time steps of a sequence (no recurrent decoder state: the query is the mean
    embedding).
    """

    family = "attention"
    consumes_tokens = False  # attends over M modality vectors (M >= 2 keys), not over tokens
    description = ("input-dependent modality weighting of pooled embeddings: additive (Bahdanau) scores, "
                   "softmax over present modalities, weighted sum; not attention over tokens")
    paper = "Bahdanau et al. 2015, Neural Machine Translation by Jointly Learning to Align and Translate (ICLR)"
    search_space = {
        "hidden": IntParam(32, 256, default=128, log=True),
        "attention_dim": IntParam(16, 128, default=64, log=True),
        "dropout": FloatParam(0.0, 0.5, default=0.1),
    }

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        hidden, att = self.hp("hidden"), self.hp("attention_dim")
        self.projections = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in self.input_dims.items()})
        self.query_proj = nn.Linear(hidden, att, bias=False)
        self.key_proj = nn.Linear(hidden, att)
        self.score = nn.Linear(att, 1, bias=False)
        self.head = mlp(hidden, hidden, num_classes, self.hp("dropout"))

    def embed(self, inputs, present) -> torch.Tensor:
        return torch.stack(
            [zero_absent(torch.tanh(self.projections[m](zero_absent(inputs[m], present[:, i]))), present[:, i])
             for i, m in enumerate(self.modalities)], dim=1)  # (B, M, H)

    def attention_weights(self, z: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """z: (B, M, H) embeddings -> (B, M) weights summing to 1 over the present modalities."""
        query = masked_mean(z, present)  # (B, H)
        energy = torch.tanh(self.query_proj(query).unsqueeze(1) + self.key_proj(z))  # (B, M, A)
        return masked_softmax(self.score(energy).squeeze(-1), present, dim=-1)  # (B, M)

    def forward(self, inputs, present, token_mask=None):
        z = self.embed(inputs, present)  # (B, M, H)
        weights = self.attention_weights(z, present)  # (B, M)
        fused = (weights.unsqueeze(-1) * z).sum(dim=1)  # (B, H); absent rows of z are zero
        return self.head(fused)  # (B, C)


@register_strategy("perceiver")
class PerceiverFusion(FusionStrategy):
    """A small set of learned latents cross-attends to the concatenated tokens of all present
    modalities (key padding masks; sinusoidal positions within each modality and a learned
    modality embedding mark each token's place and source), then self-attends; the mean latent
    is classified.

    Latent-bottleneck attention of Jaegle et al., "Perceiver: General Perception with Iterative
    Attention", ICML 2021. Unlike the paper: one cross-attention and one latent
    self-attention layer (the paper repeats cross-attention and stacks a deep latent
    transformer), and 1-D sinusoidal positions added to the tokens instead of Fourier features
    (2-D for images) concatenated to them.
    """

    family = "attention"
    consumes_tokens = True
    description = "learned latents cross-attend once to all present modalities' tokens (with positions), then self-attend"
    paper = "Jaegle et al. 2021, Perceiver: General Perception with Iterative Attention (ICML)"
    search_space = {
        "hidden": Categorical([64, 128, 256], default=64),
        "heads": Categorical([2, 4], default=4),
        "latents": IntParam(4, 32, default=8, log=True),
        "dropout": FloatParam(0.0, 0.5, default=0.1),
    }

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        hidden, heads, dropout = self.hp("hidden"), self.hp("heads"), self.hp("dropout")
        self.projections = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in self.input_dims.items()})
        self.modality_embedding = nn.Parameter(torch.randn(len(self.modalities), hidden) * 0.02)  # (M, H)
        self.latents = nn.Parameter(torch.randn(self.hp("latents"), hidden) * 0.02)  # (L, H)
        self.latent_norm = nn.LayerNorm(hidden)
        self.token_norm = nn.LayerNorm(hidden)
        self.cross = MaskedAttention(hidden, heads, dropout)
        self.cross_ff = mlp(hidden, 2 * hidden, hidden, dropout)
        self.ff_norm = nn.LayerNorm(hidden)
        self.self_attention = SelfAttentionLayer(hidden, heads, 2 * hidden, dropout)  # pre-norm, no mask
        self.head = mlp(hidden, hidden, num_classes, dropout)

    def forward(self, inputs, present, token_mask=None):
        tokens, valid = project_tokens(self.projections, self.modalities, inputs, present, token_mask)
        keys = torch.cat([tokens[m] + self.modality_embedding[i] for i, m in enumerate(self.modalities)], dim=1)  # (B, T, H)
        key_valid = torch.cat([valid[m] for m in self.modalities], dim=1)  # (B, T)
        batch = keys.shape[0]
        latents = self.latents.unsqueeze(0).expand(batch, -1, -1)  # (B, L, H)
        latents = latents + self.cross(self.latent_norm(latents), self.token_norm(keys), key_valid)  # (B, L, H)
        latents = latents + self.cross_ff(self.ff_norm(latents))  # (B, L, H)
        latents = self.self_attention(latents)  # (B, L, H)
        return self.head(latents.mean(dim=1))  # (B, C)
