"""The model: BERT and its heads (one file), checkpoint-name translation and weight loading, optimisation, training
checkpoints, distribution strategies, and the exported serving format."""
