#!/bin/bash
# The sequence that was run, one gate after another on an otherwise quiet machine:
# A/A (two copies of one tree), 10% slower with the gate's own repeats, 25% slower in a
# single pass. /tmp/gatex held driver/ (this tree's resnets, which runs the gate), base/
# and base2/ (copies of it), slow10/ and slow25/ (copies with slow10.diff applied).
cd /tmp/gatex
for spec in aa1:base2:auto s10-1:slow10:auto aa2:base2:auto aa3:base2:auto s10-2:slow10:auto \
            aa4:base2:auto s25-1:slow25:1 aa5:base2:auto aa6:base2:auto aa7:base2:auto \
            aa8:base2:auto aa9:base2:auto aa10:base2:auto; do
  IFS=: read label head rep <<< "$spec"
  ./run.sh $label $head $rep
done
