#!/bin/sh
# Entrypoint of the assay container (Containerfile): wait for the store, create the
# first admin key once if asked to, then run `assay serve` in the foreground.
#
#   ASSAY_DB                        store URL (postgresql://... or an SQLite path)
#   ASSAY_WORKERS (2), ASSAY_PORT (8080), ASSAY_HOST (0.0.0.0)
#   ASSAY_DB_WAIT_SECONDS (60)      how long to wait for the store at start
#   ASSAY_BOOTSTRAP_ADMIN_KEY_FILE  if set and the file does not exist: an admin key is
#                                   created and written there (mode 600), once
# Other settings: ASSAY_SERVICE_* and ASSAY_REDIS_URL (docs/service.md, docs/operations.md).
set -eu

: "${ASSAY_DB:?set ASSAY_DB to the store URL}"
workers="${ASSAY_WORKERS:-2}"
port="${ASSAY_PORT:-8080}"
host="${ASSAY_HOST:-0.0.0.0}"
wait_s="${ASSAY_DB_WAIT_SECONDS:-60}"

# The store answers (and is brought to the newest schema) before anything else.
waited=0
until assay --db "$ASSAY_DB" --create keys list --json >/dev/null 2>/tmp/assay-store-check; do
    if [ "$waited" -ge "$wait_s" ]; then
        echo "assay-entrypoint: the store did not answer within ${wait_s} s:" >&2
        cat /tmp/assay-store-check >&2
        exit 1
    fi
    sleep 2
    waited=$((waited + 2))
done
rm -f /tmp/assay-store-check

key_file="${ASSAY_BOOTSTRAP_ADMIN_KEY_FILE:-}"
if [ -n "$key_file" ] && [ ! -e "$key_file" ]; then
    umask 077
    assay --db "$ASSAY_DB" keys create --role admin --name bootstrap-admin >"$key_file.tmp"
    mv "$key_file.tmp" "$key_file"
    echo "assay-entrypoint: created the first admin key in $key_file" >&2
fi

exec assay --db "$ASSAY_DB" serve --host "$host" --port "$port" --workers "$workers" "$@"
