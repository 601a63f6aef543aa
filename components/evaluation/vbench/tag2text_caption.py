"""Tag2Text_Caption.generate as VBench's scene dimension calls it: tag the frames, then caption them from the tags.

  tags      sigmoid(tag logits) > 0.7 (VBench's threshold), six tags never used (quarter, two, three, four,
            five, one: indices 127, 3351, 3265, 3338, 3355, 3359), the rest joined " | " in tag-list order
  tag input WordPiece of the tag string padded/truncated to 40 tokens, [CLS] replaced by [ENC]
  caption   prompt "a picture of " as [DEC] a picture of; beam search (3 beams, 10 to 30 tokens); decoded with
            special tokens skipped and the prompt's characters cut off
  rows      transformers 4.33 repeats the decoder's cross-attention states once more per beam and med.py keeps
            the first B*k rows, so frame f's beams read the tag states of frame f // k: VBench's captions of
            16 frames come from the tags of frames 0,0,0,1,1,1,…,5. `vbench_rows` keeps that (the published
            numbers); False gives each frame its own tags.
"""
from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from models.vbench.beam_search import BeamConfig, beam_search
from models.vbench.tag2text import Tag2Text


class CaptionSettings(BaseModel):
    """Tag2Text_Caption's generate() arguments as VBench leaves them."""

    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(0.7, gt=0, lt=1)
    deleted_tags: tuple[int, ...] = (127, 3351, 3265, 3338, 3355, 3359)
    prompt: str = "a picture of "
    tag_tokens: int = Field(40, ge=2)
    beams: int = Field(3, ge=2)
    max_length: int = Field(30, ge=2)
    min_length: int = Field(10, ge=0)
    vbench_rows: bool = True


def bert_tokenizer(vocab: Any) -> Any:
    """The hub's bert-base-uncased-vocab object as a transformers BertTokenizer.

    GRiT's dimensions share that weight name and may load it as their own decoder (`.tokens`, one per line).
    """
    if callable(vocab) and hasattr(vocab, "vocab_size"):
        return vocab
    tokens = getattr(vocab, "tokens", None)
    if not isinstance(tokens, list):
        raise TypeError(f"bert-base-uncased-vocab: expected a BertTokenizer or an object with a token list, "
                        f"got {type(vocab).__name__}")
    from transformers import BertTokenizer

    return BertTokenizer(vocab={token: i for i, token in enumerate(tokens)}, do_lower_case=True)


def special_ids(tokenizer: Any) -> tuple[int, int]:
    """([DEC], [ENC]): Tag2Text adds them after bert-base-uncased's vocabulary, in that order."""
    return tokenizer.vocab_size, tokenizer.vocab_size + 1


def tag_strings(logits: torch.Tensor, names: list[str], settings: CaptionSettings = CaptionSettings()) -> list[str]:
    """(B, tags) logits → each frame's recognised tags, " | "-joined in tag-list order."""
    if logits.shape[-1] != len(names):
        raise ValueError(f"the tagging head scores {logits.shape[-1]} tags but the tag list names {len(names)}")
    keep = torch.sigmoid(logits.float()) > settings.threshold
    keep[:, [i for i in settings.deleted_tags if i < len(names)]] = False
    return [" | ".join(names[i] for i in row.nonzero().flatten().tolist()) for row in keep]


def encode_tags(tokenizer: Any, tags: list[str], settings: CaptionSettings = CaptionSettings()
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Tag strings → ([ENC] t1 … [SEP] [PAD]… ids, attention mask), each (B, tag_tokens)."""
    enc = tokenizer(tags, padding="max_length", truncation=True, max_length=settings.tag_tokens,
                    return_tensors="pt")
    ids = enc["input_ids"].clone()
    ids[:, 0] = special_ids(tokenizer)[1]
    return ids, enc["attention_mask"]


def prompt_ids(tokenizer: Any, count: int, settings: CaptionSettings = CaptionSettings()) -> torch.Tensor:
    """(count, P) rows of [DEC] + the prompt's tokens (its [SEP] dropped)."""
    ids = tokenizer([settings.prompt] * count, return_tensors="pt")["input_ids"].clone()
    ids[:, 0] = special_ids(tokenizer)[0]
    return ids[:, :-1]


def decode(tokenizer: Any, tokens: list[int], settings: CaptionSettings = CaptionSettings()) -> str:
    """decode(skip_special_tokens=True) of the whole sequence, minus the prompt's length in characters."""
    skip = set(tokenizer.all_special_ids) | set(special_ids(tokenizer))
    text = tokenizer.decode([t for t in tokens if t not in skip], clean_up_tokenization_spaces=True)
    return text[len(settings.prompt):]


def caption_rows(frames: int, beams: int, vbench_rows: bool) -> torch.Tensor:
    """Which frame's tag states each of the frames*beams decoder rows reads (see the module docstring)."""
    rows = torch.arange(frames * beams)
    return rows // (beams * beams) if vbench_rows else rows // beams


@torch.no_grad()
def caption(model: Tag2Text, tokenizer: Any, names: list[str], images: torch.Tensor,
            settings: CaptionSettings = CaptionSettings()) -> tuple[list[str], list[str]]:
    """(B, 3, 384, 384) ImageNet-normalised frames → (captions, tag strings), one each per frame."""
    device = images.device
    embeds = model.image_embeds(images)
    tags = tag_strings(model.tag_logits(embeds), names, settings)
    tag_ids, tag_mask = encode_tags(tokenizer, tags, settings)
    states = model.tag_states(embeds, tag_ids.to(device), tag_mask.to(device))  # (B, T, hidden)
    states = states[caption_rows(len(tags), settings.beams, settings.vbench_rows).to(device)]
    beam = BeamConfig(beams=settings.beams, max_length=settings.max_length, min_length=settings.min_length,
                      eos=tokenizer.sep_token_id, pad=tokenizer.pad_token_id)
    best = beam_search(lambda ids: model.next_token_logits(ids, states), prompt_ids(tokenizer, len(tags),
                                                                                     settings).to(device), beam)
    return [decode(tokenizer, tokens, settings) for tokens in best], tags
