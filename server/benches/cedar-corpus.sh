#!/usr/bin/env bash
# Cedar's integration corpus through every route that decides (CLI, batch with inline entities,
# `serve --entities` with the caches on and off), all of it; prints the figures.
# See README.md beside this script. Run from the workspace root.
# PORTCULLIS_CEDAR_CORPUS=N runs every Nth generated test instead of all;
# PORTCULLIS_CEDAR_CORPUS_JOBS tests run at once (default 2);
# PORTCULLIS_CEDAR_CORPUS_DIR is the corpus (default /work/shared/cedar-integration-tests).
set -euo pipefail
export PORTCULLIS_CEDAR_CORPUS="${PORTCULLIS_CEDAR_CORPUS:-all}"
exec cargo test -q -p portcullis-server --test integration \
  cedar_corpus::every_route_decides_as_cedar_over_its_corpus -- --exact --nocapture
