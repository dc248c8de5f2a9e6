"""The bookkeeping of experiments/gpu.sh, in the standard library and msgpack (flax's own
dependency): no JAX, so each call takes a fraction of a second.

    python experiments/gpu_results.py status RUN_DIR
        prints "UPDATES_DONE NUM_UPDATES" of a run: the updates its checkpoint holds (0 without
        one) and its budget (args.json)
    python experiments/gpu_results.py pack STATE_DIR OUT_DIR VARIANT...
        writes OUT_DIR/progress.txt (per variant: updates done / total, wall time so far) and
        OUT_DIR/results.tar.gz: per run args.json, metrics.csv cut to the columns below (every
        row), and seed<first>/model.msgpack once the run has finished. The checkpoints stay out
        (2.2 MB per seed: 22 MB for 10 seeds, over the 16 MiB a returned file may have).

STATE_DIR is gpu.sh's state folder: snake/<variant>/<run dir>/ per variant, calls.tsv (one line
per training process: call, variant, start, seconds, exit code, updates before, updates after).
"""

import csv
import io
import json
import os
import sys
import tarfile
import time

import msgpack

COLUMNS = (
    "seed",
    "global_step",
    "meta/gamma",
    "charts/episodic_return",
    "charts/episodic_length",
    "eval/episodic_return",
    "eval/episodic_return_greedy",
    "eval/episodic_length",
    "eval/global_step",
    "meta/outer_advantage",
    "meta/outer_advantage_inner_critic",
    "meta/outer_advantage_outer_critic",
    "losses/meta_loss",
    "charts/SPS",
)
LABELS = {
    "a2c_snake": "A2C",
    "mg_snake": "MG",
    "mg_snake_oc": "MG + outer critic",
    "bmg_snake": "BMG",
    "bmg_snake_oc": "BMG + outer critic",
}
MAX_FILE_BYTES = 16 * 2**20  # what the device tool brings back, per file


def run_dir_of(state, variant):
    """The variant's run directory (the newest holding a checkpoint), or None."""
    folder = os.path.join(state, "snake", variant)
    runs = (
        sorted(d for d in os.listdir(folder) if os.path.isfile(os.path.join(folder, d, "checkpoint.msgpack")))
        if os.path.isdir(folder)
        else []
    )
    return os.path.join(folder, runs[-1]) if runs else None


def status(run_dir):
    """(updates in the checkpoint, the run's budget in updates)."""
    with open(os.path.join(run_dir, "args.json")) as f:
        args = json.load(f)
    total = args["total_timesteps"] // (args["num_envs"] * args["num_steps"])
    path = os.path.join(run_dir, "checkpoint.msgpack")
    if not os.path.isfile(path):
        return 0, total
    with open(path, "rb") as f:  # flax's msgpack: arrays are ext types, which stay unread here
        return int(msgpack.unpackb(f.read(), raw=False)["updates_done"]), total


def read_calls(state):
    path = os.path.join(state, "calls.tsv")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [
            dict(zip(("call", "variant", "start", "seconds", "rc", "before", "after"), line.rstrip("\n").split("\t")))
            for line in f
            if line.strip()
        ]


def reduced_csv(run_dir):
    """metrics.csv with only COLUMNS (those the run has), every row."""
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        keep = [header.index(c) for c in COLUMNS if c in header]
        out = io.StringIO()
        out.write(",".join(header[i] for i in keep) + "\n")
        for row in reader:
            out.write(",".join(row[i] for i in keep) + "\n")
    return out.getvalue().encode()


def add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


def write_tar(path, state, variants, with_models):
    """results.tar.gz: snake/<variant>/<run dir>/{args.json, metrics.csv, seed<N>/model.msgpack}."""
    with tarfile.open(path + ".tmp", "w:gz") as tar:
        for variant in variants:
            run_dir = run_dir_of(state, variant)
            if run_dir is None:
                continue
            prefix = f"snake/{variant}/{os.path.basename(run_dir)}"
            tar.add(os.path.join(run_dir, "args.json"), f"{prefix}/args.json")
            if os.path.isfile(os.path.join(run_dir, "metrics.csv")):
                add_bytes(tar, f"{prefix}/metrics.csv", reduced_csv(run_dir))
            done, total = status(run_dir)
            with open(os.path.join(run_dir, "args.json")) as f:
                first_seed = json.load(f)["seed"]
            model = os.path.join(run_dir, f"seed{first_seed}", "model.msgpack")
            if with_models and done == total and os.path.isfile(model):
                tar.add(model, f"{prefix}/seed{first_seed}/model.msgpack")
    os.replace(path + ".tmp", path)


def training_pace(run_dir):
    """Updates per second of training (compile apart) of the run's last process: its last
    metrics.csv row's charts/SPS (inner steps per second of one seed, since the process started)."""
    with open(os.path.join(run_dir, "args.json")) as f:
        args = json.load(f)
    try:
        with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        return float(rows[-1]["charts/SPS"]) / (args["num_envs"] * args["num_steps"])
    except (OSError, IndexError, KeyError, ValueError):
        return None


def progress(state, variants):
    """progress.txt: per variant the updates done / total, the wall time of its processes (start
    and compile included), the training pace of its last process and the training time it still
    needs at that pace; then what the next call does."""
    calls = read_calls(state)
    lines = [
        f"{'variant':<20} {'updates done / total':>24} {'wall time so far':>17} {'training pace':>14} "
        f"{'still needed':>13}  state"
    ]
    next_variant = None
    for variant in variants:
        run_dir = run_dir_of(state, variant)
        done, total = status(run_dir) if run_dir else (0, None)
        seconds = sum(float(c["seconds"]) for c in calls if c["variant"] == variant)
        pace = training_pace(run_dir) if run_dir else None
        needed = "—" if not pace else f"{(total - done) / pace / 60:.1f} min"
        failed = os.path.join(state, "snake", variant, "FAILED")
        if os.path.isfile(failed):
            with open(failed) as f:
                state_text = "failed: " + f.read().strip()
        elif total is not None and done >= total:
            state_text = "finished"
        else:
            state_text = "not started" if run_dir is None else "stopped, continues next call"
            next_variant = next_variant or variant
        updates = f"{done:,} / {total:,} ({100 * done / total:.1f}%)" if total else "0 / —"
        lines.append(
            f"{LABELS.get(variant, variant):<20} {updates:>24} {seconds:>15.0f} s "
            f"{f'{pace:.2f} upd/s' if pace else '—':>14} {needed:>13}  {state_text}"
        )
    try:
        with open(os.path.join(state, "calls")) as f:
            calls_made = int(f.read())
    except (OSError, ValueError):
        calls_made = 0
    lines += [
        "",
        f"calls so far: {calls_made}; state folder: {state} (it lives on the machine: a fresh machine starts from zero)",
        f"next call: continues {LABELS.get(next_variant, next_variant)}"
        if next_variant
        else "next call: nothing left to train; the runs are finished",
    ]
    return "\n".join(lines) + "\n"


def pack(state, out, variants):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "progress.txt"), "w") as f:
        f.write(progress(state, variants))
    path = os.path.join(out, "results.tar.gz")
    write_tar(path, state, variants, with_models=True)
    if os.path.getsize(path) > MAX_FILE_BYTES:  # the models are the only part that can be spared
        write_tar(path, state, variants, with_models=False)
        print(f"note: results.tar.gz is without the models (over {MAX_FILE_BYTES} bytes with them)", file=sys.stderr)
    if os.path.getsize(path) > MAX_FILE_BYTES:
        sys.exit(f"error: {path} is {os.path.getsize(path)} bytes, over the {MAX_FILE_BYTES} a returned file may have")


def main(argv):
    if len(argv) == 2 and argv[0] == "status":
        done, total = status(argv[1])
        print(done, total)
    elif len(argv) >= 4 and argv[0] == "pack":
        pack(argv[1], argv[2], argv[3:])
    else:
        sys.exit("usage: gpu_results.py status RUN_DIR | pack STATE_DIR OUT_DIR VARIANT...")


if __name__ == "__main__":
    main(sys.argv[1:])
