"""The bench stage: the paper's Table 3 on this machine, and past it.

measure  timing statistics, CPU utilisation, FLOPs, this machine's matrix-multiply ceilings
models   the models measured: the pipeline's own, and BERT-base size with random weights
runners  one request through one backend (naive, TF, OpenVINO, our server, TF-Serving): feed-forward, end-to-end
load     many clients for a fixed time: throughput, latency percentiles, errors
report   the markdown table, the metrics JSON, the plots, the targets

The whole bench, as the stage runs it, is `vbert.pipeline.bench`.
"""
