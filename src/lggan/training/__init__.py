"""Training: `train(cfg, out_dir)` builds a run and trains it; the parts, for benchmarks and tools that drive
iterations themselves.

    data.py      the training split as a sharded, seeded, resumable batch stream
    steps.py     the lr schedules, the D and G steps (Eq. 8-9), their orders, one iteration
    run.py       TrainRun, built once by build_run; the run folder; save / restore
    log.py       the JSONL/TensorBoard log
    report.py    config.json, run_info.json, the banner, the progress bar or lines
    evaluator.py the segmenter scores of train.eval_every
    loop.py      train(): the loop

Single process: `lggan train ...`. Several processes/GPUs/nodes: `torchrun --nproc_per_node N -m lggan train ...`
(DistributedDataParallel, one DistributedSampler shard per rank, synchronised BatchNorm in SPADE on GPUs; rank 0
alone holds the run folder's lock and writes logs, samples and checkpoints).
"""

from .data import DataLoadError, TrainData
from .loop import StopFlag, TrainResult, evaluate_now, finish, train, write_samples
from .log import RunLog
from .report import announce, banner_lines, generator_parameter_counts, parameter_count
from .run import RUN_MARKER, TrainRun, build_run, build_vgg, channels_last_inputs, close_run, restore, save
from .steps import STEP_ORDERS, LoopStats, d_step, g_step, learning_rate, lr_factor, train_iteration

__all__ = [
    "RUN_MARKER", "STEP_ORDERS", "DataLoadError", "LoopStats", "RunLog", "StopFlag", "TrainData", "TrainResult",
    "TrainRun", "announce", "banner_lines", "build_run", "build_vgg", "channels_last_inputs", "close_run", "d_step",
    "evaluate_now", "finish", "g_step", "generator_parameter_counts", "learning_rate", "lr_factor",
    "parameter_count", "restore", "save", "train", "train_iteration", "write_samples",
]
