#!/usr/bin/env python3
"""Syscalls per delivery by thread group, from `strace -f -qq -o FILE` (no -c).

usage: strace_threads.py FILE N

Threads are grouped by what they do: the first thread seen is `main`; threads that call
sendto are the senders (workers or raw POST threads); threads that write or lock the
database (pwrite64, fcntl, fsync) are listed one by one (the scanner and the checkpoint
thread); the rest are `other`. Prints each group's calls per delivery (divided by N), the
most frequent syscalls, and the futex operations.
"""

import collections
import re
import sys


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    calls = collections.defaultdict(collections.Counter)
    futex = collections.defaultdict(collections.Counter)
    for line in open(path, errors="replace"):
        parts = line.split(None, 2)
        # "<... x resumed>" lines finish a call already counted at its start.
        if len(parts) < 2 or parts[1] == "<...":
            continue
        m = re.match(r"(\w+)\(", parts[1])
        if not m:
            continue
        tid, name = parts[0], m.group(1)
        calls[tid][name] += 1
        if name == "futex":
            op = re.search(r"FUTEX_\w+", line)
            futex[tid][op.group(0) if op else "?"] += 1
    first = min(calls, key=int)
    groups = collections.defaultdict(collections.Counter)
    gfutex = collections.defaultdict(collections.Counter)
    threads = collections.Counter()
    for tid, c in calls.items():
        if tid == first:
            g = "main"
        elif c["sendto"]:
            g = "senders"
        elif c["pwrite64"] or c["fcntl"] or c["fsync"]:
            g = f"store-writing thread {tid}"
        else:
            g = "other"
        groups[g] += c
        gfutex[g] += futex[tid]
        threads[g] += 1
    for g, c in sorted(groups.items()):
        top = ", ".join(f"{s} {v / n:.3f}" for s, v in c.most_common(8))
        print(f"{g} ({threads[g]} threads): {sum(c.values()) / n:.2f} a delivery: {top}")
        if gfutex[g]:
            ops = ", ".join(f"{s} {v / n:.3f}" for s, v in gfutex[g].most_common())
            print(f"    futex: {ops}")


if __name__ == "__main__":
    main()
