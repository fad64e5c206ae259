#!/usr/bin/env bash
# Restores the schemas backed up by backup.sh from DIR into the database of MIGRATION_DATABASE_URL
# (else DATABASE_URL), checking each archive against the manifest first.
#
#   deploy/backup/restore.sh DIR [--clean] [--grant-to ROLE]
#
# A schema that exists already is refused (exit 1) unless --clean, which drops it first: stop the
# services before that. --grant-to ROLE gives the runtime role its read/write rights again (as
# `helpdesk migrate --grant-to` does). The services then start as usual: their migrations find the
# restored schema_version and apply only what is newer.
set -euo pipefail
dir=${1:?usage: restore.sh DIR [--clean] [--grant-to ROLE]}; shift
clean=0; grant_to=${MIGRATION_GRANT_TO:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --clean) clean=1 ;;
    --grant-to) grant_to=${2:?--grant-to needs a role}; shift ;;
    *) echo "restore: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$grant_to" ] && ! [[ "$grant_to" =~ ^[a-z_][a-z0-9_]{0,40}$ ]]; then
  echo "restore: invalid role name '$grant_to' (lower-case letters, digits and _ only)" >&2; exit 2
fi
url=${MIGRATION_DATABASE_URL:-${DATABASE_URL:-postgresql://helpdesk:helpdesk@127.0.0.1:55432/helpdesk}}
tool() {
  local found; found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$found" ] && [ -x "$found/$1" ]; then echo "$found/$1"; else command -v "$1" || { echo "restore: $1 not found" >&2; exit 1; }; fi
}
pg_restore=$(tool pg_restore); psql=$(tool psql)
[ -f "$dir/manifest.txt" ] || { echo "restore: $dir/manifest.txt not found: not a backup.sh directory" >&2; exit 1; }
schemas=$(grep -v '^taken_at ' "$dir/manifest.txt" | cut -d' ' -f1)
for schema in $schemas; do  # every archive intact before anything is touched
  expected=$(grep "^$schema " "$dir/manifest.txt" | cut -d' ' -f2)
  actual=$(sha256sum "$dir/$schema.dump" | cut -d' ' -f1)
  [ "$expected" = "$actual" ] || { echo "restore: $dir/$schema.dump does not match the manifest: not restoring" >&2; exit 1; }
done
for schema in $schemas; do
  exists=$("$psql" "$url" -tAc "SELECT 1 FROM pg_namespace WHERE nspname = '$schema'")
  if [ "$exists" = "1" ]; then
    if [ "$clean" = "1" ]; then
      "$psql" "$url" -q -c "DROP SCHEMA $schema CASCADE"
    else
      echo "restore: schema $schema exists in the target database: restore into an empty one, or add --clean (stop the services first)" >&2
      exit 1
    fi
  fi
done
for schema in $schemas; do
  "$pg_restore" --dbname="$url" --no-owner --no-privileges --exit-on-error "$dir/$schema.dump"
  if [ -n "$grant_to" ]; then
    "$psql" "$url" -q -v ON_ERROR_STOP=1 -c "GRANT USAGE ON SCHEMA $schema TO $grant_to; \
      GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA $schema TO $grant_to; \
      GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA $schema TO $grant_to"
  fi
  echo "restore: schema $schema restored from $dir/$schema.dump" >&2
done
