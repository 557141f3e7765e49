"""`python tflite/convert.py`: tsm-convert from a checkout (tsm_keras/commands/convert.py)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tsm_keras.commands.convert import main

if __name__ == "__main__":
    sys.exit(main())
