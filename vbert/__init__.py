"""vbert: domain-adapted BERT from raw text to CPU serving, as one DVC pipeline."""
