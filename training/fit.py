"""`python training/fit.py`: tsm-fit from a checkout (tsm_keras/commands/fit.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from tsm_keras_start import fit

if __name__ == "__main__":
    sys.exit(fit())
