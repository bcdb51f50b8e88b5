"""CPU serving: TF-Serving's REST API over OpenVINO IR or a TF SavedModel, with dynamic batching."""
