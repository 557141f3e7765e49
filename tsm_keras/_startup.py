"""Which CPU kernels TensorFlow runs in this process.

TensorFlow's Linux x86 builds carry Eigen's and oneDNN's, and read TF_ENABLE_ONEDNN_OPTS once,
when TensorFlow loads; without it they run oneDNN's only on CPUs with AVX-512 VNNI or BF16,
AVX-VNNI or AMX. The tsm-keras commands set it before TensorFlow loads
(tsm_keras_start.prepare_process); `import tsm_keras` leaves it as the program set it.
"""


def onednn_enabled():
    """Whether TensorFlow runs its oneDNN CPU kernels in this process (None: unknown)."""
    from tsm_keras._keras_private import tensorflow_runs_onednn

    return tensorflow_runs_onednn()
