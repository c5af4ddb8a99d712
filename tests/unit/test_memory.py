import gc
import platform
import resource
from pathlib import Path

from poller.memory import release_freed_memory


def rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def test_freed_heap_goes_back_to_the_os_after_a_trim() -> None:
    assert platform.libc_ver()[0] == "glibc", "exmeta's supported hosts and CI run glibc"
    # Many small objects, as a parsed exchangeInfo document is: they live in malloc's
    # arenas, not in separate mappings that free() would unmap by itself.
    blob = [
        {"filterType": "LOT_SIZE", "minQty": str(i), "stepSize": str(i * 2)} for i in range(600_000)
    ]
    peak = rss_bytes()
    del blob
    gc.collect()
    kept = rss_bytes()
    assert release_freed_memory() is True
    trimmed = rss_bytes()
    assert peak - trimmed > 50 * 1024 * 1024
    assert trimmed < kept
