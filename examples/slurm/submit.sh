#!/bin/sh
# The whole chain: the array of shards, then the merge once every shard has succeeded.
# (With a job file that has a quantize stage, run `lmbatch job run --quantize-only JOB.json` first, e.g. as
# a job of its own that the array depends on: shards never quantize on their own.)
set -eu
mkdir -p logs out
array=$(sbatch --parsable examples/slurm/array.sbatch)
sbatch --dependency=afterok:"$array" examples/slurm/merge.sbatch
