"""STDiT embeddings against closed forms: PixArt/MAE 2D sin-cos table, Open-Sora's scaling, RoPE, timesteps."""
import math

import numpy as np
import torch

from models.stdit.embed import apply_rope, get_2d_sincos_pos_embed, opensora_pos_embed, timestep_embedding


def pixart_reference(dim, grid_size, lewei_scale=1.0, base_size=16):
    """PixArt-α's get_2d_sincos_pos_embed (diffusion/model/nets/PixArt.py), transcribed in numpy."""
    grid_h = np.arange(grid_size[0], dtype=np.float32) / (grid_size[0] / base_size) / lewei_scale
    grid_w = np.arange(grid_size[1], dtype=np.float32) / (grid_size[1] / base_size) / lewei_scale
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape([2, 1, grid_size[1], grid_size[0]])

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)


def test_sincos_matches_pixart_formula_non_square():
    ours = get_2d_sincos_pos_embed(32, 3, 5, scale=2.0, base_size=16)
    ref = pixart_reference(32, (3, 5), lewei_scale=2.0, base_size=16)
    assert ours.shape == (15, 32)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)


def test_sincos_closed_form_values():
    emb = get_2d_sincos_pos_embed(8, 2, 3)  # plain integer grid: token (r, c) = index r·3 + c
    # Token 0 is (0, 0): sin 0 = 0 and cos 0 = 1 in both halves.
    torch.testing.assert_close(emb[0], torch.tensor([0.0, 0, 1, 1, 0, 0, 1, 1]))
    # Token 5 is row 1, column 2; quarter = 2 frequencies 1 and 1/100.
    c, r = 2.0, 1.0
    expected = [math.sin(c), math.sin(c / 100), math.cos(c), math.cos(c / 100),
                math.sin(r), math.sin(r / 100), math.cos(r), math.cos(r / 100)]
    torch.testing.assert_close(emb[5], torch.tensor(expected))


def test_opensora_scaling_interpolates_every_resolution_onto_the_512_grid():
    # 1024² pixels, 8x VAE and 2x2 patches: 64x64 tokens at positions 0, 0.5, … 31.5 (scale 2, base 64).
    table = opensora_pos_embed(16, 64, 64, 1024, 1024, 512)
    torch.testing.assert_close(table, get_2d_sincos_pos_embed(16, 64, 64, scale=1.0, base_size=32))
    # At 2048² it equals PixArt-Σ-2K's table (base_size 128, lewei_scale 4).
    sigma = pixart_reference(16, (128, 128), lewei_scale=4.0, base_size=128)
    np.testing.assert_allclose(opensora_pos_embed(16, 128, 128, 2048, 2048, 512).numpy(), sigma, atol=1e-5)
    # At 512² the grid is the plain integer grid.
    torch.testing.assert_close(opensora_pos_embed(16, 32, 32, 512, 512, 512), get_2d_sincos_pos_embed(16, 32, 32))


def test_timestep_embedding_closed_form():
    emb = timestep_embedding(torch.tensor([0.0, 2.0]), 6)
    torch.testing.assert_close(emb[0], torch.tensor([1.0, 1, 1, 0, 0, 0]))
    freqs = [math.exp(-math.log(10000) * k / 3) for k in range(3)]
    expected = [math.cos(2 * f) for f in freqs] + [math.sin(2 * f) for f in freqs]
    torch.testing.assert_close(emb[1], torch.tensor(expected))


def test_rope_rotates_interleaved_pairs_and_keeps_relative_positions():
    x = torch.zeros(1, 3, 4)
    x[..., 0] = 1.0  # pair 0 = (1, 0), pair 1 = (0, 0)
    out = apply_rope(x, theta=10000.0)
    for n in range(3):  # pair 0 turns by angle n (frequency 1)
        torch.testing.assert_close(out[0, n, :2], torch.tensor([math.cos(n), math.sin(n)]))
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(6, generator=gen), torch.randn(6, generator=gen)
    rq, rk = apply_rope(q.expand(8, 6)), apply_rope(k.expand(8, 6))  # the same q and k at positions 0..7
    dots = rq @ rk.T  # <R_m q, R_n k> must depend on m − n only
    torch.testing.assert_close(dots[1, 0], dots[5, 4], atol=1e-5, rtol=0)
    torch.testing.assert_close(dots[2, 6], dots[0, 4], atol=1e-5, rtol=0)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm().expand(8))


def test_rope_positions_rotate_each_token_by_its_own_position():
    x = torch.randn(2, 8, 6, generator=torch.Generator().manual_seed(3))
    full = apply_rope(x)  # positions 0..7
    torch.testing.assert_close(apply_rope(x, positions=torch.arange(8)), full)
    picked = apply_rope(x[:, [3, 5, 5]], positions=torch.tensor([3, 5, 5]))
    torch.testing.assert_close(picked, full[:, [3, 5, 5]])  # a token at position p turns as row p of the default
    same = apply_rope(x[:, :4], positions=torch.tensor([2, 2, 2, 2]))  # one frame's tokens share one rotation
    dots = same @ same.transpose(-1, -2)
    torch.testing.assert_close(dots, x[:, :4] @ x[:, :4].transpose(-1, -2), atol=1e-5, rtol=0)


def test_patch_embed_tokens_are_contiguous_with_patch_values():
    from models.stdit.embed import PatchEmbed3D

    embed = PatchEmbed3D((1, 2, 2), in_channels=4, hidden_size=8)
    x = torch.randn(2, 4, 3, 6, 8)  # (B, C, T, H, W)
    tokens = embed(x)
    assert tokens.shape == (2, 3, 12, 8) and tokens.is_contiguous()  # (B, T, H/2·W/2, D)
    # token (t=1, s=5) is the patch at row 1, column 1 of frame 1 (row-major over 3x4 patches)
    patch = x[0, :, 1, 2:4, 2:4].reshape(-1)
    expected = embed.proj.weight.reshape(8, -1) @ patch + embed.proj.bias
    assert torch.allclose(tokens[0, 1, 5], expected, atol=1e-5)
