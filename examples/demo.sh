#!/usr/bin/env bash
# The main job on a machine with no Proxmox VE: start the bundled PVE
# emulator on 127.0.0.1, ban and unban an address with the real fail2pvefw,
# and show the datacenter IPSet after each step.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p fail2pvefw -p pve-emulator
bin=target/debug
work=$(mktemp -d)
trap 'kill "$emulator" 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin/pve-emulator" --listen 127.0.0.1:0 --write-ca "$work/ca.pem" --write-config "$work/demo.toml" \
    --state-dir "$work/state" >"$work/emulator.out" 2>"$work/emulator.log" &
emulator=$!
for _ in $(seq 50); do [ -s "$work/demo.toml" ] && break; sleep 0.1; done
[ -s "$work/demo.toml" ] || { cat "$work/emulator.log"; echo "demo: the emulator did not start" >&2; exit 1; }

echo "== config written by the emulator ($work/demo.toml)"
sed 's/\(token = ".*=\).*"/\1<secret>"/' "$work/demo.toml"

host=$(sed -n 's/^host = "\(.*\)"/\1/p' "$work/demo.toml")
token=$(sed -n 's/^token = "\(.*\)"/\1/p' "$work/demo.toml")
show() {
    echo "== GET /cluster/firewall/ipset/fail2ban"
    curl -sS --cacert "$work/ca.pem" -H "Authorization: PVEAPIToken=$token" \
        "https://$host/api2/json/cluster/firewall/ipset/fail2ban"
    echo
}

echo
echo "\$ fail2pvefw --config demo.toml -f ban 203.0.113.7 -c \"sshd: 3 attempts\""
"$bin/fail2pvefw" --config "$work/demo.toml" -f ban 203.0.113.7 -c "sshd: 3 attempts"
show
echo
echo "\$ fail2pvefw --config demo.toml -f ban 10.0.0.1/8"
"$bin/fail2pvefw" --config "$work/demo.toml" -f ban 10.0.0.1/8
show
echo
echo "\$ fail2pvefw --config demo.toml -f unban 10.0.0.1/8"
"$bin/fail2pvefw" --config "$work/demo.toml" -f unban 10.0.0.1/8
echo "\$ fail2pvefw --config demo.toml -f unban 203.0.113.7"
"$bin/fail2pvefw" --config "$work/demo.toml" -f unban 203.0.113.7
show
echo
echo "\$ fail2pvefw --config demo.toml -f ban 010.0.0.1     # refused, exit 2, nothing sent"
"$bin/fail2pvefw" --config "$work/demo.toml" -f ban 010.0.0.1 || echo "(exit $?)"
