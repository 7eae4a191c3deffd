"""The commented starting ``pipeline.toml`` that ``pumpops pipeline init`` writes.

Installed with the package (the examples are not), and accepted by
``pumpops train --config`` as it is once its data folder holds SKAB-format
files. A test parses it with the pipeline's config loader and trains on it.
"""

from __future__ import annotations

import json

_TEMPLATE = """\
# A training pipeline for `pumpops train --config <this file>` (written by `pumpops pipeline init`).
# Every key is optional unless marked; unknown keys are an error. docs/pipeline.md has them all.
# Relative paths are relative to this file. The MLflow tracking URI is not set here: it is the
# workspace's (tracking_uri in pumpops.toml, $PUMPOPS_TRACKING_URI or --tracking-uri), so that
# `pumpops models list` shows what `pumpops train` registered.
seed = 0                                  # every random choice derives from it

[data]
# SKAB-format CSV files: each file is one recording; the first train_rows rows of each are
# normal operation (training and calibration), the labelled rest is the holdout.
source = "files"
paths = [{paths}]   # required: folders (searched for *.csv) or files
train_rows = 400                          # 0 = every row is training data
include_unlabelled = true                 # recordings without labels train and calibrate too
#
# Or the telemetry store of this workspace (after `pumpops simulate` and `pumpops ingest`):
# source = "store"
# group = "acme-ansi"                     # every registered device of this group
# since = 2025-06-01T00:00:00Z            # training range [since, until), UTC
# until = 2025-06-02T00:00:00Z

[data.hygiene]
exclude_labelled = true                   # rows labelled as faults never train
margin_s = 60                             # and neither do the seconds around them
# ground_truth = "truth.json"             # store source: the simulator's ground truth

[features]
resample_period_s = 1.0                   # the regular grid rows are resampled onto
max_gap_fill_s = 5.0                      # gaps up to this long are filled; longer ones split
min_segment_samples = 60
window_samples = 10                       # rows per window the detector sees

[detector]
kind = "pca_t2q"                          # or "isolation_forest", "mlp_autoencoder"

[detector.hyper]
variance = 0.9                            # PCA: share of the variance the model keeps

[threshold]
quantile = 0.99                           # each device's threshold: this quantile of its normal scores
factor = 2.0                              # ... times this

[smoothing]
k = 5                                     # an alarm needs k of the last n rows above threshold
n = 10
release_factor = 0.5                      # hysteresis: stays on while score > 0.5 x threshold
hold_samples = 30                         # off-delay: stays on 30 rows longer

[output]
experiment = "pumpops-training"           # the MLflow experiment
# model_dir = "model"                     # default: <workspace>/models/<group>-<digest>
"""


def pipeline_template(data_path: str) -> str:
    """The starting ``pipeline.toml``, training on the SKAB-format files under ``data_path``.

    >>> import tomllib
    >>> tomllib.loads(pipeline_template("data"))["data"]["paths"]
    ['data']
    """
    return _TEMPLATE.format(paths=json.dumps(data_path))
