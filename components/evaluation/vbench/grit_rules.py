"""VBench's rules on GRiT detections, as pure functions of what GRiT found in each of a video's 16 frames.

  object_class (object_class.py)        a frame succeeds when the prompt's `object` is one of the frame's
                                        detected object names (exact string match); score = successful frames /
                                        all frames, pooled over every video
  multiple_objects (multiple_objects.py) the `object` "A and B" is split at ' and '; both names must be detected
                                        in the frame; pooled like object_class
  color (color.py)                      dense captions; the object is the prompt without 'a ', 'an ' and the
                                        colour word; a frame counts when the frame's FIRST detected object name
                                        equals it and one of its captions contains any of 12 colour words (a
                                        substring test); it succeeds when a caption contains the asked colour;
                                        per video successes / counted frames, videos without counted frames are
                                        left out; score = mean over the videos left
  spatial_relationship (spatial_relationship.py) every pair of boxes named `object_a` or `object_b` (two boxes of
                                        the same name pair too) is scored by the relation's axis only: 1 when
                                        the centres are further apart along it than across it and IoU < 0.1,
                                        0.1 / IoU when they overlap more, else 0; a frame scores its best pair
                                        (0 without one); score = mean over all frames of all videos
Boxes are VBench's integer boxes (x0, y0, x1, y1: GRiT's float boxes truncated by int()).
"""
from __future__ import annotations

from typing import Any

# color.py's list, in its order ("gray" and "grey" both)
COLOR_WORDS = ("white", "red", "pink", "blue", "silver", "purple", "orange", "green", "gray", "yellow", "black",
               "grey")
IOU_THRESHOLD = 0.1  # spatial_relationship.get_position_score
HORIZONTAL, VERTICAL = ("on the right of", "on the left of"), ("on the bottom of", "on the top of")


def frames_with_object(frame_names: list[set[str]], name: str) -> int:
    """object_class: frames whose detected names include `name`."""
    return sum(name in names for names in frame_names)


def object_pair(objects: str, source: str) -> tuple[str, str]:
    """multiple_objects' 'A and B' → (A, B), stripped; the error names the prompt when it is not two objects."""
    parts = objects.split(" and ")
    if len(parts) != 2:
        raise ValueError(f"{source}: multiple_objects needs 'A and B', got object {objects!r}")
    return parts[0].strip(), parts[1].strip()


def frames_with_both(frame_names: list[set[str]], pair: tuple[str, str]) -> int:
    """multiple_objects: frames whose detected names include both objects."""
    return sum(pair[0] in names and pair[1] in names for names in frame_names)


def color_object(prompt: str, color: str) -> str:
    """color.py's object of a prompt: every 'a ' and 'an ' and the colour word removed, then stripped."""
    return prompt.replace("a ", "").replace("an ", "").replace(color, "").strip()


def color_counts(frames: list[list[tuple[str, str]]], color: str, obj: str) -> tuple[int, int]:
    """color: (frames that count, frames with the colour) from (caption, first object name) pairs per frame."""
    counted = colored = 0
    for pairs in frames:
        object_flag = color_flag = False
        for caption, first_name in pairs:
            if first_name == obj:
                object_flag |= any(word in caption for word in COLOR_WORDS)
                color_flag |= color in caption
        counted += object_flag
        colored += color_flag
    return counted, colored


def iou(a: list[int], b: list[int]) -> float:
    """IoU of two integer boxes (0 when both are empty: VBench would divide by zero)."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def position_score(relation: str, a: list[int], b: list[int], iou_threshold: float = IOU_THRESHOLD) -> float:
    """get_position_score: does the pair lie along the relation's axis, and how little do the boxes overlap."""
    dx = (b[0] + b[2]) / 2 - (a[0] + a[2]) / 2
    dy = (b[1] + b[3]) / 2 - (a[1] + a[3]) / 2
    overlap = iou(a, b)
    # VBench tests `relation in 'on the left of'`: a substring of the phrase, not equality
    if any(relation in phrase for phrase in HORIZONTAL):
        along = abs(dx) > abs(dy)
    elif any(relation in phrase for phrase in VERTICAL):
        along = abs(dy) > abs(dx)
    else:
        return 0.0
    if not along:
        return 0.0
    return 1.0 if overlap < iou_threshold else iou_threshold / overlap


def spatial_frame_scores(frames: list[list[tuple[str, list[int]]]], info: dict[str, Any]) -> list[float]:
    """spatial_relationship: each frame's best pair score from its (object name, box) detections."""
    names = (info["object_a"], info["object_b"])
    scores = []
    for detections in frames:
        boxes = [box for name, box in detections if name in names]
        best = 0.0
        for i in range(len(boxes) - 1):
            for j in range(i + 1, len(boxes)):
                best = max(best, position_score(info["relationship"], boxes[i], boxes[j]))
        scores.append(best)
    return scores
