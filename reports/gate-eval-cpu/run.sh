#!/bin/bash
# usage: run.sh LABEL HEAD REPEATS  -> one gate run, base vs HEAD, quick preset narrowed
cd /tmp/gatex
label=$1; head=$2; rep=${3:-auto}
out=runs/$label
PYTHONPATH=/tmp/gatex/driver /work/venv/bin/python -m resnets gate --base-src /tmp/gatex/base --head-src /tmp/gatex/$head \
  --preset quick --models lenet,resnet20,resnet18 --devices cpu --repeats $rep -o $out > $out.log 2>&1
echo "$label exit $?" >> /tmp/gatex/summary.txt
