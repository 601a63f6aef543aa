"""GRiT-B and its BERT vocabulary from the weights store (object_class, multiple_objects, color, spatial_relationship).

  grit-b                    grit_b_densecap_objectdet.pth: a detectron2 checkpoint ({"model": state dict, …});
                            widths and depths read off its shapes, every key loaded strictly
  bert-base-uncased-vocab   bert-base-uncased's vocab.txt, shared with scene (the hub loads it as a transformers
                            BertTokenizer): GRiT decodes its token ids with the slow BertTokenizer's
                            decode(skip_special_tokens=True), reproduced by BertVocab over the same id → token table
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch

from components.evaluation.loaders import WeightFile, load_state_dict, read_bytes, sha256_bytes
from components.evaluation.vbench.loaders import _strict
from models.vbench.grit import GRiT
from models.vbench.grit_config import GRiTConfig

TEXT_HEAD_DIM = 64  # BERT-base's heads are 64 wide
# detectron2 keeps the pixel statistics as non-persistent buffers; VBench's copy registers a second decoder
# (`text_decoder_det`) sharing the first one's weights: neither carries weights of its own
SHARED_PREFIXES = ("pixel_mean", "pixel_std", "roi_heads.text_decoder_det.")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# transformers' clean_up_tokenization (on in the transformers VBench pins for BertTokenizer)
CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def _count(state: dict, prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})


def grit_config(state: dict[str, torch.Tensor], source: str) -> GRiTConfig:
    """The GRiT a checkpoint holds, read off its shapes (window blocks have the smaller relative-position tables)."""
    bu, heads_ = "backbone.bottom_up.", "roi_heads."
    text = heads_ + "text_decoder.textual."
    try:
        proj = state[bu + "patch_embed.proj.weight"]
        dim, patch = int(proj.shape[0]), int(proj.shape[-1])
        depth = _count(state, bu + "blocks.")
        rows = [int(state[f"{bu}blocks.{i}.attn.rel_pos_h"].shape[0]) for i in range(depth)]
        head_dim = int(state[bu + "blocks.0.attn.rel_pos_h"].shape[1])
        fpn = int(state["backbone.fpn_stride8_conv1.weight"].shape[0])
        fc1 = state[heads_ + "box_head.0.fc1.weight"]
        words = state[text + "embedding.words.weight"]
        cfg = replace(
            GRiTConfig(), patch_size=patch, embed_dim=dim, depth=depth, heads=dim // head_dim,
            mlp_ratio=int(state[bu + "blocks.0.mlp.fc1.weight"].shape[0]) / dim,
            img_size=(max(rows) + 1) // 2 * patch, window_size=(min(rows) + 1) // 2,
            window_blocks=tuple(i for i, r in enumerate(rows) if r < max(rows)),
            pretrain_img_size=math.isqrt(int(state[bu + "pos_embed"].shape[1]) - 1) * patch, fpn_channels=fpn,
            box_convs=_count(state, "proposal_generator.centernet_head.bbox_tower.") // 2,
            pooler_resolution=math.isqrt(int(fc1.shape[1]) // fpn), fc_dim=int(fc1.shape[0]),
            num_fc=_count(state, heads_ + "box_head.0."), mask_convs=_count(state, heads_ + "mask_head.") - 2,
            vocab_size=int(words.shape[0]), text_hidden=int(words.shape[1]),
            text_layers=_count(state, text + "transformer.encoder.layer."),
            text_heads=max(1, int(words.shape[1]) // TEXT_HEAD_DIM),
            text_ffn=int(state[text + "transformer.encoder.layer.0.intermediate.dense.weight"].shape[0]),
            text_positions=int(state[text + "embedding.positions.weight"].shape[0]))
    except KeyError as err:
        raise ValueError(f"{source}: not a GRiT checkpoint (no {err.args[0]})") from None
    stages = _count(state, heads_ + "box_head.")
    if stages != len(cfg.cascade_weights):
        raise ValueError(f"{source}: GRiT's cascade has {len(cfg.cascade_weights)} stages, the checkpoint {stages}")
    return cfg


def load_grit(uri: str) -> tuple[torch.nn.Module, WeightFile]:
    """GRiT (eval mode) from grit_b_densecap_objectdet.pth, every parameter in the file and nothing else."""
    data = read_bytes(uri)
    state = load_state_dict(data, uri)
    if "model" in state and isinstance(state["model"], dict):  # detectron2 saves {"model": …, "iteration": …}
        state = state["model"]
    state = {k: v for k, v in state.items() if not k.startswith(SHARED_PREFIXES)}
    cfg = grit_config(state, uri)
    model = GRiT(cfg)
    tied = "roi_heads.text_decoder.textual."
    if tied + "output.weight" in state and not torch.equal(state[tied + "output.weight"],
                                                           state[tied + "embedding.words.weight"]):
        raise ValueError(f"{uri}: the text decoder's output and word embedding weights differ; GRiT ties them")
    _strict(model, state, uri, f"GRiT (ViT dim {cfg.embed_dim}, depth {cfg.depth}, text {cfg.text_layers} layers)")
    return model.eval(), WeightFile(uri, sha256_bytes(data))


class BertVocab:
    """bert-base-uncased's WordPiece vocabulary, decoding ids as BertTokenizer.decode(skip_special_tokens=True)."""

    def __init__(self, tokens: list[str], source: str = "vocab.txt"):
        self.tokens, self.source = tokens, source
        index = {t: i for i, t in enumerate(tokens)}
        missing = [t for t in SPECIAL_TOKENS if t not in index]
        if missing:
            raise ValueError(f"{source}: not a BERT vocabulary (no {', '.join(missing)})")
        self.special = {index[t] for t in SPECIAL_TOKENS}

    def decode(self, ids: list[int]) -> str:
        """Tokens joined with spaces, '##' pieces glued on, special tokens dropped, spaces before punctuation cut."""
        bad = [i for i in ids if not 0 <= i < len(self.tokens)]
        if bad:
            raise ValueError(f"{self.source}: token id {bad[0]} is outside the {len(self.tokens)}-token vocabulary")
        text = " ".join(self.tokens[i] for i in ids if i not in self.special).replace(" ##", "").strip()
        for before, after in CLEAN_UP:
            text = text.replace(before, after)
        return text


def parse_vocab(text: str, source: str) -> BertVocab:
    """A vocab.txt: token i on line i (trailing newline stripped, nothing else)."""
    return BertVocab(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), source)


def vocab_of(tokenizer: Any) -> BertVocab:
    """A BertVocab from the hub's tokenizer (anything with get_vocab(): token → id), or the BertVocab given."""
    if isinstance(tokenizer, BertVocab):
        return tokenizer
    ids = tokenizer.get_vocab()
    tokens = [""] * (max(ids.values()) + 1)
    for token, i in ids.items():
        tokens[i] = token
    return BertVocab(tokens, getattr(tokenizer, "name_or_path", "") or "bert-base-uncased-vocab")
