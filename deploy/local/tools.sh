#!/usr/bin/env bash
# Installs the command-line tools the tests and the demo use, from Debian packages, when missing:
# promtool and prometheus (alert rules checks, the demo's Prometheus server) and amtool
# (deploy/alertmanager/alertmanager.yml checked).
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "[tools] promtool/prometheus/amtool missing: install Debian's 'prometheus' and 'prometheus-alertmanager' packages (needs root)" >&2
  exit 1
fi
echo "[tools] installing prometheus (promtool) and prometheus-alertmanager (amtool) from Debian packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null 2>&1 || {
  echo "[tools] apt-get install prometheus prometheus-alertmanager failed" >&2; exit 1; }
# Debian starts the packaged servers as system services; the project runs its own when it needs one.
for server in prometheus prometheus-alertmanager; do
  (systemctl stop "$server" 2>/dev/null || service "$server" stop 2>/dev/null || pkill -x "$server") >/dev/null 2>&1 || true
done
