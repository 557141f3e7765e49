"""`python -m tsm_keras.port`: tsm-port (tsm_keras/commands/port.py)."""

import sys

from tsm_keras.commands.port import main

if __name__ == "__main__":
    sys.exit(main())
