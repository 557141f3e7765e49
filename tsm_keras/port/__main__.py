"""`python -m tsm_keras.port`: tsm-port (tsm_keras/commands/port.py).

`python -m` imports tsm_keras, and with it TensorFlow, before this runs: TensorFlow keeps its
own CPU kernels and start-up lines here, where tsm-port chooses them first (tsm_keras_start.py).
"""

import sys

from tsm_keras.commands.port import main

if __name__ == "__main__":
    sys.exit(main())
