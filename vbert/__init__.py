"""vbert: domain-adapted BERT from raw text to CPU serving, as one DVC pipeline."""

__version__ = "0.1.0"
