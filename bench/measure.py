"""Run one command (or a `|` pipeline of them) and print its wall time and peak RSS as JSON.

A separate, stdlib-only process: a child's peak RSS counts the pages it shared with its
parent before exec, so measuring from the (large) benchmark process would inflate it.

    python bench/measure.py CMD ARG ... ['|' CMD ARG ...]
"""
import json
import os
import subprocess
import sys
import time


def main(argv: list[str]) -> None:
    stages, current = [], []
    for arg in argv:
        if arg == "|":
            stages.append(current)
            current = []
        else:
            current.append(arg)
    stages.append(current)
    start = time.perf_counter()
    procs, prev = [], None
    for n, cmd in enumerate(stages):
        last = n == len(stages) - 1
        p = subprocess.Popen(cmd, stdin=prev, stdout=subprocess.DEVNULL if last else subprocess.PIPE)
        if prev is not None:
            prev.close()
        prev = p.stdout
        procs.append(p)
    rss, failed = 0, False
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        failed |= status != 0
        rss = max(rss, usage.ru_maxrss * 1024)
    wall = time.perf_counter() - start
    print(json.dumps({"wall": wall, "rss": rss, "ok": not failed}))


if __name__ == "__main__":
    main(sys.argv[1:])
