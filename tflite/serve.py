"""`python tflite/serve.py`: tsm-serve from a checkout (tsm_keras/commands/serve.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from tsm_keras_start import serve

if __name__ == "__main__":
    sys.exit(serve())
