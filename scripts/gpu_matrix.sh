#!/usr/bin/env bash
# The GPU measurements in one command (ours only: gensim has no GPU code; compare with the CPU
# gensim rows in docs/results.md). Runbook: docs/gpu.md. Run from the repository root on a machine with CUDA:
#
#   bash scripts/gpu_matrix.sh CORPUS EVAL_DIR OUT_DIR [DEVICE]
#
# CORPUS: wiki17m.txt.gz (or any corpus); EVAL_DIR: a folder with questions-words.txt,
# wordsim353.tsv and simlex999.txt (../shared/eval here); DEVICE: cuda (default) or cpu for a
# dry run. Needs torch, numpy, scipy, typer, tqdm (PYTHON=... picks the interpreter); not gensim. Writes one JSON per row and
# summary.txt into OUT_DIR. Rows:
#   neg  dim 100, configs/gpu.toml, 5 epochs: speed and quality (the >= 20M words/s target)
#   nce  dim 100 / neg dim 300 / nce dim 300, 1 epoch: speed
#   skip-gram neg, CBOW hs, skip-gram hs, dim 100, 1 epoch: speed and quality
#   softmax at vocabulary 30k and 70k, 1 epoch: speed
#   subwords (minn 3, maxn 6, 2M buckets): skip-gram neg and CBOW neg, dim 100, 1 epoch: speed and quality
# before them, tests/test_cuda.py (the device's step against the CPU's).
# EXTRA="--max-tokens 200000" limits the corpus for a quick check.
set -euo pipefail
corpus=$1 evals=$2 out=$3 device=${4:-cuda}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
common=(--skip-gensim --corpus "$corpus" --device "$device" --config configs/gpu.toml
        --questions "$evals/questions-words.txt" --wordsim "$evals/wordsim353.tsv" --simlex "$evals/simlex999.txt")
row() {  # name, then options for scripts/bench_vs_gensim.py
  local name=$1; shift
  "${PYTHON:-python3}" scripts/bench_vs_gensim.py "${common[@]}" ${EXTRA:-} "$@" --json "$out/$name.json" >"$out/$name.log" 2>&1 \
    || { echo "$name: failed, see $out/$name.log" | tee -a "$out/summary.txt"; return 0; }
  "${PYTHON:-python3}" - "$out/$name.json" "$name" <<'PY' | tee -a "$out/summary.txt"
import json, sys
r = json.load(open(sys.argv[1]))
o, s = r["ours"], r["settings"]
print(f"{sys.argv[2]:14s} {o['words_per_sec']:>14,.0f} words/s  analogy {o['analogy_accuracy']:.2%}  "
      f"WS353 {o['ws353_spearman']:.4f}  vocab {o['vocab_size']:,}  {s['arch']} loss {s['loss']} dim {s['dim']} "
      f"batch {s['batch_size']} epochs {s['epochs']} on {s['device_resolved']} ({r['machine']['gpu'] or 'cpu'})")
PY
}
# First the GPU path against the CPU (tests/test_cuda.py; pytest is on the GPU image): a row's
# numbers mean nothing if a step on the device differs from the tested CPU step.
if W2V_NCE_TEST_DEVICE=$device "${PYTHON:-python3}" -m pytest -q -p no:cacheprovider tests/test_cuda.py \
     >"$out/test_cuda.log" 2>&1; then
  echo "tests/test_cuda.py on $device: passed" | tee -a "$out/summary.txt"
else
  echo "tests/test_cuda.py on $device: FAILED, see $out/test_cuda.log" | tee -a "$out/summary.txt"
fi
printf 'max_vocab = 30000\n' >"$out/v30k.toml"
printf 'max_vocab = 70000\n' >"$out/v70k.toml"
printf 'minn = 3\nmaxn = 6\nbuckets = 2000000\n' >"$out/subwords.toml"
row neg_d100 --loss neg --dim 100
row nce_d100 --loss nce --dim 100 --epochs 1
row neg_d300 --loss neg --dim 300 --epochs 1
row sg_neg_d100 --arch skipgram --loss neg --dim 100 --epochs 1
row cbow_hs_d100 --loss hs --dim 100 --epochs 1
row sg_hs_d100 --arch skipgram --loss hs --dim 100 --epochs 1
row nce_d300 --loss nce --dim 300 --epochs 1
for v in 30k 70k; do
  # the preset's keys, then the vocabulary cap: bench_vs_gensim.py takes one --config
  cat configs/gpu.toml "$out/v$v.toml" >"$out/softmax_$v.toml"
  row "softmax_v$v" --loss softmax --dim 100 --epochs 1 --config "$out/softmax_$v.toml"
done
cat configs/gpu.toml "$out/subwords.toml" >"$out/gpu_subwords.toml"
row sg_sub_d100 --arch skipgram --loss neg --dim 100 --epochs 1 --config "$out/gpu_subwords.toml"
row cbow_sub_d100 --loss neg --dim 100 --epochs 1 --config "$out/gpu_subwords.toml"
