#!/usr/bin/env bash
# Submits variants × seed groups as ONE SLURM job array (docs/cluster.md). Task t trains variant
# t / NUM_GROUPS (the lines of VARIANTS_FILE: NAME SCRIPT FLAGS..., flags split at spaces) on the
# SEEDS_PER_GROUP seeds from (t % NUM_GROUPS) * SEEDS_PER_GROUP, into ARRAY_DIR/<NAME>_s<seed>/;
# experiments/slurm/task.sbatch runs each task, requeued until its run is finished.
# Usage: experiments/slurm/submit.sh ARRAY_DIR VARIANTS_FILE NUM_GROUPS SEEDS_PER_GROUP [sbatch options...]
#   e.g. experiments/slurm/submit.sh runs/chain_array experiments/slurm/chain.txt 2 5 --time=2:00:00
#   SLURM_MARGIN_S=300   seconds of each job that are not training: start, compile, last chunk, checkpoint
#   SBATCH=sbatch        the submit command (tests: a stand-in that prints its arguments)
# Submitting again with the same ARRAY_DIR and VARIANTS_FILE continues every run that is not finished.
set -euo pipefail
(($# >= 4)) || { echo "error: give ARRAY_DIR VARIANTS_FILE NUM_GROUPS SEEDS_PER_GROUP [sbatch options...]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)  # the training scripts are at the repository's root
source "$root/experiments/variants.sh"
array=$(realpath -m -- "$1") variants=$2 groups=$3 per_group=$4
shift 4
margin=${SLURM_MARGIN_S:-300}
for pair in "NUM_GROUPS=$groups" "SEEDS_PER_GROUP=$per_group" "SLURM_MARGIN_S=$margin"; do
  [[ ${pair#*=} =~ ^[1-9][0-9]*$ ]] || { echo "error: ${pair%%=*} must be a positive integer, got '${pair#*=}'" >&2; exit 2; }
done
load_variants "$variants"  # every line checked before anything is submitted

# The tasks read the variants from the array folder, a copy that cannot change under them (task
# numbers stand for its lines): another list for an existing folder is refused.
mkdir -p "$array/logs"
if [[ -f $array/variants.txt ]]; then
  cmp -s "$variants" "$array/variants.txt" \
    || { echo "error: $array was submitted with other variants ($array/variants.txt)" >&2; exit 2; }
else
  cp "$variants" "$array/variants.txt"
fi
tasks=$((${#variant_lines[@]} * groups))
job=$(${SBATCH:-sbatch} --parsable --array="0-$((tasks - 1))" --job-name="$(basename "$array")" \
  --chdir="$root" --output="$array/logs/%A_%a.out" "$@" \
  "$root/experiments/slurm/task.sbatch" "$array" "$groups" "$per_group" "$margin")
echo "submitted array ${job%%;*}: ${#variant_lines[@]} variants x $groups seed groups = $tasks tasks, logs in $array/logs/"
echo "follow it with: squeue -j ${job%%;*}; then: python plot.py $array"
