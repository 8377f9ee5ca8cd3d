#!/usr/bin/env bash
# Starts Debian's Postgres cluster for the "postgres" test suite, listening on 127.0.0.1 only, and
# (re)creates the test role gigmcp_test with a fresh random password. Prints the server URL and
# writes it to tests/artifacts/postgres-url (never committed). Safe to repeat; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v pg_lsclusters >/dev/null || { echo "postgres-test: the postgresql package is not installed (scripts/system-deps.sh test)" >&2; exit 1; }
cluster=$(pg_lsclusters --no-header | head -n 1)
if [ -z "$cluster" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
  pg_createcluster "$version" main >/dev/null
  cluster=$(pg_lsclusters --no-header | head -n 1)
fi
read -r version name port _ <<<"$cluster"

# Loopback only: the test role has a password, but nothing off this machine should reach it.
conf="/etc/postgresql/$version/$name/conf.d/gigmcp-test.conf"
wanted="listen_addresses = '127.0.0.1'"
changed=false
if [ "$(cat "$conf" 2>/dev/null)" != "$wanted" ]; then
  pg_conftool "$version" "$name" remove listen_addresses
  mkdir -p "$(dirname "$conf")"
  echo "$wanted" > "$conf"
  changed=true
fi
if pg_lsclusters --no-header | awk -v v="$version" -v n="$name" '$1 == v && $2 == n && $4 == "online" { found = 1 } END { exit !found }'; then
  if $changed; then pg_ctlcluster "$version" "$name" restart; fi
else
  pg_ctlcluster "$version" "$name" start
fi

password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
# CREATEDB: each test file creates and drops its own database.
su postgres -c "psql -q -v ON_ERROR_STOP=1 -p $port" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gigmcp_test') THEN CREATE ROLE gigmcp_test LOGIN CREATEDB; END IF;
END \$\$;
ALTER ROLE gigmcp_test WITH LOGIN CREATEDB PASSWORD '$password';
SQL

mkdir -p tests/artifacts
url="postgres://gigmcp_test:$password@127.0.0.1:$port/postgres"
(umask 077 && printf '%s\n' "$url" > tests/artifacts/postgres-url)
echo "postgres-test: cluster $version/$name on 127.0.0.1:$port, role gigmcp_test (URL in tests/artifacts/postgres-url)"
