"""Reading the official PyTorch TSM checkpoints into Keras models (`python -m tsm_keras.port`)."""

from tsm_keras.port.checkpoint import Checkpoint, PortError, name_hints, parse_run_name, read_checkpoint
from tsm_keras.port.layout import read_layout
from tsm_keras.port.mapping import assign_weights, weight_targets
from tsm_keras.port.porting import Ported, port_checkpoint, port_state_dict, shift_states
from tsm_keras.port.run_dir import read_labels, write_run_dir
