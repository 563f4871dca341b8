#!/usr/bin/env bash
# Issue 25 in one call on a lent GPU machine (bare, offline; its python3 holds torch, pandas, seaborn, scipy):
#   run(command="bash experiments/device/senet-direction.sh", carry=[".whl", "data/cifar10-jpeg.tar.gz"])
# Before, here: `echo /.whl/ >> .git/info/exclude`; download the wheels optuna needs into .whl/ (optuna, alembic,
# sqlalchemy, greenlet, mako, colorlog; see /work/.library/device/README.md) and copy the data:
#   cp ../shared/data/cifar10-jpeg.tar.gz data/
# Rehearse on the CPU at a toy budget (the same steps, a 2-epoch, 2-seed, 2,000-image copy of the sweep):
#   TOY=1 PYTHON=.venv/bin/python OUT=/tmp/senet-toy bash experiments/device/senet-direction.sh
# Writes $OUT/results/<sweep>/ (runs.csv, runs/, tables/), $OUT/reports/<sweep>/ and $OUT/log.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:?set OUT to the folder whose files come back}
PY=${PYTHON:-python3}
SWEEP=experiments/senet-direction-cifar10-gpu.yaml
mkdir -p "$OUT"
exec > >(tee "$OUT/log") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ]; then  # optuna and its needs, carried (the machine cannot fetch)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
DATA=${DATA:-data/cifar10}
if [ ! -d "$DATA/train" ]; then
  mkdir -p "$DATA" && tar xzf "${DATA_TAR:-data/cifar10-jpeg.tar.gz}" -C "$DATA"
fi
RESULTS=$OUT/results
if [ -n "${TOY:-}" ]; then  # the same steps at a toy budget: a copy of the sweep with a tiny recipe
  TOYSWEEP=$OUT/senet-direction-toy.yaml
  "$PY" - "$SWEEP" "$TOYSWEEP" <<'PYEOF'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
doc["name"] = "senet-direction-toy"
doc["recipe"].update(epochs=2, train_subset=2000, test_subset=1000, precision="auto")
doc["seeds"] = [0, 1]
yaml.safe_dump(doc, open(sys.argv[2], "w"), sort_keys=False)
PYEOF
  SWEEP=$TOYSWEEP
fi
"$PY" -m sesweep info model.arch=resnet20 | head -3
# throughput of N concurrent runs: a 1-epoch, 5,000-image probe with N seeds; the sum of the runs' training img/s
# (they train at the same time; start-up and the first decode of the data set are not counted)
best=1; best_rate=0
for n in ${PROBE_WORKERS:-1 2 4 8}; do
  probe=$OUT/probe-$n.yaml
  "$PY" - "$SWEEP" "$probe" "$n" <<'PYEOF'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
n = int(sys.argv[3])
doc["name"] = f"probe-{n}"
doc["recipe"].update(epochs=1, train_subset=5000, test_subset=1000)
doc["seeds"] = list(range(n))
doc.pop("variants", None)
doc.pop("baseline", None)
doc["tables"], doc["figures"] = [], []
yaml.safe_dump(doc, open(sys.argv[2], "w"), sort_keys=False)
PYEOF
  "$PY" -m sesweep run "$probe" --workers "$n" --no-tracking --quiet --results "$OUT/probe" --data-root "$DATA"
  rate=$("$PY" -c "import pandas as pd; print(round(pd.read_csv('$OUT/probe/probe-$n/runs.csv')['train_img_per_s'].sum()))")
  echo "throughput probe: $n workers, $rate train img/s together (1 epoch of 5,000 images each)"
  if [ "$rate" -gt "$best_rate" ]; then best=$n; best_rate=$rate; fi
done
echo "workers: $best"
"$PY" -m sesweep run "$SWEEP" --workers "$best" --no-tracking --quiet --results "$RESULTS" --data-root "$DATA"
"$PY" -m sesweep aggregate "$SWEEP" --results "$RESULTS"
"$PY" -m sesweep report "$SWEEP" --results "$RESULTS" --out "$OUT/reports/$(basename "$SWEEP" .yaml)"
cat "$RESULTS"/*/tables/overall.md 2>/dev/null || ls -R "$RESULTS" | head -40
