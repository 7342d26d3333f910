#!/usr/bin/env bash
# What the slurm executor's tests need (tests/sweep/test_slurm.py): submitit, through rdvae's [slurm]
# extra, and Debian's Slurm and munge for the slow tests, which start their own single-node cluster
# (tests/sweep/slurm_cluster.py: munged, slurmctld and slurmd as root, every file in a temporary folder;
# nothing here configures or starts a daemon, and the machine's own /etc/slurm and /etc/munge are not used).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
python -m pip install --quiet -e ".[slurm]"
