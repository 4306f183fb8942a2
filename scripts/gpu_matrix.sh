#!/usr/bin/env bash
# The GPU measurements in one command (runbook and the numbers they test: docs/gpu.md). Run from
# the repository root on a machine with CUDA:
#
#   bash scripts/gpu_matrix.sh CORPUS EVAL_DIR OUT_DIR [DEVICE]
#
# CORPUS: wiki17m.txt.gz; EVAL_DIR: a folder with questions-words.txt, wordsim353.tsv and
# simlex999.txt; DEVICE: cuda (default) or cpu, a dry run (there the new step is the C kernel, the
# Triton kernel's CPU twin, and the sync check runs unchecked). Needs torch, triton, numpy, scipy,
# typer, tqdm (PYTHON=... picks the interpreter), not gensim. In this order, each step's output in
# OUT_DIR and one line of it in OUT_DIR/summary.txt:
#   1. tests/test_cuda.py: the device's steps against the CPU's (the Triton kernel against the C
#      kernel, which is built first for that)
#   2. one epoch of the Triton step with torch.cuda.set_sync_debug_mode("error") (scripts/sync_check.py)
#   3. configs/gpu.toml on the eager batched step and on the Triton kernel, words/s and quality side by side: CBOW-NS
#      on the first 4M tokens x 3 epochs (the quality check of issue 19) and on all of CORPUS x 5
#      epochs (and the Triton kernel at 512 programs: the words/s scale with them if latency binds);
#      SG-NS and NCE on all of CORPUS x 1 epoch; softmax (batched only: the Triton kernel trains the
#      logistic losses)
#   4. torchrun over NCCL on this GPU (issue 22): one rank through the distributed code path against
#      the same run in one process, the new step, 4M tokens x 1 epoch (scripts/bench_ddp.py; NCCL
#      takes a GPU a rank, so 2 ranks need 2 GPUs)
#   5. while time is left (MATRIX_SECONDS, 540 by default): subwords (minn 3, maxn 6, 2M buckets;
#      skip-gram and CBOW neg, 1 epoch, the batched step: the Triton kernel has none yet), the launch
#      budget of both steps (scripts/launch_budget.py, CUDA's own kernel counts), CBOW-HS and dim 300
# EXTRA="--max-tokens 100000" limits every row's corpus (the dry run: tests/test_gpu_matrix.py).
set -uo pipefail
corpus=$1 evals=$2 out=$3 device=${4:-cuda}
PY=${PYTHON:-python3}
budget=${MATRIX_SECONDS:-540}
mkdir -p "$out"
: >"$out/summary.txt"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
new=triton
[[ $device == cpu ]] && new=kernel
note() { echo "$*" | tee -a "$out/summary.txt"; }
common=(--corpus "$corpus" --skip-gensim --defaults --no-cross-check --device "$device"
        --questions "$evals/questions-words.txt" --wordsim "$evals/wordsim353.tsv" --simlex "$evals/simlex999.txt")
row() {  # name, preset lines (TOML), then options for scripts/bench_vs_gensim.py
  local name=$1 preset=$2; shift 2
  printf '%b' "$preset" >"$out/$name.toml"
  timeout 300 "$PY" scripts/bench_vs_gensim.py "${common[@]}" --config "$out/$name.toml" "$@" ${EXTRA:-} \
      --json "$out/$name.json" >"$out/$name.log" 2>&1 \
    || { note "$name: failed, see $out/$name.log"; return 0; }
  "$PY" - "$out/$name.json" "$name" <<'PY' | tee -a "$out/summary.txt"
import json, sys
r = json.load(open(sys.argv[1]))
o, s = r["ours"], r["settings"]
print(f"{sys.argv[2]:22s} {o['words_per_sec']:>14,.0f} words/s  analogy {o['analogy_accuracy']:.2%}  "
      f"WS353 {o['ws353_spearman']:.4f}  SimLex {o['simlex_spearman']:.4f}  {s['arch']} {s['loss']} dim {s['dim']} "
      f"epochs {s['epochs']} on {s['device_resolved']} ({r['machine']['gpu'] or 'cpu'})")
PY
}
preset() {  # configs/gpu.toml with another step and, given, programs (--device overrides its device)
  sed -e "s/^step = .*/step = \"$1\"/" ${2:+-e "s/^programs = .*/programs = $2/"} configs/gpu.toml
}
pair() {  # name, preset lines, options: configs/gpu.toml on the eager batched step, then on the new one
  local name=$1 extra=$2; shift 2
  row "${name}_batched" "$(preset batched)\n$extra" "$@"
  row "${name}_$new" "$(preset "$new")\n$extra" "$@"
  "$PY" - "$out/${name}_batched.json" "$out/${name}_$new.json" "$name" <<'PY' | tee -a "$out/summary.txt"
import json, os, sys
if all(os.path.exists(p) for p in sys.argv[1:3]):
    old, new = (json.load(open(p))["ours"] for p in sys.argv[1:3])
    ratio = lambda key: f"{new[key] / old[key]:.3f}" if old[key] else "-"
    print(f"{sys.argv[3]:22s} new/batched: words/s {new['words_per_sec'] / old['words_per_sec']:.1f}x  analogy "
          f"{ratio('analogy_accuracy')}  WS353 {ratio('ws353_spearman')}")
PY
}

# 1. The device's steps against the CPU's: a row's numbers mean nothing if the step differs.
"$PY" -c "from w2v_nce import fused; assert fused.AVAILABLE" 2>/dev/null \
  || "$PY" setup.py build_ext --inplace -q >"$out/build.log" 2>&1 || note "C kernel not built (see build.log)"
if W2V_NCE_TEST_DEVICE=$device "$PY" -m pytest -p no:cacheprovider -rs tests/test_cuda.py >"$out/test_cuda.log" 2>&1; then
  note "tests/test_cuda.py on $device: passed ($(tail -1 "$out/test_cuda.log"))"
else
  note "tests/test_cuda.py on $device: FAILED, see $out/test_cuda.log"
fi

# 2. No host sync inside an epoch.
sync_tokens=2000000
[[ -n ${EXTRA:-} ]] && sync_tokens=100000
if "$PY" scripts/sync_check.py "$corpus" --device "$device" --step "$( [[ $device == cpu ]] && echo auto || echo triton )" \
     --max-tokens "$sync_tokens" --json "$out/sync_check.json" >"$out/sync_check.log" 2>&1; then
  note "sync check: $(tail -1 "$out/sync_check.log")"
else
  note "sync check: FAILED, see $out/sync_check.log"
fi

# 3. The eager batched step against the new one.
pair cbow_neg_4m "" --max-tokens 4000000 --epochs 3 --workdir "$out/work_4m"
pair cbow_neg "" --epochs 5 --workdir "$out/work_all"
row "cbow_neg_p512_$new" "$(preset "$new" 512)\n" --epochs 5 --workdir "$out/work_all"  # 4x the words/s if latency binds
pair sg_neg "" --arch skipgram --epochs 1 --workdir "$out/work_all"
pair nce "learn_log_z = true\n" --loss nce --epochs 1 --workdir "$out/work_all"
row softmax_v30k_batched 'step = "batched"\nmax_vocab = 30000\n' --loss softmax --epochs 1 --workdir "$out/work_all"

# 4. torchrun over NCCL on this one GPU: one rank through the distributed code path.
preset "$new" >"$out/ddp.toml"
if timeout 300 "$PY" scripts/bench_ddp.py --corpus "$corpus" --eval-dir "$evals" --device "$device" --ranks 1 \
     --preset "$out/ddp.toml" --epochs 1 --max-tokens 4000000 --workdir "$out/work_ddp" ${EXTRA:-} \
     --json "$out/ddp.json" >"$out/ddp.log" 2>&1; then
  "$PY" - "$out/ddp.json" <<'PY' | tee -a "$out/summary.txt"
import json, sys
r = json.load(open(sys.argv[1]))
one, ddp, q = r["runs"]["one"], r["runs"]["ddp"], r["ratios_to_one"]["ddp"]
f = lambda x: "-" if x is None else f"{x:.3f}"
print(f"{'torchrun_1rank':22s} {ddp['words_per_sec']:>14,.0f} words/s, alone {one['words_per_sec']:,.0f}: words/s "
      f"{f(q['words_per_sec'])}x, end to end {f(q['end_to_end'])}x, analogy {f(q['analogy'])}, WS353 {f(q['ws353'])}")
PY
else
  note "torchrun_1rank: failed, see $out/ddp.log"
fi

# 5. While time is left.
printf 'minn = 3\nmaxn = 6\nbuckets = 2000000\n' >"$out/subwords.toml"
(( SECONDS < budget )) && row sg_sub_batched "$(preset batched)\n$(cat "$out/subwords.toml")\n" --arch skipgram --epochs 1 \
    --workdir "$out/work_all"
(( SECONDS < budget )) && row cbow_sub_batched "$(preset batched)\n$(cat "$out/subwords.toml")\n" --epochs 1 \
    --workdir "$out/work_all"
if (( SECONDS < budget )); then
  for step in batched "$new"; do
    "$PY" scripts/launch_budget.py --device "$device" --step "$step" --json "$out/launch_budget_$step.json" \
        >"$out/launch_budget_$step.log" 2>&1 && grep "words/s" "$out/launch_budget_$step.log" | tee -a "$out/summary.txt"
  done
fi
(( SECONDS < budget )) && row "cbow_hs_$new" "$(preset "$new")\n" --loss hs --epochs 1 --workdir "$out/work_all"
(( SECONDS < budget )) && row "cbow_neg_d300_$new" "$(preset "$new")\n" --dim 300 --epochs 1 --workdir "$out/work_all"
note "gpu_matrix.sh: ${SECONDS}s on $device"
