import os
import signal
import sys

from .cli import main

code = main()
try:
    # The work is over (written or refused, and said so): an interrupt now, during the
    # interpreter's teardown, must not turn that into death by SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
except (ValueError, OSError):
    pass
sys.exit(code)
