#!/bin/sh
# The docker backend's speed: 100 no-op steps of one image applied through
# the executor on the Docker backend, one at a time and two at a time,
# against a shell loop of `docker run --rm` of the same image with the same
# settings (--init, no network), all in one run. Needs a Docker Engine
# (as root: dockerd > /tmp/dockerd.log 2>&1 &) and the docker CLI.
#
# Reported: loop-s, seq-s, par2-s (seconds per 100 steps), seq/loop and
# par2/loop (the targets: <= 1.1 and < 1), and milliseconds per step.
# Environment: BENCH_RUNS (default 3).
set -eu
cd "$(dirname "$0")/../.."
GO=${GO:-go}
exec $GO test -run '^$' -bench NoopSteps -benchtime 1x -count "${BENCH_RUNS:-3}" ./plugins/docker/
