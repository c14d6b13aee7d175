#!/usr/bin/env bash
# Finds PostgreSQL on 127.0.0.1:5432 or starts the local cluster; fails loudly when neither works.
set -euo pipefail
host=127.0.0.1 port=5432
ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }
if ready; then exit 0; fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "PostgreSQL is not answering on $host:$port; starting cluster $version/main" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
fi
echo "ERROR: no PostgreSQL on $host:$port and none could be started." >&2
echo "The test suite runs against PostgreSQL as well as SQLite; use 'make test-sqlite' to skip it." >&2
exit 1
