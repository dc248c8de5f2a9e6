# Sourced, not run: the variants files (experiments/slurm/chain.txt, snake.txt) are where each variant's
# command line is written, and every script that trains variants reads them through these functions.
# A variants file holds one variant a line, NAME SCRIPT FLAGS... (flags split at spaces; blank lines and
# lines starting with # are skipped). A flag given after a line's own overrides it: the training scripts
# take an option's last value (chain.sh's NUM_UPDATES over the file's --num-updates 50000). paper_budget.sh
# and slurm/submit.sh keep a copy in the folder they start and refuse another text there: an edit to a file,
# even of a comment, means a new folder.

# load_variants FILE: the file's variant lines into the array `variant_lines`, each checked: a plain name
# that no other line has (it names the run folders) and one of the four training scripts. Else one line
# on stderr and exit 2.
load_variants() {
  local file=$1 line words
  local -A seen=()
  [[ -f $file ]] || { echo "error: VARIANTS_FILE '$file' is not a file" >&2; exit 2; }
  mapfile -t variant_lines < <(grep -v -E '^[[:space:]]*(#|$)' "$file")
  ((${#variant_lines[@]})) || { echo "error: '$file' has no variant lines" >&2; exit 2; }
  for line in "${variant_lines[@]}"; do
    read -r -a words <<<"$line"
    [[ ${words[0]} =~ ^[A-Za-z0-9_.-]+$ && -z ${seen[${words[0]}]:-} ]] \
      || { echo "error: variant name '${words[0]}' is not unique or not a plain name" >&2; exit 2; }
    [[ ${words[1]:-} =~ ^(mg|bmg)_(chain|snake)\.py$ ]] \
      || { echo "error: variant '${words[0]}': '${words[1]:-}' is not one of the training scripts" >&2; exit 2; }
    seen[${words[0]}]=1
  done
}

# run_variants FILE [FLAGS...]: python SCRIPT ITS_FLAGS FLAGS... for every line of FILE, in the file's order.
run_variants() {
  local file=$1 line words
  shift
  load_variants "$file"
  for line in "${variant_lines[@]}"; do
    read -r -a words <<<"$line"
    python "${words[@]:1}" "$@"
  done
}

# run_variant FILE NAME [FLAGS...]: python SCRIPT ITS_FLAGS FLAGS... for the line NAME of FILE.
run_variant() {
  local file=$1 name=$2 line words
  shift 2
  load_variants "$file"
  for line in "${variant_lines[@]}"; do
    read -r -a words <<<"$line"
    if [[ ${words[0]} == "$name" ]]; then
      python "${words[@]:1}" "$@"
      return
    fi
  done
  echo "error: $file has no variant '$name'" >&2
  exit 2
}
