"""Map a PixArt-α/Σ image checkpoint onto STDiT: the original .pth layout or diffusers' PixArtTransformer2DModel.

Pure functions on state dicts. PixArt's blocks become STDiT's spatial blocks; embedders and the final layer map
one to one (diffusers' split q/k/v are fused back). Modules PixArt lacks (temporal blocks, fps embedder,
QK-norm) keep the target's initialisation and are listed in the report. Any source key not known here and any
target key that nothing fills is an error naming the key: a silent partial load would train a broken model.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import torch

PIXART = "pixart"
DIFFUSERS = "diffusers"
Y_EMBEDDING = "y_embedder.y_embedding"
PATCH_WEIGHT = "x_embedder.proj.weight"
MAX_LISTED = 60  # problems spelled out in one error; an XL checkpoint against the wrong size has hundreds

_W = r"(weight|bias)"
_BLOCK_PARTS = r"(attn\.qkv|attn\.proj|cross_attn\.q_linear|cross_attn\.kv_linear|cross_attn\.proj|mlp\.fc1|mlp\.fc2)"

# (source key regex, target key template, slot, slots): slots > 1 fuses several source tensors along dim 0.
_PIXART_RULES: list[tuple[str, str, int, int]] = [
    (rf"x_embedder\.proj\.{_W}", r"x_embedder.proj.\1", 0, 1),
    (rf"t_embedder\.mlp\.([02])\.{_W}", r"t_embedder.mlp.\1.\2", 0, 1),
    (rf"t_block\.1\.{_W}", r"t_block.1.\1", 0, 1),
    (rf"y_embedder\.y_proj\.(fc[12])\.{_W}", r"y_embedder.y_proj.\1.\2", 0, 1),
    (r"y_embedder\.y_embedding", Y_EMBEDDING, 0, 1),
    (rf"blocks\.(\d+)\.{_BLOCK_PARTS}\.{_W}", r"spatial_blocks.\1.\2.\3", 0, 1),
    (r"blocks\.(\d+)\.scale_shift_table", r"spatial_blocks.\1.scale_shift_table", 0, 1),
    (rf"final_layer\.linear\.{_W}", r"final_layer.linear.\1", 0, 1),
    (r"final_layer\.scale_shift_table", r"final_layer.scale_shift_table", 0, 1),
]

_TB = r"transformer_blocks\.(\d+)"
_DIFFUSERS_RULES: list[tuple[str, str, int, int]] = [
    (rf"pos_embed\.proj\.{_W}", r"x_embedder.proj.\1", 0, 1),
    (rf"adaln_single\.emb\.timestep_embedder\.linear_1\.{_W}", r"t_embedder.mlp.0.\1", 0, 1),
    (rf"adaln_single\.emb\.timestep_embedder\.linear_2\.{_W}", r"t_embedder.mlp.2.\1", 0, 1),
    (rf"adaln_single\.linear\.{_W}", r"t_block.1.\1", 0, 1),
    (rf"caption_projection\.linear_1\.{_W}", r"y_embedder.y_proj.fc1.\1", 0, 1),
    (rf"caption_projection\.linear_2\.{_W}", r"y_embedder.y_proj.fc2.\1", 0, 1),
    (rf"{_TB}\.scale_shift_table", r"spatial_blocks.\1.scale_shift_table", 0, 1),
    (rf"{_TB}\.attn1\.to_q\.{_W}", r"spatial_blocks.\1.attn.qkv.\2", 0, 3),
    (rf"{_TB}\.attn1\.to_k\.{_W}", r"spatial_blocks.\1.attn.qkv.\2", 1, 3),
    (rf"{_TB}\.attn1\.to_v\.{_W}", r"spatial_blocks.\1.attn.qkv.\2", 2, 3),
    (rf"{_TB}\.attn1\.to_out\.0\.{_W}", r"spatial_blocks.\1.attn.proj.\2", 0, 1),
    (rf"{_TB}\.attn2\.to_q\.{_W}", r"spatial_blocks.\1.cross_attn.q_linear.\2", 0, 1),
    (rf"{_TB}\.attn2\.to_k\.{_W}", r"spatial_blocks.\1.cross_attn.kv_linear.\2", 0, 2),
    (rf"{_TB}\.attn2\.to_v\.{_W}", r"spatial_blocks.\1.cross_attn.kv_linear.\2", 1, 2),
    (rf"{_TB}\.attn2\.to_out\.0\.{_W}", r"spatial_blocks.\1.cross_attn.proj.\2", 0, 1),
    (rf"{_TB}\.ff\.net\.0\.proj\.{_W}", r"spatial_blocks.\1.mlp.fc1.\2", 0, 1),
    (rf"{_TB}\.ff\.net\.2\.{_W}", r"spatial_blocks.\1.mlp.fc2.\2", 0, 1),
    (rf"proj_out\.{_W}", r"final_layer.linear.\1", 0, 1),
    (r"scale_shift_table", r"final_layer.scale_shift_table", 0, 1),
]

_RULES = {PIXART: _PIXART_RULES, DIFFUSERS: _DIFFUSERS_RULES}

# Source keys that are known and deliberately not used.
_DROPPED = {
    r"pos_embed(\.pos_embed)?": "fixed 2D sin-cos table; STDiT recomputes it for each resolution (Open-Sora)",
}

# Source keys that are known but have no STDiT counterpart: converting would silently change the model.
_UNSUPPORTED = {
    r"(csize_embedder|ar_embedder|adaln_single\.emb\.(resolution|aspect_ratio)_embedder)\.": (
        "PixArt-α micro-conditions (resolution / aspect-ratio embedders); STDiT has no such input: convert a "
        "model trained without them (PixArt-Σ, PixArt-α 256/512)"
    ),
    r"\.attn1?\.([qk]_norm|norm_[qk])\.": (
        "PixArt-Σ's QK-norm is a LayerNorm with bias, STDiT's an RMSNorm (Open-Sora): not convertible; start "
        "from a checkpoint without QK-norm (recipe §5 adds it in stage 2)"
    ),
    r"\.attn1?\.(sr|norm)\.": "PixArt-Σ KV-token compression; STDiT attends over all tokens",
}

# Target keys PixArt has no counterpart for; STDiT initialises them (RECIPE §5: new modules start near a no-op).
NEW_MODULES: dict[str, str] = {
    r"^temporal_blocks\.": "temporal block: zero-initialised output projections, the identity at step 0",
    r"^fps_embedder\.": "fps embedder: zero-initialised last layer, adds nothing at step 0",
    r"\.attn\.[qk]_norm\.weight$": "QK-norm (recipe §5 stage 2): RMSNorm weight 1, changes the attention logits",
}


class ConversionError(ValueError):
    """A checkpoint that does not map onto the target STDiT; the message names every offending key."""


@dataclass
class ConversionReport:
    """What happened to every key: mapped, kept at its init, dropped on purpose, or adapted."""

    source_format: str
    mapped: dict[str, list[str]] = field(default_factory=dict)  # target key -> the source keys it came from
    kept_init: dict[str, str] = field(default_factory=dict)  # target key -> why it keeps the target's init
    dropped: dict[str, str] = field(default_factory=dict)  # source key -> why it is not used
    adapted: dict[str, str] = field(default_factory=dict)  # target key -> what changed on the way

    def summary(self) -> dict[str, int]:
        """Counts per category, for MLflow metrics."""
        return {
            "convert/mapped": len(self.mapped),
            "convert/kept_init": len(self.kept_init),
            "convert/dropped": len(self.dropped),
            "convert/adapted": len(self.adapted),
        }

    def to_dict(self) -> dict:
        """The whole report as plain data (logged as a JSON artifact)."""
        return asdict(self)


def unwrap_checkpoint(obj: Mapping) -> dict[str, torch.Tensor]:
    """The flat state dict inside a saved checkpoint: PixArt's {"state_dict": ...}, DDP's "module." prefix."""
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
    if not isinstance(state, Mapping):
        raise ConversionError(f"checkpoint holds a {type(state).__name__}, not a state dict")
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ConversionError(f"checkpoint entry {key!r} is a {type(value).__name__}, not a tensor")
        out[key.removeprefix("module.")] = value
    return out


def detect_format(keys: list[str] | set[str]) -> str:
    """PIXART (blocks.N, t_block) or DIFFUSERS (transformer_blocks.N, adaln_single) from the key names."""
    if any(k.startswith("spatial_blocks.") for k in keys):
        raise ConversionError("this is already an STDiT state dict; load it with STDiT.load_state_dict")
    if any(k.startswith(("transformer_blocks.", "adaln_single.")) for k in keys):
        return DIFFUSERS
    if any(k.startswith(("blocks.", "t_block.")) for k in keys):
        return PIXART
    sample = sorted(keys)[:5]
    raise ConversionError(f"not a PixArt checkpoint (no blocks.N or transformer_blocks.N keys); first keys: {sample}")


def _match(rules: list[tuple[str, str, int, int]], key: str) -> tuple[str, int, int] | None:
    for pattern, template, slot, slots in rules:
        m = re.fullmatch(pattern, key)
        if m:
            return m.expand(template), slot, slots
    return None


def _reason(table: dict[str, str], key: str, full: bool) -> str | None:
    for pattern, reason in table.items():
        if (re.fullmatch if full else re.search)(pattern, key):
            return reason
    return None


def _fit(key: str, value: torch.Tensor, like: torch.Tensor, adapted: dict[str, str]) -> torch.Tensor:
    """Reshape what PixArt stores differently: the 2D patch conv and the null caption's token count."""
    if key == PATCH_WEIGHT and value.ndim == 4 and like.ndim == 5:
        value = value.unsqueeze(2)  # (D, C, ph, pw) → (D, C, 1, ph, pw): Conv2d as a Conv3d with a time axis of 1
    if key == Y_EMBEDDING and value.ndim == 2 and like.ndim == 2 and value.shape[1] == like.shape[1]:
        have, want = value.shape[0], like.shape[0]
        if have < want:  # Open-Sora's reparameter: repeat the last null token (PixArt-α 120 → 300 tokens)
            value = torch.cat([value, value[-1:].expand(want - have, -1)], dim=0)
            adapted[key] = f"null caption extended from {have} to {want} tokens by repeating the last one"
        elif have > want:
            value = value[:want]
            adapted[key] = f"null caption truncated from {have} to {want} tokens"
    return value


def convert_pixart(
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    null_caption: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """STDiT state dict built from a PixArt state dict `source` and the target's own `target` state dict.

    `target` (STDiT.state_dict()) gives the names, shapes, dtypes and the init of modules PixArt lacks. The
    result loads with `load_state_dict(strict=True)`. `null_caption` (L, C_text) fills y_embedder.y_embedding
    when the checkpoint has none (the diffusers format) and replaces it otherwise.
    """
    fmt = detect_format(set(source))
    report = ConversionReport(fmt)
    problems: list[str] = []
    parts: dict[str, dict[int, tuple[str, torch.Tensor]]] = {}
    slots_of: dict[str, int] = {}
    for key, value in source.items():
        hit = _match(_RULES[fmt], key)
        if hit is None:
            dropped = _reason(_DROPPED, key, full=True)
            if dropped:
                report.dropped[key] = dropped
            else:
                problems.append(f"{key}: {_reason(_UNSUPPORTED, key, full=False) or 'unknown key'}")
            continue
        name, slot, slots = hit
        if name not in target:
            problems.append(f"{key} → {name}: the target STDiT has no such parameter (fewer blocks?)")
            continue
        parts.setdefault(name, {})[slot] = (key, value)
        slots_of[name] = slots

    out: dict[str, torch.Tensor] = {}
    for name, got in parts.items():
        absent = sorted(set(range(slots_of[name])) - set(got))
        if absent:
            have = [got[i][0] for i in sorted(got)]
            problems.append(f"{name}: fused from {slots_of[name]} source tensors, only {have} present")
            continue
        tensors = [got[i][1] for i in range(slots_of[name])]
        value = tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=0)  # [q; k; v] or [k; v] rows
        value = _fit(name, value, target[name], report.adapted)
        if tuple(value.shape) != tuple(target[name].shape):
            problems.append(
                f"{name} (from {[got[i][0] for i in range(slots_of[name])]}): shape {tuple(value.shape)} "
                f"does not match the target's {tuple(target[name].shape)}"
            )
            continue
        out[name] = value.to(dtype=target[name].dtype)
        report.mapped[name] = [got[i][0] for i in range(slots_of[name])]

    if null_caption is not None and Y_EMBEDDING in target:
        value = _fit(Y_EMBEDDING, null_caption, target[Y_EMBEDDING], report.adapted)
        if tuple(value.shape) != tuple(target[Y_EMBEDDING].shape):
            problems.append(f"null_caption: shape {tuple(null_caption.shape)}, target needs "
                            f"{tuple(target[Y_EMBEDDING].shape)}")
        else:
            out[Y_EMBEDDING] = value.to(dtype=target[Y_EMBEDDING].dtype)
            for source_key in report.mapped.pop(Y_EMBEDDING, []):
                report.dropped[source_key] = "replaced by the null_caption argument"
            report.adapted[Y_EMBEDDING] = "set from the null_caption argument"

    for name, value in target.items():
        if name in out:
            continue
        why = _reason(NEW_MODULES, name, full=False)
        if why:
            out[name] = value.detach().clone()
            report.kept_init[name] = why
        elif name == Y_EMBEDDING:
            problems.append(f"{name}: the {fmt} checkpoint has no null caption; pass null_caption "
                            "(TextEncoder.null_embedding(), the empty prompt diffusers pipelines use)")
        else:
            problems.append(f"{name}: no key of the {fmt} checkpoint maps to it")
    if problems:
        shown = problems[:MAX_LISTED]
        if len(problems) > MAX_LISTED:
            shown.append(f"... and {len(problems) - MAX_LISTED} more")
        raise ConversionError(f"cannot convert the {fmt} checkpoint into STDiT ({len(problems)} problems):\n  "
                              + "\n  ".join(shown))
    return out, report
