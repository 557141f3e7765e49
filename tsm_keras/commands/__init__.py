"""The command-line programs, one module each, with `main(argv=None)`: fit, evaluate and prepare
(training), convert, benchmark, stream and serve (TFLite), port (PyTorch checkpoints).

Each parses its arguments, calls the library and prints; `python training/fit.py` and the
other scripts in training/ and tflite/ run them from a checkout.
"""
