#!/usr/bin/env bash
# The delegation properties, long: random management calls over HTTP on `policies/` (its scopes
# and customer access) and on every policy folder (roles, flags, add-ons from its roles.toml);
# after each allowed call, the changed user holds no right its caller lacks. Prints the figures.
# PROPTEST_CASES sequences per test and per folder (default 60; CI runs 8 and 3).
# Run from the workspace root. See README.md beside this script.
set -euo pipefail
export PROPTEST_CASES="${PROPTEST_CASES:-60}"
exec cargo test -q -p portcullis-server --test integration -- \
  delegation::no_manager_gives_what_it_does_not_hold \
  folder_delegation::no_manager_of_any_folder_gives_what_it_does_not_hold \
  --exact --nocapture --test-threads 1
