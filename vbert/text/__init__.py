"""Text in, token ids out: the corpus format, spelling fixes, Google's tokenizer, the vocabulary variants, labelled
tasks, and the one encoder that turns texts into model inputs."""
