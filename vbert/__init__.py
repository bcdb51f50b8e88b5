"""vbert: domain-adapted BERT from raw text to CPU serving, as one DVC pipeline."""

import os

# TensorFlow's C++ INFO and WARNING lines off unless the environment asks for them: set here, before any module
# imports TensorFlow, and inherited by worker processes (the few lines it prints before its logging starts, the oneDNN
# and CUDA notices, ignore the setting)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
