"""The run machinery of the four scripts, written once: options and their rules, the run folder,
checkpoints and --resume, logging (metrics.csv, TensorBoard, optionally Weights & Biases), and stopping
cleanly (Ctrl-C, SIGTERM, --time-limit-s). No algorithm is here: each script's `main` shows its own
training loop (compile; per chunk: train, check, log, checkpoint, stop) and calls these helpers.

Exit codes: 0 finished; 1 non-finite values (the log up to them is kept); 2 bad input (before anything
is compiled or written); 3 stopped by --time-limit-s and 130 by Ctrl-C or SIGTERM, both with a
checkpoint to continue from with --resume (a cluster wrapper requeues on 3 and 130); a second Ctrl-C
ends the process at once, also 130, with the last checkpoint written before it.
"""

import dataclasses
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import sys
import threading
import time

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import tyro
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

EXIT_NON_FINITE = 1
EXIT_BAD_INPUT = 2
EXIT_TIME_LIMIT = 3
EXIT_INTERRUPTED = 130

CHECKPOINT_FORMAT = 1
# What --resume may change: nothing that changes a number of the run (the budget too, if it does not
# end before the checkpoint's updates).
RESUME_MAY_CHANGE = ("total_timesteps", "num_updates", "log_every", "checkpoint_every_s", "time_limit_s", "runs_dir")
RESUME_MAY_CHANGE += ("save_model", "resume", "track", "wandb_project_name", "wandb_entity")
# Options renamed since checkpoints were first written: old name -> new name.
RENAMED_OPTIONS = {"max_grad_norm": "max_meta_grad_norm"}


class BadInput(Exception):
    """An option or a run folder that cannot work: one line for the user, exit code 2."""


class NonFinite(Exception):
    """A non-finite meta-gradient, γ or parameter: the run stops without a checkpoint (the last is sound)."""


def run_main(main):
    """Runs a script's main: bad input and non-finite values end as one line on stderr and their exit code."""
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except NonFinite as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_NON_FINITE)


# ----------------------------------------------------------------------------------------------------
# Options: parsing, --resume, rules
# ----------------------------------------------------------------------------------------------------
def parse_args(args_class, script, rules):
    """The options and the checkpoint to resume from (or None). With --resume the options are the
    checkpoint's, with the command line's on top. `rules(args)` lists the script's own
    (option, holds, what it must be); every rule is checked here, before anything compiles."""
    budget_hint(args_class, script)
    args = tyro.cli(args_class)
    checkpoint = None
    if args.resume:
        checkpoint = read_checkpoint(args.resume, args_class, script)
        args = resume_args(checkpoint, args_class)
    check_args(args, rules(args))
    if not args.exp_name:
        args = dataclasses.replace(args, exp_name=default_exp_name(args, script))
    return args, checkpoint


def budget_hint(args_class, script):
    """The chain's budget is --num-updates, Snake's --total-timesteps: the other one gets a hint, not
    tyro's bare "Unrecognized options"."""
    fields = {field.name for field in dataclasses.fields(args_class)}
    budget = "total_timesteps" if "total_timesteps" in fields else "num_updates"
    other = "num_updates" if budget == "total_timesteps" else "total_timesteps"
    flag = "--" + other.replace("_", "-")
    if any(word == flag or word.startswith(flag + "=") for word in sys.argv[1:]):
        what = "inner-batch environment steps" if budget == "total_timesteps" else "meta-updates"
        raise BadInput(f"{script} has no {flag}: its budget is --{budget.replace('_', '-')} ({what})")


def default_exp_name(args, script):
    """The script and the variant, so that two variants' run folders differ by more than the clock:
    mg_snake_oc, bmg_chain_learned, a2c_snake, mg_chain_norm, ..."""
    algorithm, environment = script[: -len(".py")].split("_")
    name = f"a2c_{environment}" if args.meta_lr == 0 else f"{algorithm}_{environment}"
    if args.outer_critic and args.meta_lr != 0:
        name += "_oc"
    if not getattr(args, "true_value", True):
        name += "_learned"
    if args.normalize_advantage:
        name += "_norm"
    return name


def check_args(args, rules):
    """Bad input stops here: the run options' rules, then the script's (a NaN fails every comparison)."""
    devices = jax.device_count()
    rules = [
        ("seed", args.seed >= 0, "must be >= 0"),
        ("num_seeds", args.num_seeds >= 1, "must be >= 1"),
        ("seed", args.seed + args.num_seeds <= 2**31, "+ --num-seeds must be <= 2^31 (a JAX int32 key)"),
        ("num_seeds", args.num_seeds % devices == 0, f"must be a multiple of the {devices} devices the seeds are split over"),
        ("log_every", args.log_every >= 1, "must be >= 1"),
        ("checkpoint_every_s", args.checkpoint_every_s >= 0, "must be >= 0"),
        ("time_limit_s", args.time_limit_s >= 0, "must be >= 0"),
        *rules,
    ]
    for name, holds, allowed in rules:
        if not holds:
            raise BadInput(f"--{name.replace('_', '-')} {allowed}, got {getattr(args, name)}")
    if args.track and importlib.util.find_spec("wandb") is None:
        raise BadInput("--track needs wandb, an optional dependency: pip install -r requirements-wandb.txt")


def read_checkpoint(run_dir, args_class, script):
    """The checkpoint of `run_dir`, checked to be this script's and readable."""
    path = os.path.join(run_dir, "checkpoint.msgpack")
    if not os.path.isdir(run_dir):
        raise BadInput(f"--resume {run_dir}: no such run folder")
    try:
        with open(path, "rb") as f:
            checkpoint = flax.serialization.msgpack_restore(f.read())
    except OSError as error:
        raise BadInput(f"--resume {run_dir}: cannot read {path} ({error.strerror})") from None
    except Exception:  # msgpack's own errors: a truncated or corrupt file
        raise BadInput(f"--resume {run_dir}: checkpoint.msgpack is truncated or corrupt") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise BadInput(f"--resume {run_dir}: checkpoint.msgpack is not a checkpoint of format {CHECKPOINT_FORMAT}")
    if checkpoint["script"] != script:
        raise BadInput(f"--resume {run_dir}: its checkpoint was written by {checkpoint['script']}, not {script}")
    saved = {RENAMED_OPTIONS.get(name, name): value for name, value in checkpoint["args"].items()}
    unknown = set(saved) - {field.name for field in dataclasses.fields(args_class)}
    if unknown:
        raise BadInput(f"--resume {run_dir}: its checkpoint has options this version of {script} lacks: {sorted(unknown)}")
    # An option added since the checkpoint was written is missing there: it takes its default, which
    # by this project's rule keeps the numbers of the runs made before it.
    checkpoint["args"] = saved
    return checkpoint


def resume_args(checkpoint, args_class):
    """A resumed run's options: the checkpoint's, with the command line's on top. Only those that change
    no number may differ, and the budget cannot end before the checkpoint."""
    args = tyro.cli(args_class, default=args_class(**checkpoint["args"]))
    for field in dataclasses.fields(args_class):
        given = getattr(args, field.name)
        saved = checkpoint["args"].get(field.name, field.default)
        if field.name not in RESUME_MAY_CHANGE and given != saved:
            raise BadInput(f"--{field.name.replace('_', '-')} must be the checkpoint's ({saved}) to resume, got {given}")
    if args.num_updates < checkpoint["updates_done"]:
        raise BadInput(
            f"--resume: the budget ({args.num_updates} updates) ends before the checkpoint's {checkpoint['updates_done']}"
        )
    return args


# ----------------------------------------------------------------------------------------------------
# The training state: checkpoints and devices
# ----------------------------------------------------------------------------------------------------
def restore(checkpoint, fresh):
    """(runner, updates done): the fresh runner and 0 for a new run; with a checkpoint, its leaves in the
    tree of the fresh runner (the leaves are saved flat: flax cannot serialise jumanji's State)."""
    if checkpoint is None:
        return fresh, 0
    return restore_runner(checkpoint, fresh), checkpoint["updates_done"]


def restore_runner(checkpoint, fresh):
    """The checkpoint's leaves in the tree of a freshly initialised runner, if every leaf fits."""
    leaves = checkpoint["leaves"]
    fresh_leaves = jax.tree.leaves(fresh)
    fits = [(a.shape, a.dtype) == (b.shape, b.dtype) for a, b in zip(leaves, fresh_leaves)]
    if len(leaves) != len(fresh_leaves) or not all(fits):
        raise BadInput("--resume: the checkpoint's training state does not fit this script's")
    return jax.tree.unflatten(jax.tree.structure(fresh), [jnp.asarray(x) for x in leaves])


def split_seeds(runner):
    """Seeds never interact: with several devices, the seed axis is split over them."""
    if jax.device_count() == 1:
        return runner
    mesh = jax.sharding.Mesh(jax.devices(), ("seeds",))
    return jax.device_put(runner, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds")))


# ----------------------------------------------------------------------------------------------------
# The run: folder, logs, checkpoints, stops
# ----------------------------------------------------------------------------------------------------
class Run:
    """One run folder: args.json, metrics.csv, a TensorBoard log (and a W&B run with --track) per seed,
    checkpoint.msgpack. Ctrl-C, SIGTERM and --time-limit-s are caught from the start (a stop while
    compiling is one line, not a traceback) and end the run between chunks, with a checkpoint; a second
    Ctrl-C ends it at once."""

    def __init__(self, args, script, env_id, checkpoint, steps_per_batch, batches_per_update):
        self.args = args
        self.script = script
        self.seeds = list(range(args.seed, args.seed + args.num_seeds))
        self.indices = range(args.num_seeds)  # each seed's index in the runner's leading axis
        self.steps_per_batch = steps_per_batch  # inner-batch steps of one seed per update (global_step)
        self.env_steps_per_update = steps_per_batch * batches_per_update  # every batch (charts/env_steps_total)
        self.resumed_at = checkpoint["updates_done"] if checkpoint else None
        self.stop_signal = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        # Made now, so that a folder that cannot be written fails before the compile.
        self.dir = args.resume or make_run_dir(args.runs_dir, f"{env_id}__{args.exp_name}__{args.seed}")
        self.writers = []
        self.wandb_runs = []
        self.start_time = None  # set by start(), after the compile
        self.signal_watch = self._watch_signals()

    def _on_signal(self, signum, frame):
        self.stop_signal = signum

    def _watch_signals(self):
        """A second Ctrl-C ends the process at once. _on_signal runs only between Python bytecodes, so
        not while XLA compiles or runs a chunk: the signals also reach a pipe (set_wakeup_fd), read by a
        thread that runs meanwhile. Returns the pipe and the wakeup fd it replaced (for close)."""
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)  # the signal handler must never block on a full pipe
        replaced = signal.set_wakeup_fd(write_end)
        threading.Thread(target=self._count_stops, args=(read_end,), daemon=True).start()
        return write_end, replaced

    def _count_stops(self, read_end):
        """The thread: after a first Ctrl-C or SIGTERM (a clean stop after the chunk), a Ctrl-C ends the
        process at once; the end of the pipe (close) ends the thread."""
        stops = 0
        while signums := os.read(read_end, 64):
            for signum in signums:
                if signum == signal.SIGINT and stops:
                    self._end_at_once()
                stops += signum in (signal.SIGINT, signal.SIGTERM)
        os.close(read_end)

    def _end_at_once(self):
        """Exit 130 now, without a checkpoint: the last one written is whole (written atomically) and a
        resume cuts the log back to it. A new run stopped while compiling leaves no (empty) folder."""
        resume = f"python {self.script} --resume {self.dir}"
        if self.start_time is None and self.resumed_at is None:
            shutil.rmtree(self.dir, ignore_errors=True)
            what = "nothing trained, no run folder left"
        elif os.path.exists(os.path.join(self.dir, "checkpoint.msgpack")):
            what = f"continue from the last checkpoint with: {resume}"
        else:
            what = f"no checkpoint written yet; the log is in {self.dir}"
        print(f"stopped at once by a second Ctrl-C: {what}", file=sys.stderr, flush=True)
        os._exit(EXIT_INTERRUPTED)

    def compile(self, train, runner, chunk_size):
        """The program of one chunk, compiled ahead (a last, shorter chunk compiles on its own)."""
        resumed = f" | resumed at update {self.resumed_at}" if self.resumed_at is not None else ""
        print(f"run: {self.dir} | seeds {self.seeds[0]}..{self.seeds[-1]} | devices {jax.devices()}{resumed}", flush=True)
        print("compiling the training program (10-60 s on a CPU) ...", flush=True)
        start = time.time()
        compiled = train.lower(runner, jnp.arange(chunk_size)).compile()
        print(f"compiled in {time.time() - start:.1f}s", flush=True)
        return compiled

    def start(self, updates_done):
        """Opens the logs (cut back to the checkpoint when resuming) and starts the clocks; after a stop
        while compiling, nothing (finish leaves the folder as it was)."""
        if self.stop_signal is not None:
            return
        if self.args.track:  # first: a W&B that cannot start leaves a new run no folder
            self.wandb_runs = start_wandb(self.args, self.dir, self.seeds, fresh=self.resumed_at is None)
        with open(os.path.join(self.dir, "args.json"), "w") as f:
            json.dump({"script": self.script, **json_options(self.args)}, f, indent=2, allow_nan=False)
        self.writers = [EventFileWriter(os.path.join(self.dir, f"seed{s}")) for s in self.seeds]
        if self.resumed_at is not None:
            cut_log(self.dir, self.writers, updates_done * self.steps_per_batch)
        self.start_time = self.last_checkpoint = time.time()
        self.start_updates = updates_done

    def keep_going(self, updates_done):
        """Whether to train another chunk: budget left, no stop asked for, and time left after the
        first chunk (--time-limit-s)."""
        if self.start_time is None or self.stop_signal is not None or updates_done >= self.args.num_updates:
            return False
        ran = updates_done > self.start_updates
        return not (ran and self.args.time_limit_s and time.time() - self.start_time >= self.args.time_limit_s)

    def check_finite(self, finite, chunk):
        """finite: [seeds, updates] booleans from the chunk's metrics."""
        if not finite.all():
            seed_index, update_index = np.argwhere(~finite)[0]
            where = f"at update {int(chunk[update_index])} of seed {self.seeds[seed_index]}"
            raise NonFinite(f"non-finite meta-gradient, γ or parameters {where}; the log before it is in {self.dir}")

    def log(self, updates_done, metrics, last_value_metrics, eval_metrics=()):
        """One log point from a chunk's metrics: each seed's row (`summarize`, with the speed and every environment
        step taken) to metrics.csv, TensorBoard and W&B, and the progress line."""
        rows = [
            summarize(metrics, i, updates_done, self.steps_per_batch, last_value_metrics, eval_metrics) for i in self.indices
        ]
        global_step = updates_done * self.steps_per_batch  # inner-batch steps of one seed (the paper's x-axis)
        elapsed = time.time() - self.start_time
        sps = (updates_done - self.start_updates) * self.steps_per_batch / elapsed
        for row in rows:
            row["charts/SPS"] = sps
            row["charts/env_steps_total"] = updates_done * self.env_steps_per_update
        write_log_point(self.writers, self.dir, self.seeds, global_step, rows)
        try:  # W&B's step is global_step: a resume continues it
            for wandb_run, row in zip(self.wandb_runs, rows):
                values = {k: v for k, v in row.items() if not _is_nan(v)}
                wandb_run.log({"global_step": global_step, **values}, step=global_step)
        except Exception as error:
            self.wandb_runs = wandb_failed(error)
        gamma = np.mean([row["meta/gamma"] for row in rows])
        returns = [row["charts/episodic_return"] for row in rows if not _is_nan(row["charts/episodic_return"])]
        mean_return = np.mean(returns) if returns else math.nan
        eta = (self.args.num_updates - updates_done) * elapsed / (updates_done - self.start_updates) / 60
        line = f"update {updates_done}/{self.args.num_updates} | gamma {gamma:.4f} | return {mean_return:.3f}"
        print(f"{line} | SPS {sps:,.0f} | ETA {eta:.1f} min", flush=True)

    def checkpoint_due(self):
        every = self.args.checkpoint_every_s
        return every and time.time() - self.last_checkpoint >= every

    def write_checkpoint(self, updates_done, runner):
        write_checkpoint(self.dir, self.script, self.args, self.seeds, updates_done, runner)
        self.last_checkpoint = time.time()

    def finish(self, updates_done, runner, params):
        """The last checkpoint (at the end, on a stop, at the time limit), each seed's θ and η with
        --save-model, and the closing line; a stop before the first chunk leaves what it found."""
        resume = f"python {self.script} --resume {self.dir}"
        if self.start_time is None:  # stopped while compiling: nothing was trained
            self.close()
            if self.resumed_at is None:
                shutil.rmtree(self.dir)
                print("stopped before the first update: nothing trained, no run folder left", file=sys.stderr)
            else:
                print(
                    f"stopped before the first update: the checkpoint in {self.dir} is untouched; continue with: {resume}",
                    file=sys.stderr,
                )
            sys.exit(EXIT_INTERRUPTED)
        self.write_checkpoint(updates_done, runner)
        for i, seed in enumerate(self.seeds if self.args.save_model else []):
            model = jax.tree.map(lambda x, i=i: np.asarray(x[i]), params)
            with open(os.path.join(self.dir, f"seed{seed}", "model.msgpack"), "wb") as f:
                f.write(flax.serialization.to_bytes(model))
        self.close()
        if self.stop_signal is not None:
            print(
                f"interrupted after {updates_done} updates; the log is in {self.dir}; continue with: {resume}", file=sys.stderr
            )
            sys.exit(EXIT_INTERRUPTED)
        if updates_done < self.args.num_updates:
            print(f"time limit reached after {updates_done} updates; continue with: {resume}", flush=True)
            sys.exit(EXIT_TIME_LIMIT)
        print(f"done: {self.dir} | python plot.py {self.dir} | tensorboard --logdir {os.path.dirname(self.dir)}")

    def close(self):
        if self.signal_watch is not None:  # signals go back to the wakeup fd before the run's
            write_end, replaced = self.signal_watch
            signal.set_wakeup_fd(replaced)
            os.close(write_end)  # ends the thread
            self.signal_watch = None
        for writer in self.writers:
            writer.close()
        try:
            for wandb_run in self.wandb_runs:
                wandb_run.finish()
        except Exception as error:
            wandb_failed(error)
        self.writers, self.wandb_runs = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()  # also when a chunk fails: everything logged so far is on disk


def json_options(args):
    """The options as JSON values (args.json, W&B's config). JSON has no inf or nan: a float option that
    is not finite (the chain's default --max-meta-grad-norm inf) is written as Python's text for it,
    "inf", "-inf" or "nan", which float() reads back."""
    options = dataclasses.asdict(args)
    return {
        name: str(value) if isinstance(value, float) and not math.isfinite(value) else value for name, value in options.items()
    }


def make_run_dir(runs_dir, name):
    """runs/<env>__<exp_name>__<seed>__<time>, with -1, -2, ... if two runs start in the same second."""
    base = os.path.join(runs_dir, f"{name}__{int(time.time())}")
    for run_dir in [base] + [f"{base}-{attempt}" for attempt in range(1, 1000)]:
        try:
            os.makedirs(run_dir)
            return run_dir
        except FileExistsError:
            continue
        except OSError as error:
            raise BadInput(f"--runs-dir {runs_dir!r} is not writable ({error.strerror})") from None
    raise BadInput(f"--runs-dir {runs_dir!r}: 1000 runs named {os.path.basename(base)} exist")


def write_checkpoint(run_dir, script, args, seeds, updates_done, runner):
    """Every seed's whole training state, written atomically (a temporary file, then os.replace): a kill
    at any instant leaves the previous checkpoint or this one, never a torn file."""
    leaves = [np.asarray(x) for x in jax.tree.leaves(runner)]
    payload = {"format": CHECKPOINT_FORMAT, "script": script, "args": dataclasses.asdict(args), "seeds": seeds}
    path = os.path.join(run_dir, "checkpoint.msgpack")
    with open(path + ".tmp", "wb") as f:
        f.write(flax.serialization.msgpack_serialize(payload | {"updates_done": updates_done, "leaves": leaves}))
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


# ----------------------------------------------------------------------------------------------------
# Logs: metrics.csv, TensorBoard, Weights & Biases
# ----------------------------------------------------------------------------------------------------
def summarize(metrics, seed_index, updates_done, steps_per_batch, last_value_metrics, eval_metrics=()):
    """One log point of one seed from a chunk's metrics (numpy, [seeds, updates]), the chunk ending after
    `updates_done` updates. A metric a variant lacks is nan in every update (the script fills it), and so here.
    - charts/episodic_return and _length: the mean over the training episodes that ended in the chunk, from
      each update's episodes/return_sum, episodes/length_sum and episodes/count (nan if none ended);
    - a metric of `last_value_metrics`: its last value, the state after the chunk;
    - the evaluation's metrics (`eval_metrics`, nan at the updates not evaluated; absent when it is off): the
      chunk's last evaluation, and eval/global_step, the step of the policy it scored (nan if none);
    - every other metric: its mean over the chunk."""
    this_seed = {name: values[seed_index] for name, values in metrics.items()}
    count = this_seed["episodes/count"].sum()
    row = {
        "charts/episodic_return": this_seed["episodes/return_sum"].sum() / count if count else np.nan,
        "charts/episodic_length": this_seed["episodes/length_sum"].sum() / count if count else np.nan,
    }
    eval_metrics = [name for name in eval_metrics if name in this_seed]
    for name, values in this_seed.items():
        if name.startswith("episodes/") or name in eval_metrics or name == "finite":
            continue
        row[name] = values[-1] if name in last_value_metrics else values.mean()
    if eval_metrics:
        evaluated = np.flatnonzero(~np.isnan(this_seed[eval_metrics[0]]))
        last = evaluated[-1] if len(evaluated) else None
        for name in eval_metrics:
            row[name] = np.nan if last is None else this_seed[name][last]
        chunk_start = updates_done - len(this_seed[eval_metrics[0]])
        row["eval/global_step"] = np.nan if last is None else int(chunk_start + last + 1) * steps_per_batch
    return row


def _is_nan(value):
    return isinstance(value, float | np.floating) and math.isnan(value)


def cut_log(run_dir, writers, global_step):
    """Forgets what was logged after the checkpoint: the metrics.csv rows after it (whole rows only),
    and in TensorBoard every later step (a SessionLog START event purges the steps at and after its own)."""
    csv_path = os.path.join(run_dir, "metrics.csv")
    if os.path.exists(csv_path):
        with open(csv_path) as f:
            header, *rows = f.read().splitlines(keepends=True)
        rows = [row for row in rows if row.endswith("\n") and int(row.split(",")[1]) <= global_step]
        with open(csv_path + ".tmp", "w") as f:
            f.write(header + "".join(rows))
        os.replace(csv_path + ".tmp", csv_path)
    for writer in writers:
        writer.add_event(Event(wall_time=time.time(), step=global_step + 1, session_log=SessionLog(status=SessionLog.START)))


def add_scalar(writer, name, value, step):
    """One TensorBoard scalar event."""
    summary = Summary(value=[Summary.Value(tag=name, simple_value=float(value))])
    writer.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))


def write_log_point(writers, run_dir, seeds, global_step, rows):
    """One log point: a TensorBoard event per metric (an evaluation at the step of the policy it scored,
    none where there was none; none for a nan, a metric the variant or the chunk lacks, as W&B) and each
    seed's metrics.csv row (nan cells included), all in one write: a crash leaves whole rows."""
    for writer, row in zip(writers, rows):
        eval_step = row.get("eval/global_step", global_step)
        for name, value in row.items():
            step = eval_step if name.startswith("eval/") else global_step
            if name != "eval/global_step" and not _is_nan(step) and not _is_nan(value):
                add_scalar(writer, name, value, step)
        writer.flush()
    csv_path = os.path.join(run_dir, "metrics.csv")
    lines = [f"{seed},{global_step}," + ",".join(csv_text(v) for v in row.values()) + "\n" for seed, row in zip(seeds, rows)]
    header = [] if os.path.exists(csv_path) else [",".join(["seed", "global_step", *rows[0]]) + "\n"]
    with open(csv_path, "a") as f:
        f.write("".join(header + lines))


def csv_text(value):
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def wandb_run_id(run_dir, seed):
    """A W&B run id that --resume finds again: the run folder's name and the seed."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", os.path.basename(os.path.normpath(run_dir))) + f"-seed{seed}"


def start_wandb(args, run_dir, seeds, fresh):
    """One W&B run per seed, grouped by the run folder's name, continued by --resume (same ids). Logged
    explicitly at each log point: the TensorBoard writer here is not one W&B can sync. A W&B that cannot
    start (no API key; online without network, after ~100 s) is one line, exit 2, and no new folder."""
    import wandb  # optional (requirements-wandb.txt); --track checked it is installed

    wandb_runs = []
    try:
        for seed in seeds:
            wandb_run = wandb.init(
                project=args.wandb_project_name,
                entity=args.wandb_entity or None,
                group=os.path.basename(os.path.normpath(run_dir)),
                name=f"{os.path.basename(os.path.normpath(run_dir))}__seed{seed}",
                id=wandb_run_id(run_dir, seed),
                resume="allow",
                reinit="create_new",
                config=json_options(args) | {"seed": seed},  # as args.json has them
                dir=run_dir,
            )
            wandb_runs.append(wandb_run)
            # The metrics step on global_step; Snake's evaluations on the step of the policy they scored
            # (eval/global_step: logged one chunk late). The chain's eval/expected_return is of the policy now.
            wandb_run.define_metric("global_step")
            wandb_run.define_metric("*", step_metric="global_step")
            if getattr(args, "eval_every", 0):
                wandb_run.define_metric("eval/global_step")
                wandb_run.define_metric("eval/*", step_metric="eval/global_step")
    except wandb.Error as error:
        for wandb_run in wandb_runs:
            wandb_run.finish(exit_code=1)
        if fresh:
            shutil.rmtree(run_dir)
        what = "no run folder left" if fresh else f"the checkpoint in {run_dir} is untouched"
        raise BadInput(
            f"--track: W&B did not start ({type(error).__name__}: {str(error).splitlines()[0]}); {what}; "
            "WANDB_MODE=offline needs no key nor network (wandb sync uploads later)"
        ) from None
    return wandb_runs


def wandb_failed(error):
    """W&B failing (its service process killed with the job, a full disk) stops the tracking, not the run:
    one line, and metrics.csv, TensorBoard and the checkpoints go on. No W&B runs are left to log to."""
    print(f"warning: W&B tracking stopped ({type(error).__name__}: {error}); the run goes on without it", file=sys.stderr)
    return []
