"""Sample media: side-by-side layout, MP4 through PyAV, GIF through Pillow."""
from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from components.media import side_by_side, stack_rows, upscale, write_gif, write_mp4


def clip(value: int, t: int = 5, h: int = 6, w: int = 8) -> np.ndarray:
    return np.full((t, h, w, 3), value, np.uint8)


def test_side_by_side_and_rows_layout():
    pair = side_by_side([clip(10), clip(200)], gap=2)
    assert pair.shape == (5, 6, 18, 3)
    assert (pair[:, :, :8] == 10).all() and (pair[:, :, 8:10] == 255).all() and (pair[:, :, 10:] == 200).all()
    grid = stack_rows([pair, pair], gap=3)
    assert grid.shape == (5, 15, 18, 3) and (grid[:, 6:9] == 255).all()
    assert upscale(pair, 3).shape == (5, 18, 54, 3)
    with pytest.raises(ValueError, match="differ in frames or height"):
        side_by_side([clip(1), clip(1, t=4)])


def test_mp4_round_trip_keeps_frames_size_and_colours(tmp_path):
    frames = np.stack([np.full((7, 9, 3), (20 * i, 100, 250 - 20 * i), np.uint8) for i in range(6)])
    path = write_mp4(frames, tmp_path / "a.mp4", fps=4, crf=0)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        assert stream.average_rate == 4
    assert decoded.shape == (6, 8, 10, 3)  # odd sides padded to even for yuv420p
    assert np.abs(decoded[:, 3, 4].astype(int) - frames[:, 3, 4].astype(int)).max() <= 4


def test_gif_has_every_frame_and_the_rate(tmp_path):
    frames = np.stack([clip(v, t=1)[0] for v in (0, 128, 255)])
    path = write_gif(frames, tmp_path / "a.gif", fps=5)
    with Image.open(path) as gif:
        assert (gif.n_frames, gif.size, gif.info["duration"], gif.info["loop"]) == (3, (8, 6), 200, 0)
        gif.seek(1)
        assert np.asarray(gif.convert("RGB"))[2, 2].tolist() == [128, 128, 128]
    with pytest.raises(ValueError, match="expected \\(T, H, W, 3\\) uint8"):
        write_gif(frames.astype(np.float32), tmp_path / "b.gif")
