"""workflow_scripts.train_final with DeepSpeed's own log at INFO, for the GPU check: its lines
"Creating <dtype> ZeRO stage 2 optimizer" and "DeepSpeed Final Optimizer = ..." show that the engine
ran ZeRO-2. DeepSpeed logs only warnings by default, and the Trainer sets its level to transformers'
verbosity. Run as the training script of `accelerate launch --use_deepspeed -m`."""
import logging
import os
import runpy

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "info")  # read when transformers is first imported

from deepspeed.utils import logger  # noqa: E402

for handler in logger.handlers:  # created at WARNING: the Trainer sets only the logger's own level
    handler.setLevel(logging.INFO)
runpy.run_module("workflow_scripts.train_final", run_name="__main__", alter_sys=True)
