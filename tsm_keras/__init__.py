"""tsm-keras: Temporal Shift Module video models for Keras 3 and TFLite."""

__version__ = "0.1.0"
