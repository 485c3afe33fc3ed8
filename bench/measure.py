"""Run one command (or a `|` pipeline of them) and print its wall time and peak RSS as JSON.

A separate, stdlib-only process: a child's peak RSS counts the pages it shared with its
parent before exec, so measuring from the (large) benchmark process would inflate it.

    python bench/measure.py CMD ARG ... ['|' CMD ARG ...]

Each process's stderr is kept; lines `irconv-stages {json}` (IRCONV_STAGES=1, ir/stages.py)
are returned as "stages", one map per irconv process, and the rest as "stderr".
"""
import json
import os
import subprocess
import sys
import tempfile
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
    procs, prev, errs = [], None, []
    for n, cmd in enumerate(stages):
        last = n == len(stages) - 1
        errs.append(tempfile.TemporaryFile())
        p = subprocess.Popen(cmd, stdin=prev, stdout=subprocess.DEVNULL if last else subprocess.PIPE,
                             stderr=errs[-1])
        if prev is not None:
            prev.close()
        prev = p.stdout
        procs.append(p)
    rss, cpu, failed = 0, 0.0, False
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        failed |= status != 0
        rss = max(rss, usage.ru_maxrss * 1024)
        cpu += usage.ru_utime + usage.ru_stime
    wall = time.perf_counter() - start
    found, other = [], []
    for f in errs:
        f.seek(0)
        for line in f.read().decode(errors="replace").splitlines():
            if line.startswith("irconv-stages "):
                found.append(json.loads(line.split(" ", 1)[1]))
            elif line.strip():
                other.append(line)
    print(json.dumps({"wall": wall, "cpu": cpu, "rss": rss, "ok": not failed, "stages": found, "stderr": other[-5:]}))


if __name__ == "__main__":
    main(sys.argv[1:])
