#!/usr/bin/env bash
# The GPU check of a step bundle: JAX runs the exported XLA train_step, PyTorch the same algorithm
# (pytorch_reference.py), on the same card, most important row first, within DEVICE_CHECK_BUDGET seconds.
#
#   bash <bundle>/device_check.sh                      # writes <bundle>/device_check.jsonl, prints a table
#   DEVICE_CHECK_BUDGET=420 PYTHON=python3.12 bash <bundle>/device_check.sh
#
# scripts/export_step.py writes the bundle and copies this file, run_step.py and
# pytorch_reference.py into it; device_check.tsv lists the rows (kind, setting, batch, precision, cap
# in seconds, pytorch_reference.py's size flags). A row starts only if its cap fits in what is left of the budget, and runs under
# `timeout` with that cap, so the whole check ends within the budget. Needs numpy and jax/jaxlib for
# the JAX rows and torch for the PyTorch rows (rows whose package is missing are recorded as skipped).
set -u
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
BUDGET=${DEVICE_CHECK_BUDGET:-420}
RESULTS=${DEVICE_CHECK_RESULTS:-device_check.jsonl}
: > "$RESULTS"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tail -1
has_jax=$("$PYTHON" -c "import jax" 2>/dev/null && echo 1 || echo 0)
has_torch=$("$PYTHON" -c "import torch" 2>/dev/null && echo 1 || echo 0)
started=$SECONDS

record() {  # record KIND SETTING BATCH PRECISION STATUS [JSON]
    local json=${6:-null}
    printf '{"kind": "%s", "setting": "%s", "batch_size": %s, "precision": "%s", "status": "%s", "result": %s}\n' \
        "$1" "$2" "$3" "$4" "$5" "$json" >> "$RESULTS"
}

while IFS=$'\t' read -r kind setting batch precision cap size_flags; do
    [[ -z "$kind" || "$kind" == \#* ]] && continue
    left=$((BUDGET - (SECONDS - started)))
    if ((cap > left)); then
        record "$kind" "$setting" "$batch" "$precision" "skipped: ${cap} s cap, ${left} s of the budget left"
        continue
    fi
    case "$kind" in
        jax)
            ((has_jax)) || { record "$kind" "$setting" "$batch" "$precision" "skipped: no jax"; continue; }
            command=("$PYTHON" run_step.py "$setting" --program=loop --warmup=2 --repeats=5) ;;
        torch|torch_compile)
            ((has_torch)) || { record "$kind" "$setting" "$batch" "$precision" "skipped: no torch"; continue; }
            read -ra sizes <<< "$size_flags"
            command=("$PYTHON" pytorch_reference.py "${sizes[@]}" --batch_size="$batch" --precision="$precision"
                     --train_step_only --warmup=1 --repeats=3)
            [[ "$kind" == torch_compile ]] && command+=(--compile) ;;
        *) record "$kind" "$setting" "$batch" "$precision" "skipped: unknown kind"; continue ;;
    esac
    echo "[$((SECONDS - started)) s] $kind $setting (cap ${cap} s): ${command[*]}" >&2
    output=$(timeout -k 10 "$cap" "${command[@]}" < /dev/null 2> "$RESULTS.$kind.$setting.log")
    status=$?
    json=$(printf '%s\n' "$output" | grep '^{' | tail -1)
    if ((status == 124 || status == 137)); then
        record "$kind" "$setting" "$batch" "$precision" "timed out after ${cap} s" "${json:-null}"
    else
        record "$kind" "$setting" "$batch" "$precision" "exit $status" "${json:-null}"
    fi
done < device_check.tsv

"$PYTHON" - "$RESULTS" <<'EOF'
import json, sys
print("| row | setting | status | ms/step | images/s | compile or first call s | peak MiB | losses finite |")
print("|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    row = json.loads(line)
    result = row["result"] or {}
    if row["kind"] == "jax":
        ms, first = result.get("ms_per_step"), result.get("compile_seconds")
        peak = result.get("peak_device_memory_mib") or result.get("program_memory_mib")
    else:
        seconds = result.get("train_step_seconds")
        ms, first = (None if seconds is None else round(1000 * seconds, 1)), result.get("first_train_step_seconds")
        peak = result.get("peak_memory_mb")
        if result.get("error"):
            row["status"] += ": " + result["error"][:80]
    images = result.get("images_per_second")
    print(f"| {row['kind']} | {row['setting']} | {row['status']} | {ms} | {images and round(images, 1)} | "
          f"{first and round(first, 1)} | {peak} | {result.get('finite_losses')} |")
EOF
echo "device check: $((SECONDS - started)) s, rows in $PWD/$RESULTS" >&2
