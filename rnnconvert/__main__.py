"""`python -m rnnconvert`: the signals are handled from the first moment (files/interrupt.py), so a Ctrl-C while the
CLI's modules are still being imported ends the run like any other (one line, exit 130), not with a
KeyboardInterrupt traceback."""
import sys

from .files.interrupt import Interrupted, ignore_from_now, install, message

install()
try:
    from .cli import main
except Interrupted as exc:          # nothing has been written yet
    ignore_from_now()
    sys.stderr.write(message(exc) + "\n")
    sys.exit(exc.exit_code)
except BaseException:               # a broken installation: its traceback, and no held signal's timer after it
    ignore_from_now()
    raise

main()
