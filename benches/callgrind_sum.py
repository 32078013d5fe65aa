#!/usr/bin/env python3
"""Sums callgrind output files (one per thread with --separate-threads=yes) per function.

usage: callgrind_sum.py [--per N] [--top K] [--calls NAME]... [--incl PATTERN]... FILE...

Prints, over all FILEs: the total instructions; the K functions with the most instructions of
their own (self) and, for each --incl PATTERN, the instructions of the functions whose name
contains it, calls included (inclusive; a function that calls itself is counted once per
level); and for each --calls NAME the number of calls made to functions named exactly NAME
(e.g. malloc); for each --callees PATTERN, what the functions whose name contains it call,
calls included. With --per N, every figure is also divided by N (deliveries).
"""

import argparse
import collections
import re
import sys


def parse(path, selfc, incl, calls, table):
    fn = cfn = None
    pending_call = False
    total = 0
    with open(path, errors="replace") as f:
        for line in f:
            if line[0].isdigit() or line[0] in "+-*":
                cost = int(line.split()[1]) if len(line.split()) > 1 else 0
                if pending_call:
                    incl[(fn, cfn)] += cost
                    pending_call = False
                else:
                    selfc[fn] += cost
                    total += cost
                continue
            m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if m:
                kind, ident, name = m.groups()
                if name is not None:
                    table[ident] = name
                if kind == "fn":
                    fn = table.get(ident, ident)
                else:
                    cfn = table.get(ident, ident)
                continue
            if line.startswith("calls="):
                calls[(fn, cfn)] += int(line[6:].split()[0])
                pending_call = True
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per", type=float, default=0)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--calls", action="append", default=[])
    ap.add_argument("--incl", action="append", default=[])
    ap.add_argument("--callees", action="append", default=[])
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    selfc, incl, calls = (collections.Counter() for _ in range(3))
    # fn and cfn share one table of compressed names, and so do the files of one run.
    table = {}
    total = sum(parse(p, selfc, incl, calls, table) for p in a.files)

    def show(label, value):
        per = f"  {value / a.per:12.1f} /delivery" if a.per else ""
        print(f"{value:14,d}{per}  {label}")

    show("total instructions", total)
    print("-- self, top", a.top)
    for name, v in selfc.most_common(a.top):
        show(name, v)
    for pat in a.incl:
        print(f"-- inclusive, functions containing {pat!r}")
        fns = {f for f in selfc if pat in (f or "")}
        for f in sorted(fns, key=lambda f: -selfc[f]):
            # Calls from f to f (recursion) are not added again.
            v = selfc[f] + sum(c for (caller, callee), c in incl.items()
                               if caller == f and callee != f)
            show(f, v)
    for pat in a.callees:
        print(f"-- what functions containing {pat!r} call: instructions (calls)")
        got = collections.Counter()
        ncalls = collections.Counter()
        for (caller, callee), c in incl.items():
            if pat in (caller or "") and callee != caller:
                got[callee] += c
                ncalls[callee] += calls[(caller, callee)]
        for callee, v in got.most_common(a.top):
            show(f"{callee} ({ncalls[callee]:,d} calls)", v)
    for name in a.calls:
        n = sum(c for (caller, callee), c in calls.items() if callee == name)
        show(f"calls to {name}", n)


if __name__ == "__main__":
    sys.exit(main())
