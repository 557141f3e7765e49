"""TFLite export: the clip model and the two streaming models, calibration, checks, report.

    from tsm_keras.export import convert_run
    convert_run("runs/my-run", ["float32", "int8"], calibration_clips=clips, validation=pairs)

See docs/tflite.md.
"""

from tsm_keras.export.kinds import CLIP, FLOAT16, FLOAT32, INT8, KINDS, PRECISIONS, STREAM, STREAM_STATE, file_name
from tsm_keras.export.pipeline import Int8AccuracyError, convert_run
from tsm_keras.export.runtime import ClipRunner, ModelKindError, StreamRunner, open_model
from tsm_keras.export.tflite import convert
from tsm_keras.export.variables import with_resource_variables
from tsm_keras.export.verify import VerificationError
