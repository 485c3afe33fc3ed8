import os
import signal
import sys

from .cli import main

code = main()
if code == 130:
    # Interrupted, said so, and the output removed: end now. The teardown would wait for
    # threads the interrupt may have left mid-job, and CPython ends a process whose
    # KeyboardInterrupt passed through a C extension's start-up by SIGINT, not by this code.
    sys.stderr.flush()
    os._exit(130)
try:
    # The work is over (written or refused, and said so): an interrupt now, during the
    # interpreter's teardown, must not turn that into death by SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
except (ValueError, OSError):
    pass
sys.exit(code)
