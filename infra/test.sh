#!/usr/bin/env bash
# `make test`: start the real services the tests need, run every test, stop them
# again (also on failure).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
started=$(date +%s)

cleanup() {
  if [ "${NUMREP_STARTED_CASSANDRA:-0}" = 1 ]; then
    bash infra/cassandra/cassandra.sh stop || true
  fi
}
trap cleanup EXIT

if [ "${NUMREP_TEST_CASSANDRA:-auto}" != "off" ] && [ -f infra/cassandra/cassandra.sh ] && [ -f services/numrep/store/cassandra.py ]; then
  bash infra/cassandra/cassandra.sh fetch
  bash infra/cassandra/cassandra.sh start
  NUMREP_STARTED_CASSANDRA=1
  export NUMREP_TEST_CASSANDRA="${NUMREP_CASSANDRA_CONTACT:-127.0.0.1:9042}"
fi

bash infra/browser.sh  # headless Chromium for tests/web (apt-get, once per machine)

"$PY" -m pytest -q -p no:cacheprovider "$@"
echo "make test: finished in $(( $(date +%s) - started )) s"
