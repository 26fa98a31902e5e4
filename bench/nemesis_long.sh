#!/bin/sh
# nemesis_long.sh: the long nemesis run whose figures are in
# docs/reliability.md ("The nemesis run").
#
#   bench/nemesis_long.sh [BUILD] [MINUTES] [MODE] [SEED] [MAX_CONCURRENT]
#
# Defaults: BUILD=build, 30 minutes, redis (the mode with every fault kind),
# a seed drawn for the run, 3 faults at most at once. Runs
# BUILD/tests/nemesis/nemesis (tests/nemesis/main.cpp) and keeps its whole
# report in nemesis-<mode>-<seed>.log in the current directory: the seed and
# the command that replays it, the timeline, faults by kind with recovery
# times, events acknowledged, lost and duplicated. Exit status: nemesis's
# (0 = lost 0 and duplicated 0).
set -eu
BUILD=${1:-build}
MINUTES=${2:-30}
MODE=${3:-redis}
SEED=${4:-random}
CONCURRENT=${5:-3}
if [ "$SEED" = random ]; then SEED=$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); fi
LOG="nemesis-$MODE-$SEED.log"
echo "nemesis_long: $MODE store, seed $SEED, $MINUTES min, at most $CONCURRENT faults at once; report in $LOG"
rc=0
"$BUILD/tests/nemesis/nemesis" --mode "$MODE" --seed "$SEED" --duration $((MINUTES * 60)) \
  --max-concurrent "$CONCURRENT" >"$LOG" 2>&1 || rc=$?
sed -n '/^faults by kind/,$p' "$LOG" | head -40
exit $rc
