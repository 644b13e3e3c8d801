#!/usr/bin/env bash
# fail2pvefw benchmarks, run by hand (not in CI; nothing here passes or
# fails). Release builds against the bundled PVE emulator on 127.0.0.1 (real
# HTTPS) and a sandboxed real fail2ban (its own config copy, socket, pidfile
# and database in a temp dir; the system's fail2ban is never touched).
# Prints a Markdown table with each goal beside the figure.
#
#   benches/run.sh                  # N=1000 bans through fail2ban, RUNS=30 per timing
#   N=200 RUNS=10 benches/run.sh    # quicker
#   SKIP_BUILD=1 benches/run.sh     # use the release binaries as they are
#   KEEP=1 benches/run.sh           # keep the work dir (logs) afterwards
#   SERVE_ONLY=1 benches/run.sh     # only `fail2pvefw serve` and the Python action (section 8)
#   TMPDIR=/dev/shm benches/run.sh  # state on tmpfs: shows what fsync costs
#   RATE=2 benches/run.sh           # [pve] writes_per_second (default here 1000)
#   CROWDSEC=0 benches/run.sh       # without the CrowdSec bench (section 7, a few minutes)
#
# Needs hyperfine, curl, /usr/bin/time (package `time`), fail2ban, python3:
#   apt-get install -y hyperfine curl time fail2ban
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
N=${N:-1000}
RUNS=${RUNS:-30}

need() {
    command -v "$1" >/dev/null || { echo "benches/run.sh: $1 is missing: apt-get install $2" >&2; exit 2; }
}
need hyperfine hyperfine
need curl curl
need /usr/bin/time time
need fail2ban-server fail2ban
need python3 python3

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "== cargo build --release -p fail2pvefw -p pve-emulator" >&2
    cargo build --release --quiet -p fail2pvefw -p pve-emulator
fi
bin=$root/target/release/fail2pvefw
emu_bin=$root/target/release/pve-emulator

work=$(mktemp -d "${TMPDIR:-/tmp}/f2p-bench.XXXXXX")
emu_pids=()
serve_pids=()
f2b_dirs=()

# --- cleanup: only what this script started ---------------------------------
f2b_pid_if_ours() { # DIR: prints the server's pid if it runs on DIR's socket
    local pid
    pid=$(cat "$1/run/f2b.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && grep -qF "$1/run/f2b.sock" "/proc/$pid/cmdline" 2>/dev/null || return 1
    grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && return 1
    echo "$pid"
}
cleanup() {
    local w pid
    for w in "${f2b_dirs[@]}"; do
        if pid=$(f2b_pid_if_ours "$w"); then
            f2b "$w" --timeout 10 stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${serve_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${emu_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# --- the PVE emulator --------------------------------------------------------
emu_start() { # NAME: sets emu_dir, cfg, host, token
    emu_dir=$work/$1
    mkdir -p "$emu_dir"
    "$emu_bin" --listen 127.0.0.1:0 --write-config "$emu_dir/config.toml" --write-ca "$emu_dir/ca.pem" \
        --state-dir "$emu_dir/state" --auth-delay-ms 50 >"$emu_dir/emu.out" 2>"$emu_dir/emu.log" &
    emu_pids+=($!)
    for _ in $(seq 100); do grep -q '^config:' "$emu_dir/emu.out" 2>/dev/null && break; sleep 0.05; done
    grep -q '^config:' "$emu_dir/emu.out" || { cat "$emu_dir/emu.out" "$emu_dir/emu.log" >&2; exit 1; }
    cfg=$emu_dir/config.toml
    # The figures measure fail2pvefw and the emulator, not [pve]
    # writes_per_second (its default, 2, would set the pace of 1000 bans).
    sed -i "s/^ipset = \(.*\)$/ipset = \1\nwrites_per_second = ${RATE:-1000}/" "$cfg"
    host=$(sed -n 's/^host = "\(.*\)"/\1/p' "$cfg")
    token=$(sed -n 's/^token = "\(.*\)"/\1/p' "$cfg")
}
writes() { # PVE writes answered 200 so far, from the emulator's request log
    grep -cE '^(POST|PUT|DELETE) .* -> 200 ' "$emu_dir/emu.log" || true
}
posts() {
    grep -cE '^POST .* -> 200 ' "$emu_dir/emu.log" || true
}

# --- a sandboxed fail2ban ----------------------------------------------------
f2b() { # DIR ARGS...: fail2ban-client on DIR's private socket
    local w=$1
    shift
    fail2ban-client -c "$w/conf" -s "$w/run/f2b.sock" "$@"
}
f2b_setup() { # DIR ACTION: private config, filter, jail with ACTION
    local w=$1 action=$2
    mkdir -p "$w/run"
    cp -a /etc/fail2ban "$w/conf"
    rm -rf "$w/conf/jail.d/"* "$w/conf/fail2ban.d/"*
    find "$w/conf" -name '*.local' -delete
    cat >"$w/conf/fail2ban.local" <<EOF
[DEFAULT]
loglevel = INFO
logtarget = $w/fail2ban.log
socket = $w/run/f2b.sock
pidfile = $w/run/f2b.pid
dbfile = $w/f2b.sqlite3
dbpurgeage = 1d
allowipv6 = auto
EOF
    cat >"$w/conf/filter.d/f2btest.conf" <<'EOF'
[Definition]
datepattern = {^LN-BEG}%%Y-%%m-%%d %%H:%%M:%%S
failregex = ^\s*auth failure from <HOST>\s*$
EOF
    printf '[Definition]\nactionstart =\nactionstop =\nactioncheck =\nactionban = true\nactionunban = true\n' \
        >"$w/conf/action.d/f2b-noop.conf"
    cp "$root/action.d/fail2pvefw.conf" "$root/action.d/fail2pvefw.py" "$w/conf/action.d/"
    : >"$w/watched.log"
    cat >"$w/conf/jail.local" <<EOF
[DEFAULT]
usedns = no
ignoreself = false
ignoreip =

[f2btest]
enabled = true
filter = f2btest
logpath = $w/watched.log
backend = polling
maxretry = 3
findtime = 10m
bantime = 1h
action = $action
EOF
    f2b_dirs+=("$w")
}
f2b_start() {
    local w=$1
    TZ=UTC fail2ban-server -c "$w/conf" -s "$w/run/f2b.sock" -p "$w/run/f2b.pid" -x -b \
        </dev/null >"$w/server.out" 2>&1 || { cat "$w/server.out" "$w/fail2ban.log" >&2; exit 1; }
}
f2b_stop() { # waits until the server is gone
    local w=$1 pid
    pid=$(f2b_pid_if_ours "$w") || return 0
    f2b "$w" stop >/dev/null
    while f2b_pid_if_ours "$w" >/dev/null; do sleep 0.02; done
}
banned() {
    f2b "$1" status f2btest | sed -n 's/.*Currently banned:[[:space:]]*//p'
}

# --- helpers -----------------------------------------------------------------
now() { echo "$EPOCHREALTIME"; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
hf() { # hyperfine with our defaults
    hyperfine -N --style none --warmup 3 --runs "$RUNS" "$@" >&2
}
hf_stat() { # JSON INDEX FIELD: FIELD of result INDEX in ms (cpu = user + system)
    python3 - "$@" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]
f = sys.argv[3]
v = r["user"] + r["system"] if f == "cpu" else r[f]
print(f"{v * 1000:.1f}")
EOF
}
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
pct() { python3 -c "import sys; print(f'{(float(sys.argv[1]) / float(sys.argv[2]) - 1) * 100:+.0f}%')" "$1" "$2"; }
max_rss_mib() { # CMD...: peak RSS of one run, MiB
    /usr/bin/time -v "$@" 2>"$work/time.txt" >/dev/null || { cat "$work/time.txt" >&2; exit 1; }
    awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$work/time.txt"
}
ips() { # N addresses in 198.18.0.0/15 (benchmarking range)
    local i
    for ((i = 0; i < $1; i++)); do echo "198.18.$((i / 250)).$((i % 250 + 1))"; done
}

rows=()
row() { rows+=("| $1 | $2 | $3 |"); }

if [ -z "${SERVE_ONLY:-}" ]; then
# === 1. one foreground ban beside curl =======================================
echo "== 1. one foreground ban vs curl POST" >&2
emu_start single
url="https://$host/api2/json/cluster/firewall/ipset/fail2ban"
curl_opts="-sS -o /dev/null --cacert $emu_dir/ca.pem -H 'Authorization: PVEAPIToken=$token'"
comment="[2026/01/01 00:00:00] sshd, 3 failures f2p:bench/sshd/1767229200"
f2p="$bin --config $cfg"
hf --export-json "$work/fg.json" \
    -n 'fail2pvefw -f ban' --prepare "$f2p -f unban 203.0.113.99" \
    "$f2p -f ban 203.0.113.99 --jail sshd --failures 3 --bantime 3600" \
    -n 'curl POST' --prepare "curl $curl_opts -X DELETE $url/203.0.113.98" \
    "curl $curl_opts --data-urlencode cidr=203.0.113.98 --data-urlencode 'comment=$comment' $url"
fg_wall=$(hf_stat "$work/fg.json" 0 mean)
fg_sd=$(hf_stat "$work/fg.json" 0 stddev)
fg_cpu=$(hf_stat "$work/fg.json" 0 cpu)
curl_wall=$(hf_stat "$work/fg.json" 1 mean)
curl_sd=$(hf_stat "$work/fg.json" 1 stddev)
curl_cpu=$(hf_stat "$work/fg.json" 1 cpu)
row "one foreground ban (\`-f ban\`, whole process), wall" \
    "$fg_wall ms ± $fg_sd; curl POST $curl_wall ms ± $curl_sd; **$(ratio "$fg_wall" "$curl_wall")× curl**" "≤ 1.1× curl"
row "one foreground ban, CPU (user + sys)" "**$fg_cpu ms**; curl $curl_cpu ms" "≤ 15 ms"

# === 1b. the first ban on a fresh state directory ============================
echo "== 1b. the first -f ban on a fresh state directory" >&2
fresh=$work/fresh-state
fresh_cfg=$work/fresh.toml
sed "s|^dir = .*|dir = \"$fresh\"|" "$cfg" >"$fresh_cfg"
chmod 600 "$fresh_cfg"
grep -q "^dir = \"$fresh\"" "$fresh_cfg" || { echo "no [state] dir in $cfg" >&2; exit 1; }
hf --export-json "$work/fresh.json" \
    -n 'first -f ban, fresh state dir' --prepare "rm -rf $fresh" \
    "$bin --config $fresh_cfg -f ban 203.0.113.93 --jail sshd --failures 3 --bantime 3600"
[ ! -e "$fresh/cache" ] || { echo "the default policy left a cache in $fresh" >&2; exit 1; }
row "the first \`-f ban\` on a fresh state directory (state.db created, policy's built-in code loaded) / a later one (above)" \
    "**$(hf_stat "$work/fresh.json" 0 mean) ms** ± $(hf_stat "$work/fresh.json" 0 stddev) / $fg_wall ms" "about the same"

# === 2. what fail2ban waits for a background ban =============================
echo "== 2. background ban (what fail2ban waits for)" >&2
hf --export-json "$work/bg.json" \
    -n 'fail2pvefw ban' --prepare "$f2p -f unban 203.0.113.97" \
    "$f2p ban 203.0.113.97 --jail sshd --failures 3 --bantime 3600"
$f2p sync >/dev/null
row "fail2ban waits for one background ban (\`ban\`, no \`-f\`)" \
    "**$(hf_stat "$work/bg.json" 0 mean) ms** ± $(hf_stat "$work/bg.json" 0 stddev), CPU $(hf_stat "$work/bg.json" 0 cpu) ms" "≤ 5 ms"

# === 5a. peak memory of one run ==============================================
echo "== 5a. peak memory of one -f ban" >&2
$f2p -f unban 203.0.113.96 >/dev/null
rss_fg=$(max_rss_mib $f2p -f ban 203.0.113.96 --jail sshd --failures 3 --bantime 3600)
rss_curl=$(max_rss_mib curl -sS -o /dev/null --cacert "$emu_dir/ca.pem" -H "Authorization: PVEAPIToken=$token" \
    --data-urlencode cidr=203.0.113.95 "$url")

# === 6. wasm instantiate + call ==============================================
echo "== 6. policy (wasm) cost" >&2
wasm_bench=$(find "$root/host/benches" -maxdepth 1 -name 'startup.rs' 2>/dev/null | head -n1 || true)
if [ -n "$wasm_bench" ]; then
    name=$(basename "$wasm_bench" .rs)
    echo "== cargo bench -p fail2pvefw --bench $name" >&2
    cargo bench --quiet -p fail2pvefw --bench "$name" | tee "$work/wasm.txt" >&2
    row "wasm instantiate + call" "see \`cargo bench -p fail2pvefw --bench $name\` (printed below)" ""
else
    # No in-process bench: the whole-process costs around the policy call.
    hf --export-json "$work/wasm.json" \
        -n 'fail2pvefw --version' "$bin --version" \
        -n 'fail2pvefw --queue-only ban' --prepare "$f2p --queue-only unban 203.0.113.94" \
        "$f2p --queue-only ban 203.0.113.94 --jail sshd" \
        -n 'fail2pvefw sandbox ban' "$bin sandbox ban 203.0.113.94"
    v=$(hf_stat "$work/wasm.json" 0 mean)
    q=$(hf_stat "$work/wasm.json" 1 mean)
    sb=$(hf_stat "$work/wasm.json" 2 mean)
    row "policy: process start (\`--version\`) / + config, cached wasm load, instantiate, validate call, queue commit (\`--queue-only ban\`) / uncached compile + call (\`sandbox ban\`)" \
        "$v ms / $q ms / $sb ms" ""
fi
$f2p sync >/dev/null 2>&1 || true

# === 3. N bans through the real fail2ban =====================================
echo "== 3. $N bans through fail2ban: do-nothing action, then fail2pvefw" >&2
mapfile -t addrs < <(ips "$N")
noop=$work/f2b-noop
f2b_setup "$noop" "f2b-noop"
f2b_start "$noop"
t=$(now)
f2b "$noop" set f2btest banip "${addrs[@]}" >/dev/null
noop_ban=$(since "$t")
t=$(now)
f2b_stop "$noop"
noop_stop=$(since "$t")
t=$(now)
f2b_start "$noop"
until [ "$(banned "$noop")" = "$N" ]; do sleep 0.05; done
noop_restore=$(since "$t")
f2b_stop "$noop"

emu_start bulk
f2p="$bin --config $cfg"
real=$work/f2b-real
f2b_setup "$real" "fail2pvefw[bin=\"$bin\", config=\"$cfg\"]"
f2b_start "$real"
t=$(now)
f2b "$real" set f2btest banip "${addrs[@]}" >/dev/null
real_call=$(since "$t")
until [ "$(posts)" -ge "$N" ]; do sleep 0.02; done
real_land=$(since "$t")
row "$N bans through the real fail2ban (one \`banip\` call), until all in PVE" \
    "**$real_land s** ($(pct "$real_land" "$noop_ban")); do-nothing action $noop_ban s; fail2ban's call returned after $real_call s" \
    "within 20% of do-nothing"

# === 3b. where the time goes: queueing vs sending ============================
echo "== 3b. $N x --queue-only ban, then one sync" >&2
saved=("$emu_dir" "$cfg")
emu_start drain
t=$(now)
for a in "${addrs[@]}"; do $bin --config "$cfg" --queue-only ban "$a" --jail sshd; done
queue_all=$(since "$t")
t=$(now)
/usr/bin/time -f '%U %S' -o "$work/sync-cpu.txt" $bin --config "$cfg" sync >/dev/null
sync_wall=$(since "$t")
sync_cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$work/sync-cpu.txt")
row "the same $N bans, split: $N × \`--queue-only ban\` in a shell loop / one \`sync\` sending them" \
    "$queue_all s / $sync_wall s, of which fail2pvefw CPU $sync_cpu s (the rest is the emulator: each write re-reads and rewrites the whole \`cluster.fw\`)" ""
emu_dir=${saved[0]}
cfg=${saved[1]}

# === 4. restart with N bans ==================================================
echo "== 4. restart with $N bans" >&2
before=$(writes)
t=$(now)
f2b_stop "$real"
real_stop=$(since "$t")
t=$(now)
f2b_start "$real"
until [ "$(banned "$real")" = "$N" ]; do sleep 0.05; done
real_restore=$(since "$t")
sleep 1 # anything late would show up now
restart_writes=$(($(writes) - before))
row "restart with $N bans: PVE writes" "**$restart_writes**" "0"
row "restart with $N bans: stop / start until all restored" \
    "$real_stop s / $real_restore s; do-nothing action $noop_stop s / $noop_restore s" ""

# === 5b. peak memory of a sync over the full IPSet ===========================
echo "== 5b. peak memory of sync over $N entries" >&2
rss_sync=$(max_rss_mib $f2p sync)
f2b_stop "$real"
row "peak memory (max RSS) of one \`-f ban\`" "**$rss_fg MiB**; curl $rss_curl MiB" "≤ 20 MiB"
row "peak memory of \`sync\` over $N entries" "$rss_sync MiB" "≤ 20 MiB"

# === 7. CrowdSec: 20,000 decisions to a capped set, one write at 15,000 ======
echo "== 7. cargo bench -p fail2pvefw --bench crowdsec (needs scripts/install-crowdsec)" >&2
if [ "${CROWDSEC:-1}" = 0 ]; then
    row "CrowdSec" "skipped (CROWDSEC=0)" ""
elif scripts/install-crowdsec >/dev/null 2>&1; then
    cargo bench --quiet -p fail2pvefw --bench crowdsec | tee "$work/crowdsec.txt" >&2
    row "CrowdSec: 20,000 decisions to a capped set; one PVE write at 15,000 entries" \
        "see \`cargo bench -p fail2pvefw --bench crowdsec\` (printed below)" ""
else
    row "CrowdSec" "skipped: scripts/install-crowdsec failed" ""
fi
fi # SERVE_ONLY

# === 8. fail2pvefw serve and the Python action ========================
serve_start() { # CFG SOCKET: `fail2pvefw serve` on CFG, until SOCKET answers
    "$bin" --config "$1" serve 2>>"$1.serve.log" &
    serve_pids+=($!)
    for _ in $(seq 200); do [ -S "$2" ] && break; sleep 0.05; done
    [ -S "$2" ] || { cat "$1.serve.log" >&2; exit 1; }
}
serve_stop() { # stops the last service started, waits for it
    local pid=${serve_pids[-1]}
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
}
with_socket() { # appends [serve] socket to $cfg; sets sock
    sock=$emu_dir/run/f2p.sock
    printf '\n[serve]\nsocket = "%s"\n' "$sock" >>"$cfg"
}
for n in ${SERVE_NS:-200 1000}; do
    echo "== 8. banip of $n: actionban = true / fail2pvefw.conf / fail2pvefw.py + serve" >&2
    mapfile -t addrs < <(ips "$n")
    w=$work/s7-true-$n
    f2b_setup "$w" "f2b-noop"
    f2b_start "$w"
    t=$(now)
    f2b "$w" set f2btest banip "${addrs[@]}" >/dev/null
    t_true=$(since "$t")
    f2b_stop "$w"

    emu_start "s7-shell-$n"
    w=$work/s7-shell-$n-f2b
    f2b_setup "$w" "fail2pvefw[bin=\"$bin\", config=\"$cfg\"]"
    f2b_start "$w"
    t=$(now)
    f2b "$w" set f2btest banip "${addrs[@]}" >/dev/null
    t_shell=$(since "$t")
    until [ "$(posts)" -ge "$n" ]; do sleep 0.02; done
    l_shell=$(since "$t")
    f2b_stop "$w"

    emu_start "s7-py-$n"
    with_socket
    serve_start "$cfg" "$sock"
    w=$work/s7-py-$n-f2b
    f2b_setup "$w" "fail2pvefw.py[bin=\"$bin\", config=\"$cfg\", socket=\"$sock\"]"
    f2b_start "$w"
    t=$(now)
    f2b "$w" set f2btest banip "${addrs[@]}" >/dev/null
    t_py=$(since "$t")
    until [ "$(posts)" -ge "$n" ]; do sleep 0.02; done
    l_py=$(since "$t")
    [ ! -e "$emu_dir/state/drain.log" ] || echo "warning: some bans went through the fallback" >&2
    f2b_stop "$w"
    serve_stop
    row "\`banip\` of $n through the real fail2ban: \`actionban = true\` / shell action \`fail2pvefw.conf\` / Python action \`fail2pvefw.py\` + \`serve\`" \
        "$t_true s / $t_shell s (**$(ratio "$t_shell" "$t_true")×**) / $t_py s (**$(ratio "$t_py" "$t_true")×**); all $n in PVE after $l_shell s / $l_py s" \
        "Python action ≤ 1.0× \`true\`"
done

echo "== 8b. CLI background ban without and with the service" >&2
emu_start s7-bg
with_socket
f2p="$bin --config $cfg"
hf --export-json "$work/bg-alone.json" \
    -n 'ban, no service' --prepare "$f2p -f unban 203.0.113.90" \
    "$f2p ban 203.0.113.90 --jail sshd --failures 3 --bantime 3600"
serve_start "$cfg" "$sock"
hf --export-json "$work/bg-served.json" \
    -n 'ban, handed to serve' --prepare "$f2p -f unban 203.0.113.90" \
    "$f2p ban 203.0.113.90 --jail sshd --failures 3 --bantime 3600"
serve_stop
bg_alone=$(hf_stat "$work/bg-alone.json" 0 mean)
bg_served=$(hf_stat "$work/bg-served.json" 0 mean)
row "one CLI background \`ban\` (what fail2ban's shell action waits for): without / with \`fail2pvefw serve\`" \
    "$bg_alone ms ± $(hf_stat "$work/bg-alone.json" 0 stddev) / **$bg_served ms** ± $(hf_stat "$work/bg-served.json" 0 stddev) ($(ratio "$bg_served" "$bg_alone")×)" ""
# === the table ===============================================================
cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)
echo
echo "Machine: $(nproc) cores ($cpu), $(uname -sr), fail2ban $(fail2ban-server -V | sed -n 1p), $(hyperfine --version), $(curl --version | head -n1 | cut -d' ' -f1-2); $(date -u +%Y-%m-%d). RUNS=$RUNS, N=$N."
echo
echo "| measure | figure | goal |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
for printed in "$work/wasm.txt" "$work/crowdsec.txt"; do
    if [ -s "$printed" ]; then
        echo
        echo '```'
        cat "$printed"
        echo '```'
    fi
done
