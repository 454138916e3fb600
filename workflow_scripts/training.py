"""LoRA training with the Forgetting objective on `transformers.Trainer`; used by every training rule.

Every method trains with the same optimiser, schedule, steps and data order for a seed; what
differs is the objective and the per-token columns that travel with each batch:
- sft / the reference model: every response token positive, no negatives;
- ignore: the partition's positive tokens only (negatives dropped);
- forget: positives learnt, negatives forgotten with weight lambda(step) (npo: against the base
  model's own token losses, a `base_loss` column);
- random: forget with a random partition of the same size (control for the influence score);
- rho1: CE on the batch's top-rho tokens by excess loss over the reference model (Rho-1).
The columns are built once, vectorised, from the partition or loss Parquet, and are padded with
the batch like the labels.

Life on a cluster: `--report-to` sends the per-step log to TensorBoard, W&B or MLflow through the
trainer's own integrations (the run named by its label, grouped by experiment, local files under
`--tracker-dir`); SLURM's warning before the time limit (SIGUSR1, which the SLURM profile asks
for) or a SIGTERM makes the job save the trainer state at the end of the step in progress and exit
with RESUMABLE_EXIT, so that Snakemake's retry resumes from that checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from workflow_scripts import provenance
from workflow_scripts.files import InputError, atomic_path, setup_logging, write_json
from workflow_scripts.objective import Objective, forgetting_loss_at, next_token_positions, selective_loss_at
from workflow_scripts.modeling import load_causal_lm, pad_batch
from workflow_scripts.runs import FORGET_FAMILY, FORGET_LOSSES, LAMBDA_SCHEDULES, NPO
from workflow_scripts.token_table import IGNORE_INDEX, token_column, token_masks

log = setup_logging("training")

RESUMABLE_EXIT = 75  # EX_TEMPFAIL: stopped on a signal with its state saved; a rerun resumes
TRACKERS = ("none", "tensorboard", "wandb", "mlflow")


@dataclass(frozen=True)
class TrainConfig:
    """The `training:` section of the config, plus the run's seed and dtype: no defaults here
    (the schema's are the only ones, and the rules pass every field). Below them, the settings
    the config does not expose, with their fixed values."""
    lora_r: int
    lora_alpha: float
    lora_dropout: float
    lora_target_modules: str
    learning_rate: float
    lr_scheduler: str
    warmup_ratio: float
    epochs: float
    batch_size: int
    gradient_accumulation_steps: int
    save_steps: str  # checkpoint the trainer state every N steps (0: never; auto: see save_interval)
    report_to: str  # none | tensorboard | wandb | mlflow
    shuffle: bool  # the trainer's seeded shuffle (else the file's order, as the authors trained)
    bf16: bool  # mixed precision (autocast); `dtype` is the dtype the weights are loaded in
    gradient_checkpointing: bool
    seed: int
    dtype: str
    max_grad_norm: float | None = None  # clip the gradient norm at this value; None (no option): never (the authors)
    weight_decay: float = 0.0
    logging_steps: int = 1
    deepspeed: str = ""  # a DeepSpeed config file, for multi-GPU jobs under `accelerate launch`


class TokenDataset(torch.utils.data.Dataset):
    """Examples as slices of flat numpy arrays: input_ids, labels, positive, negative and, for
    rho1, reference_loss; for npo, base_loss."""

    def __init__(self, tokens: pa.Table, partition: pa.Table | None, method: str,
                 reference_losses: pa.Table | None = None, base_losses: pa.Table | None = None):
        positive, negative = token_masks(tokens, partition)
        if method not in FORGET_FAMILY:
            negative = pa.ListArray.from_arrays(negative.offsets, pa.array(np.zeros(len(negative.values), bool)))
        columns = {"input_ids": tokens["input_ids"].combine_chunks(), "labels": tokens["labels"].combine_chunks(),
                   "positive": positive, "negative": negative}
        if reference_losses is not None:
            columns["reference_loss"] = token_column(tokens, reference_losses, "loss", "reference losses", fill=0.0)
        if base_losses is not None:
            columns["base_loss"] = token_column(tokens, base_losses, "loss", "base losses", fill=0.0)
        offsets = columns["input_ids"].offsets.to_numpy()
        self.offsets = offsets - offsets[0]
        self.columns = {name: np.asarray(array.flatten().to_numpy(zero_copy_only=False))
                        for name, array in columns.items()}

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, i):
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return {name: values[lo:hi] for name, values in self.columns.items()}


class MaskCollator:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows):
        columns = {"labels": IGNORE_INDEX, "positive": 0, "negative": 0}
        for name in ("reference_loss", "base_loss"):  # float columns: padded with 0.0, never selected
            if name in rows[0]:
                columns[name] = 0.0
        batch = pad_batch(rows, self.pad_id, columns)
        batch["positive"], batch["negative"] = batch["positive"].bool(), batch["negative"].bool()
        return batch


class StopOnSignal(TrainerCallback):
    """On SIGUSR1 or SIGTERM: save the trainer state at the end of the step in progress and stop."""

    SIGNALS = (signal.SIGUSR1, signal.SIGTERM)

    def __init__(self):
        self.received = None
        for sig in self.SIGNALS:
            signal.signal(sig, self._note)

    def _note(self, signum, frame):
        self.received = signal.Signals(signum).name
        log.warning("received %s: saving a checkpoint at the end of this step, then stopping", self.received)

    def on_step_end(self, args, state, control, **kwargs):
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True
        return control


class ForgettingTrainer(Trainer):
    """Trainer whose loss is the Forgetting objective, with logits only where a loss is taken."""

    def __init__(self, *args, objective: Objective, **kwargs):
        super().__init__(*args, **kwargs)
        self.objective = objective
        self.model_accepts_loss_kwargs = False  # our loss is a per-micro-batch mean: let Trainer scale it
        self._stats: list[dict] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        positions = next_token_positions(labels)
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                        logits_to_keep=positions)
        if self.objective.selective:
            loss, stats = selective_loss_at(outputs.logits, positions, labels, inputs["positive"],
                                            inputs["reference_loss"], self.objective.keep)
        else:
            lam = self.objective.lam(self.state.global_step, self.state.max_steps)
            loss, stats = forgetting_loss_at(outputs.logits, positions, labels, inputs["positive"],
                                             inputs["negative"], lam, self.objective.forget_loss,
                                             beta=self.objective.beta, base_loss=inputs.get("base_loss"))
        self._stats.append(stats)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs, start_time=None):
        if self._stats and "loss" in logs:
            for key in ("positive_ce", "negative_ce", "lambda"):
                logs[key] = float(np.mean([s[key] for s in self._stats]))
            if "negative_term" in self._stats[0]:  # only the objectives with a forget term have one
                logs["negative_term"] = float(np.mean([s["negative_term"] for s in self._stats]))
            for key in ("n_positive", "n_negative"):
                logs[key] = int(sum(s[key] for s in self._stats))
            self._stats = []
        super().log(logs, start_time)


def option_types(config_class=TrainConfig) -> dict[str, type]:
    """field -> the type its command-line option reads: the type the dataclass declares, and for
    `float | None` (an option that may be left out) the float."""
    import types
    import typing

    out = {}
    for name, declared in typing.get_type_hints(config_class).items():  # the annotations are strings (__future__)
        if isinstance(declared, types.UnionType) or typing.get_origin(declared) is typing.Union:
            kinds = [kind for kind in typing.get_args(declared) if kind is not type(None)]
            declared = kinds[0] if len(kinds) == 1 else declared
        if declared not in (bool, int, float, str):
            raise TypeError(f"{config_class.__name__}.{name}: {declared} is not a type a command-line option reads "
                            "(bool, int, float or str, or one of them or None)")
        out[name] = declared
    return out


def add_train_arguments(parser) -> None:
    """One command-line option per TrainConfig field (--learning-rate, --lora-r, --shuffle or
    --no-shuffle, ...); those the config holds are required (the rules always pass them), the
    others keep their fixed values."""
    import argparse
    from dataclasses import MISSING, fields

    kinds = option_types(TrainConfig)
    for field in fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = kinds[field.name]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, required=field.default is MISSING,
                                default=None if field.default is MISSING else field.default)
        elif field.default is MISSING:
            parser.add_argument(flag, type=kind, required=True)
        else:
            parser.add_argument(flag, type=kind, default=field.default)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--out-log", required=True, help="training log JSON (steps, losses, lambda)")
    parser.add_argument("--run-name", default=None, help="the run's name in the tracker (its label)")
    parser.add_argument("--experiment-name", default=None, help="the tracker's group: the experiment")
    parser.add_argument("--tracker-dir", default=None, help="the tracker's local files (TensorBoard events, ...)")


SLURM_SAVE_STEPS = 200


def save_interval(save_steps: str | int) -> int:
    """Steps between checkpoints: a number as given; `auto`, every SLURM_SAVE_STEPS steps inside a
    SLURM job (a node lost without warning costs at most that many) and never elsewhere (a
    laptop run is short, and a signal still saves the state)."""
    if str(save_steps) == "auto":
        return SLURM_SAVE_STEPS if os.environ.get("SLURM_JOB_ID") else 0
    value = int(save_steps)
    if value < 0:
        raise InputError(f"--save-steps must be >= 0 or auto, got {save_steps}")
    return value


def add_objective_arguments(parser) -> None:
    """The forget objective's options: lambda's range and schedule, and the negative term (the
    forget family needs them all, npo its --beta too; see objective_from_args)."""
    parser.add_argument("--t-min", type=float, help="lambda at the first step")
    parser.add_argument("--t-max", type=float, help="lambda at the last step")
    parser.add_argument("--lambda-schedule", choices=LAMBDA_SCHEDULES)
    parser.add_argument("--forget-loss", choices=FORGET_LOSSES)
    parser.add_argument("--beta", type=float, help=f"{NPO}: the inverse temperature of the negative term (> 0)")


def objective_from_args(args, method: str, keep: float | None = None) -> Objective:
    if method in FORGET_FAMILY:
        missing = [f"--{k.replace('_', '-')}" for k in ("t_min", "t_max", "lambda_schedule", "forget_loss")
                   if getattr(args, k) is None]
        if missing:
            raise InputError(f"method {method!r} needs {', '.join(missing)}")
        if args.forget_loss == NPO and not (args.beta is not None and args.beta > 0):
            raise InputError(f"--forget-loss {NPO} needs --beta > 0, got {args.beta}")
        return Objective(method=method, t_min=args.t_min, t_max=args.t_max, lambda_schedule=args.lambda_schedule,
                         forget_loss=args.forget_loss, beta=args.beta if args.forget_loss == NPO else None)
    return Objective(method=method, keep=keep)


def train_config_from_args(args) -> TrainConfig:
    config = TrainConfig(**{name: getattr(args, name) for name in TrainConfig.__dataclass_fields__})
    if config.report_to not in TRACKERS:
        raise InputError(f"--report-to {config.report_to!r}: trackers are {', '.join(TRACKERS)}")
    if config.report_to != "none" and not (args.run_name and args.tracker_dir):
        raise InputError(f"--report-to {config.report_to} needs --run-name and --tracker-dir")
    return config


def tracker_settings(args) -> dict:
    """What train() names the run, groups it under and writes tracker files to."""
    return {"run_name": args.run_name, "experiment": args.experiment_name, "tracker_dir": args.tracker_dir}


def point_trackers(report_to: str, run_name: str, experiment: str | None, tracker_dir: str) -> None:
    """The integrations read these variables; a user's own settings (a W&B project, an MLflow
    server) win over the defaults here."""
    if report_to == "tensorboard":
        os.environ["TENSORBOARD_LOGGING_DIR"] = tracker_dir
    elif report_to == "wandb":
        os.environ.setdefault("WANDB_DIR", tracker_dir)
        if experiment:
            os.environ.setdefault("WANDB_RUN_GROUP", experiment)
    elif report_to == "mlflow":
        os.environ.setdefault("MLFLOW_TRACKING_URI", f"file:{Path(tracker_dir).resolve() / 'mlruns'}")
        if experiment:
            os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", experiment)
    Path(tracker_dir).mkdir(parents=True, exist_ok=True)


def resumable_checkpoint(work_dir: str, run: dict) -> str | None:
    """The last checkpoint a killed job of this very run left in `work_dir`, if any.

    Checkpoints of a run with other settings are removed: resuming them would mix two runs.
    """
    stamp = Path(work_dir) / "run.json"
    wanted = json.dumps(run, sort_keys=True)
    if stamp.is_file() and stamp.read_text() == wanted:
        last = get_last_checkpoint(work_dir)
        if last:
            log.info("resuming from %s", last)
            return last
    elif Path(work_dir).exists():
        log.info("removing checkpoints of other settings in %s", work_dir)
        shutil.rmtree(work_dir)
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    stamp.write_text(wanted)
    return None


def train(model_dir: str, tokens: pa.Table, partition: pa.Table | None, objective: Objective,
          config: TrainConfig, work_dir: str, reference_losses: pa.Table | None = None, run_name: str | None = None,
          experiment: str | None = None, tracker_dir: str | None = None,
          base_losses: pa.Table | None = None) -> tuple[Trainer, dict]:
    """Train LoRA adapters on `model_dir` (a base model or an adapter, merged on loading); return the
    trainer and the training log (per-step losses, lambda, token counts) for `save_run`. A signal
    (StopOnSignal) ends the job with RESUMABLE_EXIT after saving the trainer state in `work_dir`.
    `base_losses`: the base model's token losses, which an npo objective needs (and only it reads)."""
    from peft import LoraConfig, get_peft_model

    npo = objective.forget_loss == NPO
    if npo and base_losses is None:  # refused before the model loads, not at the first step
        raise InputError(f"forget loss {NPO!r} needs the base model's token losses (base_losses)")

    set_seed(config.seed)  # the LoRA initialisation, identical across methods for one seed
    model = load_causal_lm(model_dir, config.dtype, place=False)  # Trainer puts it on this rank's device
    # "all-linear" or a comma-separated list of module names ("q_proj,k_proj,...").
    targets = config.lora_target_modules if config.lora_target_modules == "all-linear" else \
        config.lora_target_modules.split(",")
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    dataset = TokenDataset(tokens, partition, objective.method, reference_losses, base_losses if npo else None)
    args = TrainingArguments(
        output_dir=work_dir,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float < 1 is a fraction of the total steps
        num_train_epochs=config.epochs,
        weight_decay=config.weight_decay,
        max_grad_norm=0.0 if config.max_grad_norm is None else config.max_grad_norm,  # 0: the trainer never clips
        logging_steps=config.logging_steps,
        seed=config.seed,
        data_seed=config.seed,  # same data order for every method of one seed
        train_sampling_strategy="random" if config.shuffle else "sequential",
        bf16=config.bf16,
        gradient_checkpointing=config.gradient_checkpointing,
        # Non-reentrant checkpointing needs no gradient on the (frozen) input embeddings under LoRA.
        gradient_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        deepspeed=config.deepspeed or None,
        use_cpu=not torch.cuda.is_available(),
        save_strategy="steps" if save_interval(config.save_steps) else "no",
        save_steps=save_interval(config.save_steps) or 500,
        save_total_limit=1,
        report_to=[] if config.report_to == "none" else [config.report_to],
        run_name=run_name,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    if config.report_to != "none":
        point_trackers(config.report_to, run_name, experiment, tracker_dir)
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    stop = StopOnSignal()
    trainer = ForgettingTrainer(model=model, args=args, train_dataset=dataset,
                                data_collator=MaskCollator(pad_id), objective=objective, callbacks=[stop])
    resume = resumable_checkpoint(work_dir, {"model": model_dir, "objective": objective.__dict__,
                                             "config": config.__dict__, "examples": len(dataset)})
    start = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    if stop.received:
        log.warning("stopped on %s at step %d of %d with the trainer state saved in %s; exiting %d so that a rerun "
                    "(Snakemake's retry) resumes from it", stop.received, trainer.state.global_step,
                    trainer.state.max_steps, work_dir, RESUMABLE_EXIT)
        raise SystemExit(RESUMABLE_EXIT)
    log.info("trained %s for %d steps in %.0f s (final train loss %.4f)", objective.method,
             trainer.state.global_step, time.time() - start, result.training_loss)

    summary = {"method": objective.method, "objective": objective.__dict__, "config": config.__dict__,
               "steps": trainer.state.global_step, "examples": len(dataset),
               "train_loss": result.training_loss, "log_history": trainer.state.log_history,
               "provenance": provenance.record(config.seed)}
    return trainer, summary


def save_run(trainer: Trainer, summary: dict, out_dir: str, out_log: str, work_dir: str) -> None:
    """The run's checkpoint: its LoRA adapter (safetensors; adapter_config.json names the model it
    applies to) with the tokenizer, written whole or not at all, and its training log; then the
    trainer state in `work_dir` goes. Under DDP, one process writes."""
    if not trainer.is_world_process_zero():
        return
    from transformers import AutoTokenizer

    model = trainer.model
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(model.peft_config["default"].base_model_name_or_path).save_pretrained(tmp)
    write_json(out_log, summary)
    shutil.rmtree(work_dir, ignore_errors=True)  # the trainer's checkpoints are no longer needed
