"""GRiT-B (real architecture): checkpoint names and size, ops against closed forms, loader, and the 4 dimensions."""
from __future__ import annotations

import hashlib
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from components.evaluation.vbench.dimensions_grit import color, multiple_objects, object_class, spatial_relationship
from components.evaluation.vbench.grit_rules import position_score
from components.evaluation.vbench.compute import compute
from components.evaluation.vbench.hub import ModelHub
from components.evaluation.vbench.loaders_grit import load_grit, parse_vocab, vocab_of
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.weights import Located
from models.vbench.grit import GRiT, GRiT_B
from models.vbench.grit_backbone import GRiTBackbone, rel_pos_table, window_partition, window_unpartition
from models.vbench.grit_config import DENSE_CAP, OBJECT_DET, GRiTConfig
from models.vbench.grit_ops import apply_deltas, box_levels, nms, roi_align
from vbench_testing import moving_square, write_lossless

# same architecture, small widths: 2 ViT blocks (block 0 windowed), a 64-wide pyramid, a 1-layer text decoder
TINY = GRiTConfig(embed_dim=32, depth=2, heads=2, img_size=64, window_size=2, window_blocks=(0,), fpn_channels=64,
                  box_convs=1, fc_dim=32, mask_convs=1, vocab_size=110, text_hidden=64, text_layers=1, text_heads=1,
                  text_ffn=64, text_positions=64)
WORDS = ["triangle", "square", "green", "circle", "##s", ",", "bear"]  # ids 105 … 111


def vocab_lines() -> list[str]:
    """BERT's special-token layout ([PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103, [unused99] 104) + WORDS."""
    return ["[PAD]", *[f"[unused{i}]" for i in range(99)], "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused99]", *WORDS]


def sure_grit(seed: int = 0) -> GRiT:
    """Random trunk; heads forced so every frame has confident boxes, named 'triangle' and captioned 'green'."""
    torch.manual_seed(seed)
    model = GRiT(TINY).eval()
    head, roi = model.proposal_generator.centernet_head, model.roi_heads
    text = roi.text_decoder.textual
    with torch.no_grad():
        head.agn_hm.weight.zero_(), head.agn_hm.bias.fill_(8.0)  # objectness ~1 everywhere
        head.bbox_pred.weight.zero_(), head.bbox_pred.bias.fill_(4.0)  # boxes 8 strides wide
        for predictor in roi.box_predictor:
            predictor.cls_score.weight.zero_(), predictor.cls_score.bias.copy_(torch.tensor([6.0, -6.0]))
            predictor.bbox_pred[2].weight.zero_(), predictor.bbox_pred[2].bias.zero_()
        # text layers pass their input through (zero residual branches); the tied word matrix maps the ObjectDet
        # begin token and "triangle" to one direction, the DenseCap token and "green" to another
        for layer in text.transformer.encoder.layer:
            for dense in (layer.attention.output.dense, layer.output.dense):
                dense.weight.zero_(), dense.bias.zero_()
        text.embedding.positions.weight.zero_()
        words = text.embedding.words.weight
        words.zero_()
        u, w = torch.zeros(TINY.text_hidden), torch.zeros(TINY.text_hidden)
        u[0], u[1], w[2], w[3] = 0.5**0.5, -(0.5**0.5), 0.5**0.5, -(0.5**0.5)
        words[101], words[105], words[104], words[107] = u, u, w, w
        text.output.bias.fill_(-20.0)
        text.output.bias[[105, 107]] = 0.0
        text.output.bias[102] = 4.0  # [SEP] beats everything but the direction's word (logit 8)
    return model


def test_grit_b_has_the_checkpoint_names_and_size():
    with torch.device("meta"):
        model = GRiT_B()
    state = model.state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["backbone.bottom_up.pos_embed"] == (1, 197, 768)  # 224 px pre-training grid + CLS slot
    assert shapes["backbone.bottom_up.blocks.0.attn.rel_pos_h"] == (27, 64)  # 14 x 14 window
    assert shapes["backbone.bottom_up.blocks.2.attn.rel_pos_w"] == (127, 64)  # global block, 1024 / 16 grid
    assert shapes["backbone.fpn_stride_16_8.weight"] == (768, 768, 2, 2)
    assert shapes["backbone.fpn_stride32_norm2.weight"] == (256,)
    assert shapes["backbone.top_block.p7.weight"] == (256, 256, 3, 3)
    assert shapes["proposal_generator.centernet_head.bbox_tower.10.weight"] == (256,)  # 4th GroupNorm
    assert shapes["proposal_generator.centernet_head.agn_hm.weight"] == (1, 256, 3, 3)
    assert shapes["proposal_generator.centernet_head.scales.4.scale"] == (1,)
    assert shapes["roi_heads.box_head.2.fc1.weight"] == (1024, 256 * 7 * 7)
    assert shapes["roi_heads.box_predictor.0.cls_score.weight"] == (2, 1024)
    assert shapes["roi_heads.box_predictor.1.bbox_pred.2.weight"] == (4, 1024)
    assert shapes["roi_heads.mask_head.mask_fcn4.weight"] == (256, 256, 3, 3)
    assert shapes["roi_heads.text_decoder.textual.embedding.words.weight"] == (30522, 768)
    assert shapes["roi_heads.text_decoder.textual.embedding.positions.weight"] == (1024, 768)
    assert shapes["roi_heads.text_decoder.textual.transformer.encoder.layer.5.attention.self.query.weight"] == (
        768, 768)
    assert shapes["roi_heads.text_decoder.textual.output.weight"] == (30522, 768)  # tied to the words
    assert len(state) == 367 and not any("cls_tower" in k or "pixel" in k for k in state)
    params = dict(model.named_parameters())  # the tied output matrix counts once
    count = {p: sum(v.numel() for k, v in params.items() if k.startswith(p))
             for p in ("backbone.", "proposal_generator.", "roi_heads.box_", "roi_heads.mask_head.",
                       "roi_heads.text_decoder.")}
    # ViT-B 85,889,024 + deconv 2,359,296 + 3 x (1x1, 3x3, 2 LN) 787,456 + P6/P7 2 x 590,080
    assert count["backbone."] == 85_889_024 + 2_359_296 + 3 * 787_456 + 2 * 590_080
    assert count["proposal_generator."] == 4 * (590_080 + 512) + 9_220 + 2_305 + 5
    assert count["roi_heads.box_"] == 3 * (12_846_080 + 1_049_600 + 2_050 + 1_049_600 + 4_100)
    assert count["roi_heads.mask_head."] == 4 * 590_080 + 262_400 + 257
    # projection + LN, words, positions, LN, 6 BERT layers of 7,087,872, output bias
    assert count["roi_heads.text_decoder."] == 198_912 + 23_440_896 + 786_432 + 1_536 + 6 * 7_087_872 + 30_522
    assert sum(p.numel() for p in params.values()) == 208_627_543


def test_roi_align_of_a_linear_map_is_its_value_at_bin_centres():
    h, w = 20, 24
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    feature = torch.stack([2 * xs + 3 * ys, -xs])[None]  # (1, 2, H, W): bilinear sampling is exact on it
    box = torch.tensor([[0, 4.0, 3.0, 16.0, 13.0]])  # aligned: pixel centres at integers after a -0.5 shift
    out = roi_align(feature, box, out=2, scale=1.0)
    centres_x = 4.0 - 0.5 + (torch.arange(2) + 0.5) * 6.0  # bins 6 px wide, 5 px tall
    centres_y = 3.0 - 0.5 + (torch.arange(2) + 0.5) * 5.0
    expected = 2 * centres_x[None, :] + 3 * centres_y[:, None]
    assert out.shape == (1, 2, 2, 2)
    assert torch.allclose(out[0, 0], expected, atol=1e-5) and torch.allclose(out[0, 1], -centres_x.expand(2, 2))
    # half scale (a stride-2 level) samples the same map at half the coordinates
    half = roi_align(feature, torch.tensor([[0, 8.0, 6.0, 32.0, 26.0]]), out=2, scale=0.5)
    assert torch.allclose(half, out, atol=1e-5)
    # samples beyond (-1, size] read zero: a box far outside pools to zeros; an empty box too
    far = roi_align(feature, torch.tensor([[0, 100.0, 100.0, 120.0, 120.0], [0, 5.0, 5.0, 5.0, 5.0]]), 2, 1.0)
    assert far.abs().max() == 0


def scalar_roi_align(feature: torch.Tensor, box: list[float], out: int, scale: float) -> torch.Tensor:
    """torchvision's C++ roi_align (aligned=True, adaptive grid) one sample at a time: the reference."""
    c, h, w = feature.shape
    x0, y0, x1, y1 = (v * scale - 0.5 for v in box)
    bin_h, bin_w = (y1 - y0) / out, (x1 - x0) / out
    grid_h, grid_w = math.ceil((y1 - y0) / out), math.ceil((x1 - x0) / out)
    result = torch.zeros(c, out, out)
    for ph in range(out):
        for pw in range(out):
            total = torch.zeros(c)
            for iy in range(grid_h):
                y = y0 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                for ix in range(grid_w):
                    x = x0 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                    if y < -1.0 or y > h or x < -1.0 or x > w:
                        continue
                    y, x = max(y, 0.0), max(x, 0.0)
                    yl, xl = int(y), int(x)
                    yh, xh = (yl + 1, xl + 1)
                    if yl >= h - 1:
                        yl = yh = h - 1
                        y = float(yl)
                    if xl >= w - 1:
                        xl = xh = w - 1
                        x = float(xl)
                    ly, lx = y - yl, x - xl
                    total += ((1 - ly) * (1 - lx) * feature[:, yl, xl] + (1 - ly) * lx * feature[:, yl, xh]
                              + ly * (1 - lx) * feature[:, yh, xl] + ly * lx * feature[:, yh, xh])
            result[:, ph, pw] = total / max(grid_h * grid_w, 1)
    return result


def test_roi_align_matches_the_scalar_reference_at_edges():
    torch.manual_seed(3)
    feature = torch.randn(2, 3, 9, 11)
    boxes = [[1, -6.0, -4.0, 10.0, 7.0], [0, 30.0, 20.0, 47.5, 39.0], [1, 3.3, 2.2, 4.1, 2.9],
             [0, 0.0, 0.0, 44.0, 36.0]]
    got = roi_align(feature, torch.tensor(boxes), out=3, scale=0.25)  # a stride-4 level
    for i, (b, *box) in enumerate(boxes):
        assert torch.allclose(got[i], scalar_roi_align(feature[int(b)], box, 3, 0.25), atol=1e-5), box


def test_nms_deltas_and_levels_against_hand_values():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]  # IoU(0, 1) = 81 / 119 = 0.68
    assert nms(boxes, scores, 0.7).tolist() == [0, 1, 2]
    assert nms(boxes, torch.tensor([0.1, 0.8, 0.7]), 0.5).tolist() == [1, 2]
    moved = apply_deltas(torch.tensor([[10.0, 0.0, 5 * math.log(2), 0.0]]), boxes[:1], (10.0, 10.0, 5.0, 5.0))
    assert torch.allclose(moved, torch.tensor([[5.0, 0.0, 25.0, 10.0]]))  # centre +1 width, width x2
    sides = torch.tensor([112.0, 224.0, 448.0, 2000.0])
    assert box_levels(torch.stack([0 * sides, 0 * sides, sides, sides], 1), 3, 5).tolist() == [0, 1, 2, 2]


def test_backbone_windows_and_pyramid_shapes():
    x = torch.randn(2, 5, 7, 3)
    windows, padded = window_partition(x, 3)
    assert windows.shape == (2 * 2 * 3, 3, 3, 3) and padded == (6, 9)
    assert torch.equal(window_unpartition(windows, 3, padded, (5, 7)), x)
    table = torch.arange(7.0)[:, None].expand(7, 2)  # 2 * 4 - 1 rows: row k is offset k - 3
    assert rel_pos_table(4, 4, table)[0, 3, 0] == 0 and rel_pos_table(4, 4, table)[3, 0, 0] == 6
    feats = GRiTBackbone(TINY)(torch.randn(1, 3, 96, 128))
    assert [tuple(f.shape) for f in feats] == [(1, 64, 12, 16), (1, 64, 6, 8), (1, 64, 3, 4), (1, 64, 2, 2),
                                               (1, 64, 1, 1)]


def full_logits(textual, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """GRiT's BertEncoderAsDecoder: [memory; tokens] through every layer, memory blind to tokens, tokens causal."""
    memory = textual.object_feature_projection(features)
    m, t = memory.shape[1], tokens.shape[1]
    x = torch.cat([memory, textual.embedding(tokens)], 1)
    mask = torch.zeros(m + t, m + t)
    mask[:m, m:] = float("-inf")
    mask[m:, m:] = torch.triu(torch.full((t, t), float("-inf")), 1)
    for layer in textual.transformer.encoder.layer:
        x = layer(x, mask[None, None])[0]
    return textual.output(x[:, m:])


@torch.no_grad()
def test_incremental_decoding_equals_grits_full_recomputation():
    torch.manual_seed(1)
    decoder = GRiT(replace(TINY, text_layers=2)).roi_heads.text_decoder.eval()  # cached and uncached layers
    textual = decoder.textual
    features, tokens = torch.randn(3, 196, 64), torch.randint(0, 110, (3, 5))
    reference = full_logits(textual, features, tokens)
    cache, steps = textual.remember(features), []
    for i in range(5):  # one token at a time after the cached rows
        logits, cache = textual(cache, tokens[:, i : i + 1], i)
        steps.append(logits)
    assert torch.allclose(torch.cat(steps, 1), reference, atol=1e-5)
    # greedy search against GRiT's loop: full recomputation, previous token at -10000, ended rows kept at [SEP]
    ids, _ = decoder(features, 101)
    seq = torch.full((3, 1), 101)
    while seq.shape[1] < TINY.max_steps and not (seq.shape[1] > 1 and (seq[:, -1] == 102).all()):
        logits = full_logits(textual, features, seq)[:, -1]
        if seq.shape[1] > 1:
            logits = logits.scatter(1, seq[:, -1:], -10000.0)
        nxt = logits.argmax(1)
        seq = torch.cat([seq, torch.where(seq[:, -1] == 102, 102, nxt)[:, None]] if seq.shape[1] > 1 else
                        [seq, nxt[:, None]], 1)
    assert ids.tolist() == seq.tolist()


def test_grit_forward_shapes_and_forced_descriptions():
    torch.manual_seed(0)
    plain = GRiT(TINY).eval()(torch.rand(1, 3, 50, 70) * 255, (OBJECT_DET,))[0]  # random heads: few or no boxes
    assert plain.boxes.shape[1] == 4 and plain.tokens[OBJECT_DET].shape[0] == len(plain.boxes)
    found = sure_grit()(torch.rand(2, 3, 48, 64) * 255, (OBJECT_DET, DENSE_CAP))
    assert len(found) == 2
    for f in found:
        n = len(f.boxes)
        assert n > 0 and f.boxes[:, 2].max() <= 64 and f.boxes[:, 3].max() <= 48 and (f.box_scores > 0.5).all()
        assert f.tokens[OBJECT_DET].tolist() == [[101, 105, 102]] * n  # triangle, then [SEP]
        assert f.tokens[DENSE_CAP].tolist() == [[104, 107, 102]] * n  # green, then [SEP]
        assert ((f.scores[OBJECT_DET] > 0) & (f.scores[OBJECT_DET] <= 1)).all()


def test_vocab_decodes_like_bert_tokenizer():
    from transformers import BertTokenizer

    vocab = parse_vocab("\n".join(vocab_lines()) + "\n", "vocab.txt")
    assert vocab.tokens[104] == "[unused99]" and len(vocab.tokens) == 112
    assert vocab.decode([111, 109, 102, 102, 0]) == "bears"  # WordPiece glued, specials dropped
    assert vocab.decode([105, 110, 106]) == "triangle, square"  # no space before the comma
    # the hub hands over a transformers BertTokenizer (shared with scene): same id → token table
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(vocab_lines())}, do_lower_case=True)
    assert vocab_of(tokenizer).tokens == vocab.tokens and vocab_of(vocab) is vocab
    with pytest.raises(ValueError, match="v.txt: not a BERT vocabulary"):
        parse_vocab("hello\nworld\n", "v.txt")
    with pytest.raises(ValueError, match="token id 500 is outside the 112-token vocabulary"):
        vocab.decode([500])


def test_loader_round_trip_and_wrong_checkpoints(tmp_path):
    model = sure_grit()
    torch.save({"model": model.state_dict(), "iteration": 3}, tmp_path / "grit.pth")
    loaded, record = load_grit(str(tmp_path / "grit.pth"))
    assert loaded.cfg == TINY and len(record.sha256) == 64
    images = torch.rand(1, 3, 48, 64) * 255
    a, b = model(images)[0], loaded(images)[0]
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.tokens[OBJECT_DET], b.tokens[OBJECT_DET])
    state = model.state_dict()
    del state["roi_heads.mask_head.deconv.bias"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"partial.pth: not a GRiT .*missing \['roi_heads.mask_head.deconv.bias'\]"):
        load_grit(str(tmp_path / "partial.pth"))
    torch.save({"blocks.0.attn.qkv.weight": torch.zeros(3, 3)}, tmp_path / "dino.pth")
    with pytest.raises(ValueError, match="dino.pth: not a GRiT checkpoint .no backbone.bottom_up.patch_embed"):
        load_grit(str(tmp_path / "dino.pth"))


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    """GRiT and the vocabulary through their loaders, and a writer of 18-frame lossless test videos."""
    folder = tmp_path_factory.mktemp("grit")
    torch.save({"model": sure_grit().state_dict()}, folder / "grit.pth")
    (folder / "vocab.txt").write_text("\n".join(vocab_lines()) + "\n")
    grit, _ = load_grit(str(folder / "grit.pth"))
    vocab = parse_vocab((folder / "vocab.txt").read_text(), "vocab.txt")
    clip = moving_square(18, 48)

    def video(name: str, prompt: str, aux: dict) -> VideoItem:
        return VideoItem(str(write_lossless(clip, folder / f"{name}-0.mp4")), prompt, aux)

    return grit, vocab, video, folder


def test_object_class_end_to_end(scorer):
    grit, vocab, video, _ = scorer
    found = object_class(grit, vocab, [video("a", "a triangle", {"object": "triangle"}),
                                       video("b", "a circle", {"object": "circle"})])
    assert found.value == 0.5 and [r["score"] for r in found.per_video] == [1.0, 0.0]
    assert found.per_video[0]["success_frames"] == 16 and found.per_video[1]["names"][0] == ["triangle"]
    with pytest.raises(ValueError, match=r"object_class: .*a-0.mp4 \(prompt 'x'\) has no auxiliary_info 'object'"):
        object_class(grit, vocab, [VideoItem(found.per_video[0]["video"], "x", {})])


def test_multiple_objects_end_to_end(scorer):
    grit, vocab, video, _ = scorer
    both = multiple_objects(grit, vocab, [video("c", "a triangle and a circle", {"object": "triangle and circle"})])
    assert both.value == 0.0 and both.per_video[0]["objects"] == ["triangle", "circle"]
    assert both.per_video[0]["frames"] == 16 and both.per_video[0]["names"][5] == ["triangle"]


def test_color_end_to_end(scorer):
    grit, vocab, video, _ = scorer
    colours = color(grit, vocab, [video("d", "a green triangle", {"color": "green"}),
                                  video("e", "a red triangle", {"color": "red"})])
    assert colours.value == 0.5 and [r["object"] for r in colours.per_video] == ["triangle", "triangle"]
    assert [(r["object_frames"], r["color_frames"]) for r in colours.per_video] == [(16, 16), (16, 0)]
    assert set(colours.per_video[0]["captions"][0]) == {"green"}
    with pytest.raises(ValueError, match="color: in none of the 1 videos"):
        color(grit, vocab, [video("g", "a green circle", {"color": "green"})])  # GRiT only sees triangles


def test_spatial_relationship_end_to_end(scorer):
    grit, vocab, video, _ = scorer
    info = {"object_a": "triangle", "object_b": "circle", "relationship": "on the left of"}
    spatial = spatial_relationship(grit, vocab, [video("f", "a triangle on the left of a circle",
                                                       {"spatial_relationship": info})])
    record = spatial.per_video[0]
    assert len(record["frame_scores"]) == 16 and 0.0 < spatial.value <= 1.0
    assert spatial.value == pytest.approx(np.mean(record["frame_scores"]))
    boxes = [b for _, b in record["boxes"][0]]  # the rule re-applied to the recorded boxes gives the frame score
    best = max(position_score("on the left of", boxes[i], boxes[j]) for i in range(len(boxes))
               for j in range(i + 1, len(boxes)))
    assert record["frame_scores"][0] == pytest.approx(best)


def test_compute_runs_the_dimensions_through_the_hub(scorer):
    _, _, video, folder = scorer
    located = {"grit-b": Located("grit-b", str(folder / "grit.pth"), True),
               "bert-base-uncased-vocab": Located("bert-base-uncased-vocab", str(folder / "vocab.txt"), True)}
    hub = ModelHub(located)
    items = {"object_class": [video("h", "a triangle", {"object": "triangle"})],
             "color": [video("i", "a green triangle", {"color": "green"})]}
    outcome = compute(["object_class", "color"], items.__getitem__, hub)
    assert {d: r.value for d, r in outcome.results.items()} == {"object_class": 1.0, "color": 1.0}
    files = [w["name"] for w in outcome.results["color"].settings["weights"]]
    assert files == ["grit-b", "bert-base-uncased-vocab"]
    digest = hashlib.sha256((folder / "grit.pth").read_bytes()).hexdigest()
    grit_record = outcome.results["object_class"].settings["weights"][0]
    assert grit_record == {"name": "grit-b", "file": str(folder / "grit.pth"), "sha256": digest}
