"""`python tflite/stream.py`: tsm-stream from a checkout (tsm_keras/commands/stream.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from tsm_keras_start import stream

if __name__ == "__main__":
    sys.exit(stream())
