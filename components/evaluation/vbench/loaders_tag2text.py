"""Tag2Text weight files → the captioner VBench's scene dimension runs, each with the record of what was read.

  tag2text           tag2text_swin_14m.pth: {"model": state dict} with Tag2Text's names (visual_encoder.,
                     tag_encoder., text_decoder., vision_multi., label_embed, fc); strict keys after dropping
                     the buffers VBench drops or rebuilds (relative_position_index, attn_mask, position_ids)
  bert vocab         bert-base-uncased vocab.txt → transformers BertTokenizer (Tag2Text adds [DEC] and [ENC]
                     after the vocabulary: ids vocab_size and vocab_size + 1)
  tag list           Tag2Text's 3429 tag names, one per line, in the order of the tagging head's outputs
"""
from __future__ import annotations

import math
from typing import Any

import torch

from components.evaluation.loaders import WeightFile, load_state_dict, read_bytes, sha256_bytes
from models.vbench.med_bert import MedConfig
from models.vbench.swin import SwinConfig
from models.vbench.tag2text import Tag2Text, Tag2TextConfig

REBUILT_BUFFERS = ("relative_position_index", "attn_mask", "position_ids")  # not weights: VBench drops/rebuilds
TEXT_HEAD_DIM = 64  # med_config.json: 768 wide, 12 heads
TAGGING_HEAD_DIM = 192  # q2l_config.json: 768 wide, 4 heads
SWIN_IMAGE_SIZE = 384  # VBench builds Tag2Text at 384 px (config_swinB_384.json)


def _blocks(state: dict, prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})


def tag2text_config(state: dict[str, torch.Tensor], source: str) -> Tag2TextConfig:
    """The Tag2Text a checkpoint holds, read off its shapes (BERT head counts follow the released configs)."""
    v, t = "visual_encoder.", "text_decoder.bert."
    try:
        proj = state[v + "patch_embed.proj.weight"]  # (C, 3, p, p)
        stages = _blocks(state, v + "layers.")
        depths = tuple(_blocks(state, f"{v}layers.{i}.blocks.") for i in range(stages))
        tables = [state[f"{v}layers.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(stages)]
        words = state[t + "embeddings.word_embeddings.weight"]  # (vocab, hidden)
        hidden = int(words.shape[1])
        text = MedConfig(hidden=hidden, layers=_blocks(state, t + "encoder.layer."),
                         heads=max(1, hidden // TEXT_HEAD_DIM),
                         intermediate=int(state[t + "encoder.layer.0.intermediate.dense.weight"].shape[0]),
                         vocab=int(words.shape[0]),
                         max_positions=int(state[t + "embeddings.position_embeddings.weight"].shape[0]))
        tags = int(state["label_embed.weight"].shape[0])
    except KeyError as err:
        raise ValueError(f"{source}: not a Tag2Text checkpoint (no {err.args[0]})") from None
    # the first stage's table is (2w-1)^2 unless that stage is smaller than a window; VBench uses 12 at 384 px
    window = (math.isqrt(int(tables[0].shape[0])) + 1) // 2
    swin = SwinConfig(image_size=SWIN_IMAGE_SIZE, patch_size=int(proj.shape[-1]), embed_dim=int(proj.shape[0]),
                      depths=depths, heads=tuple(int(x.shape[1]) for x in tables), window=window)
    return Tag2TextConfig(swin=swin, text=text, tagging_layers=_blocks(state, "vision_multi.encoder.layer."),
                          tagging_heads=max(1, hidden // TAGGING_HEAD_DIM), tags=tags)


def load_tag2text(uri: str) -> tuple[torch.nn.Module, WeightFile]:
    """Tag2Text (eval mode) from tag2text_swin_14m.pth, every weight of the model read from the file."""
    data = read_bytes(uri)
    state = load_state_dict(data, uri)
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    state = {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] not in REBUILT_BUFFERS}
    cfg = tag2text_config(state, uri)
    model = Tag2Text(cfg)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a shape that disagrees with the widths read off the checkpoint
        raise ValueError(f"{uri}: not a Tag2Text checkpoint ({str(err).splitlines()[-1].strip()})") from None
    if missing or unexpected:
        raise ValueError(f"{uri}: not a Tag2Text checkpoint: missing {sorted(missing)[:5]}, unexpected "
                         f"{sorted(unexpected)[:5]} (of {len(missing)} / {len(unexpected)})")
    return model.eval(), WeightFile(uri, sha256_bytes(data))


def load_bert_vocab(uri: str) -> tuple[Any, WeightFile]:
    """bert-base-uncased's WordPiece tokenizer (lower-casing, accent stripping) from its vocab.txt."""
    from transformers import BertTokenizer

    data = read_bytes(uri)
    lines = data.decode("utf-8").splitlines()
    if "[CLS]" not in lines or "[SEP]" not in lines or "[PAD]" not in lines:
        raise ValueError(f"{uri}: not a BERT vocab.txt (no [CLS]/[SEP]/[PAD] lines among {len(lines)})")
    vocab = {token: i for i, token in enumerate(lines)}
    return BertTokenizer(vocab=vocab, do_lower_case=True), WeightFile(uri, sha256_bytes(data))


def parse_tag_list(text: str, source: str) -> list[str]:
    """The tag names of a tag_list.txt, one per line (trailing blank lines ignored, none inside)."""
    tags = text.splitlines()
    while tags and not tags[-1].strip():
        tags.pop()
    empty = [n for n, tag in enumerate(tags, 1) if not tag.strip()]
    if empty:
        raise ValueError(f"{source}: line {empty[0]} is empty")
    return tags


def load_tag_list(uri: str) -> tuple[list[str], WeightFile]:
    """Tag2Text's tag names (3429 for tag2text_swin_14m) from the store."""
    data = read_bytes(uri)
    return parse_tag_list(data.decode("utf-8"), uri), WeightFile(uri, sha256_bytes(data))

