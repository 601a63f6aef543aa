"""scene: VBench's rule, Tag2Text's generate (tags, beam search, decoding) and the Tag2Text network end to end."""
from __future__ import annotations

import hashlib
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from components.evaluation.vbench.compute import compute
from components.evaluation.vbench.dimensions_scene import frame_success, read_scene_frames, scene, scene_label
from components.evaluation.vbench.frames import middle_indices
from components.evaluation.vbench.hub import ModelHub
from components.evaluation.vbench.loaders_tag2text import load_bert_vocab, load_tag2text, load_tag_list
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.tag2text_caption import (CaptionSettings, caption_rows, decode, encode_tags,
                                                          prompt_ids, tag_strings)
from components.evaluation.vbench.weights import Located
from models.vbench.beam_search import BeamConfig, Hypotheses, beam_search
from models.vbench.med_bert import MedConfig
from models.vbench.swin import SwinConfig, relative_index, shift_mask, window_partition, window_reverse
from models.vbench.tag2text import Tag2Text, Tag2Text_SwinB_384, Tag2TextConfig
from vbench_testing import flat_video, write_lossless

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "picture", "of", "|", "beach", "dining", "room",
         "kitchen", "table", "tree", "sky", "with", "."]
TAGS = ["beach", "dining room", "kitchen", "table", "tree", "sky"]
# VBench's input (384 px, 12x12 windows) on a small trunk: patch 8 gives stages of 48 and 24 tokens a side
TINY = Tag2TextConfig(swin=SwinConfig(patch_size=8, embed_dim=16, depths=(2, 2), heads=(1, 2)),
                      text=MedConfig(hidden=32, layers=2, heads=1, intermediate=64, vocab=len(WORDS) + 2,
                                     max_positions=64), tagging_heads=1, tags=len(TAGS))


@pytest.fixture
def tokenizer(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    return load_bert_vocab(str(tmp_path / "vocab.txt"))[0]


def kitchen_captioner(seed: int = 0) -> Tag2Text:
    """Random trunk whose tagging head always finds "kitchen" and whose decoder writes "kitchen" until eos may come.

    The LM head's transform is zeroed, so its logits are its bias: kitchen +20, [SEP] +25 (banned before 10 tokens).
    """
    torch.manual_seed(seed)
    model = Tag2Text(TINY).eval()
    with torch.no_grad():
        model.fc.W.zero_()
        model.fc.b.copy_(torch.tensor([[-9.0, -9.0, 9.0, -9.0, -9.0, -9.0]]))
        head = model.text_decoder.cls.predictions
        head.transform.dense.weight.zero_()
        head.transform.dense.bias.zero_()
        head.bias.zero_()
        head.bias[WORDS.index("kitchen")] = 20.0
        head.bias[WORDS.index("[SEP]")] = 25.0
    return model


def test_full_size_has_the_checkpoint_names_and_size():
    with torch.device("meta"):
        model = Tag2Text_SwinB_384()
    state = model.state_dict()
    # Swin-B 384 (86.88M) + tag encoder (141.98M, its 2 lowest layers' cross-attention and FFN shared with the
    # tagging head) + text decoder (137.88M, output layer tied to the word embeddings) + 3429 tags x 768 twice
    assert sum(p.numel() for p in model.parameters()) == 372_007_193
    assert sum(p.numel() for p in model.visual_encoder.parameters()) == 86_878_584
    assert state["visual_encoder.layers.2.blocks.17.attn.relative_position_bias_table"].shape == (23 * 23, 16)
    assert state["visual_encoder.layers.0.downsample.reduction.weight"].shape == (256, 512)
    assert state["tag_encoder.encoder.layer.11.crossattention.self.key.weight"].shape == (768, 1024)
    assert state["vision_multi.encoder.layer.1.crossattention.self.value.weight"].shape == (768, 1024)
    assert state["text_decoder.cls.predictions.decoder.weight"].shape == (30524, 768)
    assert state["fc.W"].shape == (1, 3429, 768) and state["label_embed.weight"].shape == (3429, 768)
    assert "vision_multi.embeddings.word_embeddings.weight" not in state  # deleted, Query2Label style
    assert "vision_multi.encoder.layer.0.attention.self.query.weight" not in state
    low, high = model.vision_multi.encoder.layer[1], model.tag_encoder.encoder.layer[1]
    assert high.crossattention.self.query.weight is low.crossattention.self.query.weight
    assert (high.crossattention.self.heads, low.crossattention.self.heads) == (12, 4)
    assert model.tag_encoder.encoder.layer[2].output.dense.weight is not low.output.dense.weight


def test_swin_window_geometry_by_hand():
    # 2x2 window: index of (dy + 1) * 3 + (dx + 1) for query token i and key token j (row-major coordinates)
    assert relative_index(2).tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    mask = shift_mask(4, 2, 1)  # 4x4 tokens, 2x2 windows, shifted by 1: the last window mixes 4 regions
    assert mask.shape == (4, 4, 4) and mask[0].abs().sum() == 0
    assert mask[3].tolist() == [[0 if i == j else -100.0 for j in range(4)] for i in range(4)]
    x = torch.arange(2 * 4 * 4 * 3.0).view(2, 4, 4, 3)
    assert torch.equal(window_reverse(window_partition(x, 2), 2, 4, 4), x)
    assert window_partition(x, 2)[1, :, 0].tolist() == [6.0, 9.0, 18.0, 21.0]  # window (0, 1): tokens 2,3,6,7


def test_tiny_tag2text_shapes():
    torch.manual_seed(0)
    model = Tag2Text(TINY).eval()
    images = torch.randn(2, 3, 384, 384)
    with torch.no_grad():
        embeds = model.image_embeds(images)
        logits = model.tag_logits(embeds)
        states = model.tag_states(embeds, torch.randint(0, 20, (2, 40)), torch.ones(2, 40, dtype=torch.long))
        nxt = model.next_token_logits(torch.randint(0, 20, (6, 5)), states.repeat_interleave(3, 0))
    assert embeds.shape == (2, 1 + 24 * 24, 32)  # mean token + the last stage's 24x24 tokens
    assert torch.allclose(embeds[:, 0], embeds[:, 1:].mean(1), atol=1e-6)
    assert logits.shape == (2, 6) and states.shape == (2, 40, 32) and nxt.shape == (6, len(WORDS) + 2)
    assert torch.isfinite(nxt).all()
    with pytest.raises(ValueError, match=r"Swin expects \(B, 3, 384, 384\) images, got \(1, 3, 224, 224\)"):
        model.image_embeds(torch.zeros(1, 3, 224, 224))



SWIN_RENAMES = (("attn.proj", "attention.o_proj"), ("norm1", "layernorm_before"), ("norm2", "layernorm_after"),
                ("attn.relative_position_bias_table", "attention.relative_position_bias.relative_position_bias_table"))


def swin_as_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tag2Text's Swin names → transformers' SwinModel names (fused qkv split into q, k, v)."""
    out = {}
    for k, v in state.items():
        if k.startswith("patch_embed."):
            out[k.replace("patch_embed.proj.", "embeddings.patch_embeddings.projection.").replace(
                "patch_embed.norm.", "embeddings.norm.")] = v
        elif k.startswith("norm."):
            out["layernorm." + k.split(".")[-1]] = v
        elif ".attn.qkv." in k:
            for name, part in zip(("q_proj", "k_proj", "v_proj"), v.chunk(3)):
                out["encoder." + k.replace("attn.qkv", "attention." + name)] = part
        else:
            for a, b in SWIN_RENAMES:
                k = k.replace(a, b)
            out["encoder." + k] = v
    return out


def test_swin_matches_transformers_swin():
    from transformers import SwinConfig as HFSwinConfig, SwinModel

    torch.manual_seed(0)
    mine = Tag2Text(TINY).visual_encoder.eval()
    with torch.no_grad():  # zero-initialised tables would hide a wrong relative index
        for name, p in mine.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.normal_()
    theirs = SwinModel(HFSwinConfig(image_size=384, patch_size=8, embed_dim=16, depths=[2, 2], num_heads=[1, 2],
                                    window_size=12, drop_path_rate=0.0)).eval()
    missing, unexpected = theirs.load_state_dict(swin_as_transformers(mine.state_dict()), strict=False)
    assert missing == [] and unexpected == []
    images = torch.randn(2, 3, 384, 384)
    with torch.no_grad():
        ours, ref = mine(images), theirs(pixel_values=images)
    assert torch.allclose(ours[:, 1:], ref.last_hidden_state, atol=1e-5)
    assert torch.allclose(ours[:, 0], ref.pooler_output, atol=1e-5)


def test_text_decoder_matches_transformers_bert_and_tag_encoder_ignores_padding():
    from transformers import BertConfig, BertLMHeadModel

    torch.manual_seed(0)
    model = Tag2Text(TINY).eval()
    cfg = TINY.text
    ref = BertLMHeadModel(BertConfig(vocab_size=cfg.vocab, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                                     num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate,
                                     max_position_embeddings=cfg.max_positions, type_vocab_size=1, is_decoder=True,
                                     add_cross_attention=True, layer_norm_eps=cfg.norm_eps)).eval()
    state = dict(model.text_decoder.state_dict())
    state["bert.embeddings.token_type_embeddings.weight"] = torch.zeros(1, cfg.hidden)  # MED has no token types
    missing, unexpected = ref.load_state_dict(state, strict=False)
    assert missing == [] and unexpected == []
    ids, states = torch.randint(0, cfg.vocab, (3, 7)), torch.randn(3, 40, cfg.hidden)
    with torch.no_grad():
        ours = model.text_decoder(ids, states)
        theirs = ref(input_ids=ids, encoder_hidden_states=states, use_cache=False).logits
        assert torch.allclose(ours, theirs, atol=1e-4)
        embeds = model.image_embeds(torch.randn(1, 3, 384, 384))
        mask = torch.tensor([[1, 1, 1, 0, 0]])
        a = model.tag_states(embeds, torch.tensor([[19, 12, 3, 0, 0]]), mask)
        b = model.tag_states(embeds, torch.tensor([[19, 12, 3, 9, 14]]), mask)  # other ids behind the mask
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6) and not torch.allclose(a[:, 3:], b[:, 3:])

def markov(table: dict[int, list[float]]):
    """Next-token logits that depend on the last token only (log of the given probabilities)."""
    def next_logits(ids: torch.Tensor) -> torch.Tensor:
        return torch.tensor([table[int(t)] for t in ids[:, -1]]).log()
    return next_logits


def test_beam_search_follows_transformers_by_hand():
    # tokens 0 [DEC], 1 a, 2 b, 3 eos. Greedy takes "a" (0.6) but "b" ends with 0.99: the beam keeps both.
    table = {0: [1e-9, 0.6, 0.4 - 2e-9, 1e-9], 1: [1e-9, 0.34, 0.33, 0.33 - 1e-9], 2: [1e-9, 0.005, 0.005, 0.99]}
    prompt = torch.zeros(1, 1, dtype=torch.long)
    best = beam_search(markov(table), prompt, BeamConfig(beams=2, max_length=5, min_length=0, eos=3))
    # [0, b] + eos scores log(0.4 * 0.99) / 2 = -0.463, above [0, a] + eos (log(0.6 * 0.33) / 2 = -0.810)
    assert best == [[0, 2]]
    # eos banned below 4 tokens and max length 4: no sequence closes, the open beams are the hypotheses
    best = beam_search(markov(table), prompt, BeamConfig(beams=2, max_length=4, min_length=4, eos=3))
    assert best == [[0, 1, 1, 1]]  # never closed: the open beam a a a (.6 * .34 * .34) beats a a b and any b path
    hyps = Hypotheses(beams=2, length_penalty=1.0)
    hyps.add([0, 1], -1.0)
    hyps.add([0, 1, 2], -0.9)
    hyps.add([0, 2, 2, 2], -1.6)  # -0.4 per token: replaces the worst (-0.5), worst becomes -0.4 / -0.3
    assert sorted(s for s, _ in hyps.kept) == [pytest.approx(-0.4), pytest.approx(-0.3)]
    assert hyps.is_done(-2.1, 5) and not hyps.is_done(-1.9, 5)  # -2.1/5 = -0.42 cannot beat -0.4


def test_tags_tokens_and_decoding(tokenizer):
    logits = torch.tensor([[3.0, 0.0, 0.85, 0.84, -1.0, 2.0], [-5.0] * 6])  # sigmoid(0.85)=0.7006 > 0.7 > 0.6985
    assert tag_strings(logits, TAGS) == ["beach | kitchen | sky", ""]
    assert tag_strings(logits, TAGS, CaptionSettings(deleted_tags=(0, 5))) == ["kitchen", ""]
    ids, mask = encode_tags(tokenizer, ["kitchen | dining room", ""], CaptionSettings(tag_tokens=8))
    enc = len(WORDS) + 1  # [DEC] = vocab size, [ENC] = vocab size + 1
    assert ids.tolist() == [[enc, 12, 8, 10, 11, 3, 0, 0], [enc, 3, 0, 0, 0, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0]]
    assert prompt_ids(tokenizer, 2).tolist() == [[len(WORDS), 5, 6, 7]] * 2  # [DEC] a picture of
    assert decode(tokenizer, [len(WORDS), 5, 6, 7, 12, 16, 13, 17, 3, 0]) == "kitchen with table."
    frames_of_beams = caption_rows(16, 3, vbench_rows=True).view(16, 3)
    assert frames_of_beams[:, 0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5]
    assert (frames_of_beams == frames_of_beams[:, :1]).all()  # a frame's beams share states: reordering is safe
    assert caption_rows(16, 3, vbench_rows=False).view(16, 3)[:, 2].tolist() == list(range(16))


def test_scene_rule_is_vbench_substring_check():
    assert frame_success("coffee shop", ["a coffee shop with people", "a shop", "coffeeshop", ""]) == [
        True, False, True, False]
    assert frame_success("bar", ["a red barn in a field"]) == [True]  # substring, as VBench's `q in pred`
    item = VideoItem("v.mp4", "a kitchen", {"scene": {"scene": "kitchen"}})
    assert scene_label(item) == "kitchen"
    with pytest.raises(ValueError, match=r"v.mp4: prompt 'a kitchen' has no scene label"):
        scene_label(VideoItem("v.mp4", "a kitchen", {"scene": "kitchen"}))


def test_frames_are_decoded_at_384_and_sixteen_middles(tmp_path):
    path = write_lossless(flat_video([10 * i for i in range(20)], height=48, width=64), tmp_path / "v.mp4")
    frames = read_scene_frames(str(path))
    assert frames.shape == (16, 384, 384, 3)  # aspect ratio not kept, as decord's scale=384:384
    assert frames[:, 100, 200, 1].tolist() == [10 * i for i in middle_indices(16, 20)]
    from PIL import Image  # a .gif keeps its size in VBench's reader and is resized by PIL afterwards

    gif = [Image.fromarray(f) for f in flat_video([10 * i for i in range(5)], height=48, width=64)]
    gif[0].save(tmp_path / "v.gif", save_all=True, append_images=gif[1:], duration=100)
    frames = read_scene_frames(str(tmp_path / "v.gif"))
    assert frames.shape == (16, 384, 384, 3) and frames[:, 0, 0, 0].tolist() == [10 * i for i in
                                                                                middle_indices(16, 5)]


def test_loader_round_trip_and_wrong_checkpoint(tmp_path):
    model = kitchen_captioner()
    state = dict(model.state_dict())
    # the released file also carries the buffers VBench drops before loading
    state["visual_encoder.layers.0.blocks.1.attn_mask"] = torch.zeros(16, 144, 144)
    state["visual_encoder.layers.0.blocks.0.attn.relative_position_index"] = relative_index(12)
    state["text_decoder.bert.embeddings.position_ids"] = torch.arange(64)[None]
    torch.save({"model": state}, tmp_path / "tag2text.pth")
    loaded, record = load_tag2text(str(tmp_path / "tag2text.pth"))
    assert loaded.cfg == TINY
    assert record.sha256 == hashlib.sha256((tmp_path / "tag2text.pth").read_bytes()).hexdigest()
    assert torch.equal(loaded.fc.b, model.fc.b)
    assert torch.equal(loaded.tag_encoder.encoder.layer[0].intermediate.dense.weight,
                       model.vision_multi.encoder.layer[0].intermediate.dense.weight)
    del state["fc.b"]
    torch.save({"model": state}, tmp_path / "cut.pth")
    with pytest.raises(ValueError, match=r"cut.pth: not a Tag2Text checkpoint: missing \['fc.b'\]"):
        load_tag2text(str(tmp_path / "cut.pth"))
    torch.save({"model": {"patch_embed.proj.weight": torch.zeros(8, 3, 4, 4)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"other.pth: not a Tag2Text checkpoint \(no visual_encoder.patch_embed"):
        load_tag2text(str(tmp_path / "other.pth"))
    (tmp_path / "tags.txt").write_text("beach\n\nsky\n")
    with pytest.raises(ValueError, match=r"tags.txt: line 2 is empty"):
        load_tag_list(str(tmp_path / "tags.txt"))


def test_scene_end_to_end_through_the_hub(tmp_path, tokenizer):
    torch.save({"model": kitchen_captioner().state_dict()}, tmp_path / "tag2text.pth")
    (tmp_path / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    (tmp_path / "tags.txt").write_text("\n".join(TAGS) + "\n")
    rng = np.random.default_rng(0)
    frames = (rng.random((18, 40, 56, 3)) * 255).astype(np.uint8)
    videos = [VideoItem(str(write_lossless(frames, tmp_path / f"{label}-0.mp4")), f"a {label}",
                        {"scene": {"scene": label}}) for label in ("kitchen", "dining room")]
    paths = {"tag2text": "tag2text.pth", "bert-base-uncased-vocab": "vocab.txt", "tag2text-tag-list": "tags.txt"}
    hub = ModelHub({n: Located(n, str(tmp_path / f), True) for n, f in paths.items()})
    outcome = compute(["scene"], lambda dim: videos, hub)
    result = outcome.results["scene"]
    assert result.value == 0.5 and [r["score"] for r in result.per_video] == [1.0, 0.0]
    first = result.per_video[0]
    # eos is banned until 10 tokens (4 of them the prompt), then wins: six "kitchen" per frame
    assert first["captions"] == ["kitchen kitchen kitchen kitchen kitchen kitchen"] * 16
    assert first["tags"] == ["kitchen"] * 16 and (first["success_frames"], first["frames"]) == (16, 16)
    assert result.per_video[1]["label"] == "dining room" and result.per_video[1]["success_frames"] == 0
    assert [w["name"] for w in result.settings["weights"]] == list(paths)
    assert result.settings["generate"]["beams"] == 3 and result.settings["generate"]["vbench_rows"] is True
    assert math.isclose(result.value, 16 / 32)


class TokenList:
    """The shape of GRiT's vocab object (the same weight name may load as it): just the tokens, one per id."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens


def test_scene_accepts_a_token_list_for_the_shared_vocab_name(tokenizer):
    videos = [VideoItem("x.mp4", "a kitchen", {"scene": {"scene": "kitchen"}})]
    result = scene(kitchen_captioner(), TokenList(WORDS), TAGS, videos,
                   reader=lambda path: np.full((16, 384, 384, 3), 128, np.uint8))
    assert result.value == 1.0 and result.per_video[0]["captions"][0] == " ".join(["kitchen"] * 6)
    with pytest.raises(TypeError, match="bert-base-uncased-vocab: expected a BertTokenizer"):
        scene(kitchen_captioner(), {"a": 0}, TAGS, videos)


def test_caption_needs_a_tag_list_of_the_heads_size(tokenizer):
    model = Tag2Text(replace(TINY, tags=4)).eval()
    videos = [VideoItem("x.mp4", "a kitchen", {"scene": {"scene": "kitchen"}})]
    with pytest.raises(ValueError, match="the tagging head scores 4 tags but the tag list names 6"):
        scene(model, tokenizer, TAGS, videos, reader=lambda path: np.zeros((16, 384, 384, 3), np.uint8))
