"""Peak tensor memory of one call, measured the same way for every model on a device (CPU or CUDA)."""
from __future__ import annotations

from typing import Callable

import torch


def peak_cpu_tensor_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes of CPU tensor memory held at once while fn() runs, above what was held before it.

    torch.profiler with profile_memory=True records every allocation and
    free of torch's CPU allocator (frees as negative sizes); their running sum is exact for tensor memory.
    tracemalloc cannot see torch's allocator and ru_maxrss never goes down. Not counted: scratch memory oneDNN
    allocates inside a kernel without torch.
    """
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    sizes: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            sizes.append((node.start_time_ns, node.extra_fields.alloc_size))
        stack.extend(node.children)
    held = peak = 0
    for _, size in sorted(sizes):
        held += size
        peak = max(peak, held)
    return peak


def peak_cuda_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated on a CUDA device while fn() runs, above what was allocated before it."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak tensor bytes of fn() above the baseline, by the allocator events (CPU) or CUDA's peak counter."""
    return peak_cuda_bytes(fn, device) if device.type == "cuda" else peak_cpu_tensor_bytes(fn)
