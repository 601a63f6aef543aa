"""Shared helpers of the video-VAE tests: a one-thread fixture and a CPU peak-memory probe."""
from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convs run faster on one thread, and far faster than two when other jobs share the 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def peak_tensor_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes of CPU tensor memory held at once while fn() runs, above what was held before it.

    torch.profiler with profile_memory=True records every allocation and free of torch's CPU allocator with a
    timestamp; the running sum of those sizes is exact for tensor memory. tracemalloc cannot see it (it traces
    Python's allocator only), and ru_maxrss is a process-wide high-water mark that never goes down and mixes in
    imports and earlier tests. Not counted: scratch memory oneDNN allocates inside a conv without torch.
    """
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
