"""Text-embedding cache: hit/miss counts, exact round trips, per-encoder keys, concurrent writers."""
import hashlib
import multiprocessing as mp
import random
from pathlib import Path

import pytest
import torch

from components.dit.text_cache import CacheError, TextEmbeddingCache
from components.dit.text_encoders import load_minilm


class SeededEncoder:
    """A deterministic stand-in text encoder: per-caption random tokens, one real token per word (+1)."""

    def __init__(self, version: str = "v1", max_length: int = 8, dim: int = 4) -> None:
        self.name, self.version, self.max_length, self.dim = "seeded", version, max_length, dim
        self.calls: list[int] = []

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls.append(len(captions))
        embs, masks = [], []
        for caption in captions:
            seed = int(hashlib.sha256(f"{self.version}|{caption}".encode()).hexdigest()[:8], 16)
            embs.append(torch.randn(self.max_length, self.dim, generator=torch.Generator().manual_seed(seed)))
            masks.append(torch.arange(self.max_length) < min(len(caption.split()) + 1, self.max_length))
        return torch.stack(embs), torch.stack(masks)


def test_hits_and_misses_are_counted_and_misses_encoded_in_batches(tmp_path):
    enc = SeededEncoder()
    cache = TextEmbeddingCache(tmp_path, enc, batch_size=2)
    cache.get(["a cat", "a dog", "a cat"])
    assert (cache.stats.hits, cache.stats.misses, cache.stats.encoded, cache.stats.written) == (0, 3, 2, 2)
    cache.get(["a dog", "a red fox", "a cow"])
    assert (cache.stats.hits, cache.stats.misses, cache.stats.encoded) == (1, 5, 4)
    assert enc.calls == [2, 2]  # unique misses only, at most batch_size per encoder call
    again = TextEmbeddingCache(tmp_path, enc)
    emb, mask = again.get(["a cow", "a cat", "a red fox", "a dog"])
    assert (again.stats.hits, again.stats.misses, again.stats.encoded) == (4, 0, 0)
    assert emb.shape == (4, 8, 4) and mask.sum(1).tolist() == [3, 3, 4, 3]


def test_same_tensors_back_from_disk(tmp_path):
    enc = SeededEncoder()
    captions = ["one", "two words", "three words here"]
    expected_emb, expected_mask = enc.encode(captions)
    full = TextEmbeddingCache(tmp_path / "full", enc, trim_padding=False)
    first = full.get(captions)
    second = TextEmbeddingCache(tmp_path / "full", enc, trim_padding=False).get(captions)
    for got in (first, second):
        assert torch.equal(got[0], expected_emb) and torch.equal(got[1], expected_mask)
    trimmed = TextEmbeddingCache(tmp_path / "trim", enc).get(captions)
    reread = TextEmbeddingCache(tmp_path / "trim", enc).get(captions)
    for emb, mask in (trimmed, reread):  # trimmed: real tokens exact, masked positions zero
        assert torch.equal(mask, expected_mask)
        assert torch.equal(emb[mask], expected_emb[mask]) and not emb[~mask].any()
    half = TextEmbeddingCache(tmp_path / "bf16", enc, dtype="bfloat16", trim_padding=False)
    fresh, _ = half.get(captions)
    stored, _ = TextEmbeddingCache(tmp_path / "bf16", enc, dtype="bfloat16", trim_padding=False).get(captions)
    assert torch.equal(fresh, expected_emb.bfloat16().float()) and torch.equal(stored, fresh)


def test_minilm_embeddings_round_trip(tmp_path):
    enc = load_minilm(max_length=12)
    captions = ["a red circle moves left", "a green square on grey"]
    expected_emb, expected_mask = enc.encode(captions)
    TextEmbeddingCache(tmp_path, enc, trim_padding=False).get(captions)
    cache = TextEmbeddingCache(tmp_path, enc, trim_padding=False)
    emb, mask = cache.get(captions)
    assert cache.stats.hits == 2 and emb.shape == (2, 12, 384)
    assert torch.equal(emb, expected_emb) and torch.equal(mask, expected_mask)


def test_different_encoder_version_or_length_means_a_different_key(tmp_path):
    v1, v2, short = SeededEncoder("v1"), SeededEncoder("v2"), SeededEncoder("v1", max_length=6)
    caches = [TextEmbeddingCache(tmp_path, e) for e in (v1, v2, short)]
    assert len({c.key("a cat") for c in caches}) == 3 and len({c.folder for c in caches}) == 3
    caches[0].get(["a cat"])
    emb_v2, _ = caches[1].get(["a cat"])
    assert caches[1].stats.misses == 1  # v1's entry is not served for v2
    (e1,), (real,) = v1.encode(["a cat"])
    (e2,), _ = v2.encode(["a cat"])
    assert torch.equal(emb_v2[0][real], e2[real]) and not torch.equal(e1[real], e2[real])


def test_fill_splits_the_misses_between_ranks(tmp_path):
    captions = [f"caption {i}" for i in range(20)] + ["caption 3"]
    counts = [TextEmbeddingCache(tmp_path, SeededEncoder()).fill(captions, rank=r, world_size=2) for r in (0, 1)]
    assert sum(counts) == 20 and min(counts) > 0
    cache = TextEmbeddingCache(tmp_path, SeededEncoder())
    cache.get(captions)
    assert cache.stats.misses == 0


def write_all(root: str, captions: list[str], seed: int, barrier) -> None:
    torch.set_num_threads(1)
    order = captions[:]
    random.Random(seed).shuffle(order)
    barrier.wait()  # start together so both processes miss, encode and write the same keys at once
    for rounds in range(3):  # fresh cache objects: each round re-reads, so later rounds race readers against writers
        TextEmbeddingCache(root, SeededEncoder(), batch_size=8).get(order)


def test_two_processes_writing_the_same_keys_do_not_corrupt(tmp_path):
    captions = [f"shape {i} moves {'left' if i % 2 else 'right'}" for i in range(60)]
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=write_all, args=(str(tmp_path), captions, seed, barrier)) for seed in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    cache = TextEmbeddingCache(tmp_path, SeededEncoder())
    emb, mask = cache.get(captions)
    expected_emb, expected_mask = SeededEncoder().encode(captions)
    assert cache.stats.hits == 60 and torch.equal(mask, expected_mask)
    assert torch.equal(emb, expected_emb * expected_mask[..., None])  # trimmed padding reads back as zeros
    files = [p.name for p in Path(cache.folder).rglob("*") if p.is_file()]
    assert len(files) == 60 and not [f for f in files if ".tmp-" in f]


def test_unreadable_or_foreign_files_are_named(tmp_path):
    cache = TextEmbeddingCache(tmp_path, SeededEncoder())
    cache.get(["a cat", "a dog"])
    cat, dog = cache.path(cache.key("a cat")), cache.path(cache.key("a dog"))
    Path(dog).write_bytes(Path(cat).read_bytes())
    with pytest.raises(CacheError, match=f"{dog} holds caption 'a cat' of encoder 'seeded', not 'a dog'"):
        cache.get(["a dog"])
    Path(cat).write_bytes(b"\x00garbage")
    with pytest.raises(CacheError, match=f"text cache file {cat} is unreadable"):
        cache.get(["a cat"])
