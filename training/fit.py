"""`python training/fit.py`: tsm-fit from a checkout (tsm_keras/commands/fit.py)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tsm_keras.commands.fit import main

if __name__ == "__main__":
    sys.exit(main())
