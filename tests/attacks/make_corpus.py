"""Write every hostile-input case's input under DIR/<case>/ (to inspect or to run by hand):

    python tests/attacks/make_corpus.py /tmp/attacks [NAME-PREFIX ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attacks.corpus import load_cases, make_ctx, materialize  # noqa: E402


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[0]).resolve()
    ctx = make_ctx(root / "_ctx")
    for name, c in load_cases().items():
        if argv[1:] and not any(name.startswith(p) for p in argv[1:]):
            continue
        src = materialize(c, root / name.replace("/", "__"), ctx)
        print(f"{name}: {src}  ({c.doc})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
