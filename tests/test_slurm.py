"""experiments/slurm/ on a real single-node SLURM cluster started on localhost: an array of
two tasks whose runs are cut by their --time-limit-s (and one by SLURM's USR1 as well), requeued and
resumed until finished, gives each task the metrics.csv of an uninterrupted run of the same seeds,
bit for bit. Skipped where SLURM is not installed (CI installs slurm-wlm and munge in .ci/run). And
submit.sh's checks and sbatch command, with a stand-in sbatch (no cluster needed)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT, SUBPROCESS_ENV, metrics_rows, only_run

SUBMIT = os.path.join(ROOT, "experiments", "slurm", "submit.sh")
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")
# 2 seeds per task; 1,200 updates are 4-8 s of training alone on 2 cores (more beside the reference
# runs), cut after 1-2 s (SLURM_MARGIN_S below): a task starts 3-8 times.
# The flags of conftest's warm-up and test_resume: the compiled program comes from the cache.
FLAGS = "--num-envs 8 --log-every 2 --num-updates 1200 --outer-critic"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def our_processes(conf):
    """Every process that has our SLURM_CONF in its environment: the daemons, slurmstepd, the tasks."""
    pids, needle = [], f"SLURM_CONF={conf}".encode() + b"\0"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read() and int(pid) != os.getpid():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


@pytest.fixture
def cluster():
    """munged, slurmctld and slurmd on localhost (2 CPUs), in a temporary folder; all stopped after."""
    missing = [d for d in DAEMONS if not shutil.which(d) and not os.path.exists(f"/usr/sbin/{d}")]
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge")
    d = tempfile.mkdtemp(prefix="slurm_")  # short: the munge socket's path must fit in 108 bytes
    conf = os.path.join(d, "slurm.conf")
    with open(os.path.join(d, "munge.key"), "wb") as f:
        f.write(os.urandom(1024))
    os.chmod(os.path.join(d, "munge.key"), 0o600)
    for sub in ("state", "spool"):
        os.mkdir(os.path.join(d, sub))
    # cred_expire is also how long a requeued job waits before it may start again (default 120 s);
    # sched_interval=1: the scheduler looks at that pending job every second, not every minute.
    with open(conf, "w") as f:
        f.write(
            f"""ClusterName=test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.socket,cred_expire=5
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobRequeue=1
MinJobAge=300
ReturnToService=2
SchedulerParameters=sched_interval=1
MpiDefault=none
MailProg=/bin/true
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
        )
    python_dir = os.path.dirname(sys.executable)  # the tasks' `python`
    env = {**SUBPROCESS_ENV, "SLURM_CONF": conf, "PATH": f"{python_dir}:/usr/sbin:{SUBPROCESS_ENV['PATH']}"}
    munge = ["munged", "-F", "--force", f"--socket={d}/munge.socket", f"--key-file={d}/munge.key"]
    munge += [f"--pid-file={d}/munged.pid", f"--seed-file={d}/munged.seed", f"--log-file={d}/munged.log"]
    daemons = []
    try:
        with open(os.path.join(d, "daemons.log"), "w") as log:
            daemons.append(subprocess.Popen(munge, stdout=log, stderr=log, env=env))
            for _ in range(100):
                if os.path.exists(f"{d}/munge.socket"):
                    break
                time.sleep(0.05)
            for command in (["slurmctld", "-D", "-f", conf], ["slurmd", "-D", "-f", conf, "-N", "localhost"]):
                daemons.append(subprocess.Popen(command, stdout=log, stderr=log, env=env))
        deadline = time.time() + 30
        while sinfo(env) != "idle":
            if time.time() > deadline or any(p.poll() is not None for p in daemons):
                pytest.fail(f"the cluster did not start:\n{open(os.path.join(d, 'daemons.log')).read()}")
            time.sleep(0.2)
        yield env
    finally:
        subprocess.run(["scancel", "--user=root"], env=env, capture_output=True, timeout=30)
        for p in reversed(daemons):  # slurmd, slurmctld, munged
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for pid in our_processes(conf):  # what outlived them (slurmstepd and its tasks are not their children)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.copy(f"{d}/slurmd.log", "/tmp/slurmd_debug.log")
        shutil.rmtree(d, ignore_errors=True)


def sinfo(env):
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30)
    return result.stdout.strip()


def task_states(env, job):
    result = subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", "-j", job, "-o", "%K %T"], env=env, capture_output=True, text=True
    )
    return dict(line.split() for line in result.stdout.splitlines())


@pytest.mark.slow
def test_array_tasks_cut_requeued_and_resumed_equal_uninterrupted_runs(cluster, tmp_path):
    env = cluster
    variants = tmp_path / "variants.txt"
    variants.write_text(f"# NAME SCRIPT FLAGS...\nmg_chain_oc mg_chain.py {FLAGS}\n")
    array = tmp_path / "array"
    script = os.path.join(ROOT, "mg_chain.py")
    outputs = {seed: open(tmp_path / f"ref{seed}.log", "w") for seed in (0, 2)}
    references = {  # the same seeds uninterrupted, meanwhile
        seed: subprocess.Popen(
            [
                sys.executable,
                script,
                *FLAGS.split(),
                "--seed",
                str(seed),
                "--num-seeds",
                "2",
                "--runs-dir",
                str(tmp_path / f"ref{seed}"),
            ],
            stdout=outputs[seed],
            stderr=subprocess.STDOUT,
            env=SUBPROCESS_ENV,
        )
        for seed in (0, 2)
    }
    # --time=10 minutes less SLURM_MARGIN_S=598 s: each start trains 1-2 s before its time limit.
    submit = ["bash", SUBMIT, str(array), str(variants), "2", "2", "--time=10"]
    result = subprocess.run(submit, env={**env, "SLURM_MARGIN_S": "598"}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    job = re.search(r"submitted array (\d+)", result.stdout).group(1)
    logs = {task: array / "logs" / f"{job}_{task}.out" for task in (0, 1)}
    # Task 1 also gets SLURM's --signal=B:USR1 once, while it trains.
    deadline = time.time() + 60
    while not re.search(r"^update \d+/", logs[1].read_text() if logs[1].exists() else "", re.M):
        assert time.time() < deadline, "task 1 did not start training"
        time.sleep(0.05)
    subprocess.run(["scancel", "--signal=USR1", "--batch", f"{job}_1"], env=env, check=True, timeout=30)
    # Stopped with a checkpoint (exit 3 at the time limit, 130 on the signal), SLURM's requeues take
    # both runs to the end in this one submission.
    deadline = time.time() + 300
    while len(states := task_states(env, job)) < 2 or not set(states.values()) <= TERMINAL:
        assert time.time() < deadline, f"the array did not finish: {states}"
        time.sleep(0.5)
    assert states == {"0": "COMPLETED", "1": "COMPLETED"}, [log.read_text() for log in logs.values()]
    for seed, process in references.items():
        process.wait(timeout=120)
        outputs[seed].close()
        assert process.returncode == 0, (tmp_path / f"ref{seed}.log").read_text()

    for task, seed in ((0, 0), (1, 2)):
        assert len(os.listdir(array / f"mg_chain_oc_s{seed}")) == 1  # one run folder, continued in place
        ours, reference = only_run(array / f"mg_chain_oc_s{seed}"), only_run(tmp_path / f"ref{seed}")
        assert metrics_rows(ours) == metrics_rows(reference)  # charts/SPS (wall-clock) aside
        text = logs[task].read_text()
        assert "resumed at update" in text  # cut at least once, then continued from its checkpoint
        # Each requeue is followed by the next start of the same task, until finished.
        starts = [int(n) for n in re.findall(r"^== task \S+, start (\d+)", text, re.M)]
        assert starts == list(range(1, len(starts) + 1)) and text.count("checkpoint written: requeued") == len(starts) - 1
        assert text.rstrip().endswith("== finished") and re.search(r"--time-limit-s [12]\b", text)
    assert "== stopped (exit 3), checkpoint written: requeued" in logs[0].read_text()
    assert "== stopped (exit 130), checkpoint written: requeued" in logs[1].read_text()


def test_submit_checks_everything_before_it_submits_one_array(tmp_path):
    """submit.sh with a stand-in sbatch: its command, and the mistakes it refuses before submitting."""
    fake = tmp_path / "sbatch"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$SBATCH_LOG"\necho "41;cluster"\n')
    fake.chmod(0o755)
    env = {**os.environ, "SBATCH": str(fake), "SBATCH_LOG": str(tmp_path / "args")}
    variants = os.path.join(ROOT, "experiments", "slurm", "chain.txt")
    array = tmp_path / "runs" / "chain_array"
    result = subprocess.run(
        ["bash", SUBMIT, str(array), variants, "2", "5", "--time=2:00:00"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("submitted array 41: 5 variants x 2 seed groups = 10 tasks")
    task = os.path.join(ROOT, "experiments", "slurm", "task.sbatch")
    assert (tmp_path / "args").read_text().split("\n")[:-1] == [
        "--parsable",
        "--array=0-9",
        "--job-name=chain_array",
        f"--chdir={ROOT}",
        f"--output={array}/logs/%A_%a.out",
        "--time=2:00:00",
        task,
        str(array),
        "2",
        "5",
        "300",
    ]
    assert (array / "variants.txt").read_text() == Path(variants).read_text()
    other = tmp_path / "other.txt"
    for text, args, message in [
        ("x mg_chain.py\n", [str(array), str(other), "1", "1"], "was submitted with other variants"),
        ("a mg_chain.py\na bmg_chain.py\n", [str(tmp_path / "new"), str(other), "1", "1"], "variant name 'a' is not unique"),
        ("a plot.py\n", [str(tmp_path / "new"), str(other), "1", "1"], "'plot.py' is not one of the training scripts"),
        ("a mg_chain.py\n", [str(tmp_path / "new"), str(other), "0", "1"], "NUM_GROUPS must be a positive integer"),
    ]:
        other.write_text(text)
        (tmp_path / "args").unlink(missing_ok=True)
        result = subprocess.run(["bash", SUBMIT, *args], env=env, capture_output=True, text=True)
        assert result.returncode == 2 and message in result.stderr and not (tmp_path / "args").exists()
