"""A video-LLM captioner through transformers' generic image-text-to-text API, from local weights only.

Open-Sora 1.2 captions 4 frames per clip with PLLaVA-13B (Open-Sora-Plan: Qwen2-VL-7B). Any checkpoint that
AutoModelForImageTextToText and AutoProcessor load from a folder works: the weights store's `pllava-13b`
folder by default, or `model_dir` (+ `processor_dir`). A missing folder is an error naming it, never a download.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from components.weights import require

DEFAULT_PROMPT = ("Describe this video in detail: the main subjects, their appearance and actions, the background "
                  "and the camera motion. Describe the whole clip as one scene; do not describe frames one by one.")


class CaptionerConfig(BaseModel):
    """Where the video LLM's weights are and how it is prompted and batched."""

    model_config = ConfigDict(extra="forbid")
    weights: str = "pllava-13b"  # name in configs/<weights_profile>/weights.yaml (a folder in the store)
    weights_profile: str = "full"
    model_dir: str | None = None  # an explicit model folder (skips the weights list)
    processor_dir: str | None = None  # default: the model folder
    num_frames: int = Field(4, ge=1)  # Open-Sora: 4 frames per clip
    short_side: int = Field(336, ge=0)  # CLIP-L/336 input of LLaVA-style models; 0 = native
    batch_size: int = Field(4, ge=1)  # clips per generate() call
    prompt: str = DEFAULT_PROMPT
    max_new_tokens: int = Field(256, ge=1)
    device: str = "cuda"
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"


def model_folder(cfg: CaptionerConfig) -> Path:
    """The local model folder; FileNotFoundError naming the folder and how to provide it."""
    if cfg.model_dir:
        folder = Path(cfg.model_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"captioner model folder {folder} does not exist; put the checkpoint there "
                                    f"(config.json, weights, processor files) or fix caption.captioner.model_dir")
        return folder
    folder = Path(require(cfg.weights_profile, [cfg.weights])[cfg.weights])
    if not folder.is_dir():
        raise FileNotFoundError(f"captioner weights {cfg.weights!r} at {folder} is not a model folder "
                                f"(expected config.json and weights inside)")
    return folder


class VideoCaptioner:
    """Captions clips from a few frames each with a local image-text-to-text model."""

    def __init__(self, cfg: CaptionerConfig):
        self.cfg = cfg
        self.folder = model_folder(cfg)  # before importing transformers: a missing folder fails in milliseconds
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(cfg.processor_dir or self.folder, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(
            self.folder, local_files_only=True, dtype=getattr(torch, cfg.dtype)).to(cfg.device).eval()

    def provenance(self) -> dict[str, str]:
        return {"captioner": "video-llm", "model": str(self.folder), "weights": self.cfg.weights,
                "frames": str(self.cfg.num_frames), "prompt": self.cfg.prompt}

    def _messages(self, n_frames: int) -> list[dict]:
        content = [{"type": "image"} for _ in range(n_frames)] + [{"type": "text", "text": self.cfg.prompt}]
        return [{"role": "user", "content": content}]

    def caption(self, clips: list[np.ndarray]) -> list[str]:
        """One caption per clip, from its frames (T, H, W, 3) uint8 RGB; batched batch_size clips per call."""
        import torch
        from PIL import Image

        out: list[str] = []
        for lo in range(0, len(clips), self.cfg.batch_size):
            batch = clips[lo:lo + self.cfg.batch_size]
            prompts = [self.processor.apply_chat_template(self._messages(len(f)), add_generation_prompt=True)
                       for f in batch]
            images = [[Image.fromarray(frame) for frame in frames] for frames in batch]
            inputs = self.processor(text=prompts, images=images, padding=True, return_tensors="pt")
            inputs = inputs.to(self.cfg.device)
            with torch.inference_mode():
                generated = self.model.generate(**inputs, max_new_tokens=self.cfg.max_new_tokens, do_sample=False)
            # generate() returns prompt + answer; keep the answer only
            answers = generated[:, inputs["input_ids"].shape[1]:]
            out += [t.strip() for t in self.processor.batch_decode(answers, skip_special_tokens=True)]
        return out
