#!/usr/bin/env bash
# The measured sweep behind distill.train (issue #24): one seed, a KD variant and the CE-only control
# of each pipeline, learning rate x epochs over the distill_unseen split; each result is the teacher
# signal on the probe rows (python -m tide signal). Needs the results of `snakemake align_pipeline`
# for both splits (and the pulled teachers and BD3LM baseline). Two runs at a time, 1 thread each.
#   bash probes/distill_budget.sh OUT_DIR       then: python probes/distill_budget_table.py OUT_DIR
set -euo pipefail
out=${1:?output directory}
mkdir -p "$out"
run() {  # pipeline variant lr epochs
  local p=$1 v=$2 lr=$3 ep=$4 t name dir
  t=$([ "$p" = cross ] && echo a || echo b)
  name="$p-$v-lr$lr-ep$ep"; dir="$out/$name"
  [ -f "$dir/signal.json" ] && return 0
  local cfg="{\"distill\": {\"train\": {\"epochs\": $ep, \"batch_size\": 16, \"lr\": $lr, \"warmup_ratio\": 0.1,
    \"max_grad_norm\": 1.0, \"max_length\": 128, \"save_steps\": 1000, \"logging_steps\": 10}}}"
  local start=$SECONDS
  python -m tide distill --config config/config.yaml --config-json "$cfg" --threads 1 --pipeline "$p" \
    --variant "$v" --seed 0 --init results/students/bd3lm --teacher "results/teachers/$t" \
    --cache "results/align/$p/distill_unseen.safetensors" --tokenizers results/tokenizers \
    --work "$dir/work" --out "$dir/model" > "$dir.log" 2>&1
  echo "$name: trained in $((SECONDS - start)) s" >> "$out/times.txt"
  python -m tide signal --config config/config.yaml --threads 1 --pipeline "$p" --model "$dir/model" \
    --teacher "results/teachers/$t" --cache "results/align/$p/signal_probe.safetensors" \
    --tokenizers results/tokenizers --out "$dir/signal.json" >> "$dir.log" 2>&1
}
export -f run; export out
jobs=()
for ep in 1 2; do for lr in 5e-5 5e-4; do
  jobs+=("shared kl $lr $ep" "shared ce_only $lr $ep" "cross calm $lr $ep" "cross ce_only $lr $ep")
done; done
printf '%s\n' "${jobs[@]}" | xargs -P 2 -L 1 bash -c 'run "$@"' _
