"""Pretraining data: masked-LM + next-sentence instances (Google's algorithm), masking, the TFRecord format and its
features."""
