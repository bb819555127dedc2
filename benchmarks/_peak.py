"""The peak resident memory of this process, for benchmarks that run each size in a
child process.

`getrusage(RUSAGE_SELF).ru_maxrss` survives `exec` on Linux: a child started by a
parent that already held 1.5 GiB reports at least 1.5 GiB, whatever it uses itself.
`VmHWM` in `/proc/self/status` belongs to the process's own address space, which
`exec` replaces, so it is the child's own peak. Elsewhere `ru_maxrss` is the fallback
(kilobytes on Linux, bytes on macOS).
"""

import resource
import sys


def peak_rss_mib() -> float:
    """Peak resident memory of this process since its `exec`, in MiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
