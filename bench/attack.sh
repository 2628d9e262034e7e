#!/usr/bin/env bash
# The attacks of issue 13 against nginx and pi-failover, in the same run, alternating: for
# each, a reader's latency during the attack (p50/p99 of a fresh HTTPS GET every 100 ms from
# another address), failed reads and health checks, and the server's peak RSS and
# descriptors. Not a timed test: it prints a table (bench/out/attack.md) and ratios.
# See bench/README.md and docs/benchmarks.md ("Under attack").
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/attack.sh [--seconds N] [--rounds N]

  --seconds N   attack length (default 15)
  --rounds N    rounds, servers alternating within each (default 2)

environment:
  BENCH_ATTACKS     subset, e.g. "zero-window never-read" (default: all four and "none")
  BENCH_NO_BUILD=1  don't build (the binaries must exist)
  PI_FAILOVER_BIN   the appliance binary (default target/release/pi-failover)
EOF
}

SECONDS_PER=15 ROUNDS=2
while (($# > 0)); do
	case $1 in
	--seconds) SECONDS_PER=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
	--rounds) ROUNDS=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
	-h | --help) usage; exit 0 ;;
	*) echo "attack.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done
for n in "$SECONDS_PER" "$ROUNDS"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "attack.sh: not a positive number: '$n'" >&2; exit 2; }
done
read -r -a ATTACKS <<<"${BENCH_ATTACKS:-none zero-window never-read idle-ping silent-tcp}"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUT=$HERE/out/attack
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
PF_BIN=${PI_FAILOVER_BIN:-$TARGET/release/pi-failover}
CLIENT=$TARGET/release/examples/attack
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
TSV=$OUT/results.tsv
SUMMARY=$OUT/attack.md

log() { printf '%s\n' "$*" >&2; }
die() { log "attack.sh: $*"; exit 1; }

[[ -x $NGINX ]] || die "nginx not found (apt-get install nginx)"
command -v openssl >/dev/null || die "openssl not found"
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
	(cd "$REPO" && cargo build --release --bin pi-failover --example attack >&2)
fi
[[ -x $PF_BIN && -x $CLIENT ]] || die "build first: cargo build --release --bin pi-failover --example attack"

rm -rf "$OUT"
mkdir -p "$OUT/site" "$OUT/nginx/tmp" "$OUT/data"
python3 "$HERE/gen-site.py" "$OUT/site" >/dev/null
head -c 8388608 /dev/urandom >"$OUT/site/big.bin"
printf '' >"$OUT/site/up.txt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
	-subj /CN=localhost -addext subjectAltName=DNS:localhost \
	-keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null

# nginx with HTTP/2 and the limits its documentation gives against such clients: one
# worker per core, limit_conn per address (32, as pi-failover's default), its timeouts at
# pi-failover's values, and its default of 128 streams lowered to pi-failover's 64.
user_line=""
if ((EUID == 0)); then user_line="user $(id -un) $(id -gn);"; fi
# `http2 on;` from nginx 1.25.1; older ones (Debian 12's 1.22) take it on the listen line.
listen_http2="" http2_line="http2 on;"
if printf '%s\n' "1.25.1" "$("$NGINX" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')" | sort -V -C; then
	:
else
	listen_http2=" http2" http2_line=""
fi
cat >"$OUT/nginx/nginx.conf" <<EOF
$user_line
worker_processes auto;
worker_rlimit_nofile 20000;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $OUT/nginx/tmp; proxy_temp_path $OUT/nginx/tmp;
    fastcgi_temp_path $OUT/nginx/tmp; uwsgi_temp_path $OUT/nginx/tmp; scgi_temp_path $OUT/nginx/tmp;
    default_type application/octet-stream;
    sendfile on;
    limit_conn_zone \$binary_remote_addr zone=peraddr:1m;
    limit_conn peraddr 32;
    client_header_timeout 15s;
    keepalive_timeout 60s;
    send_timeout 60s;
    http2_max_concurrent_streams 64;
    add_header X-Powered-By raspberry-pi;
    server {
        listen 127.0.0.1:9443 ssl$listen_http2;
        $http2_line
        ssl_certificate $OUT/cert.pem;
        ssl_certificate_key $OUT/key.pem;
        root $OUT/site;
    }
    server {
        listen 127.0.0.1:9080;
        location = /up.txt { return 200; }
        location / { return 301 https://localhost:9443\$request_uri; }
    }
}
EOF

cat >"$OUT/pi-failover.toml" <<EOF
[site]
root = "$OUT/site"
hostnames = ["localhost"]
[listen]
https = "127.0.0.1:9444"
http = "127.0.0.1:9081"
[status]
listen = "off"
[live]
clock_check = false
[log]
level = "warn"
[storage]
data_dir = "$OUT/data"
[[tls.certificates]]
cert = "$OUT/cert.pem"
key = "$OUT/key.pem"
EOF

PID=""
stop_server() {
	if [[ -n $PID ]]; then
		kill "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
		PID=""
	fi
	if [[ -f $OUT/nginx/nginx.pid ]]; then
		kill "$(cat "$OUT/nginx/nginx.pid")" 2>/dev/null || true
		sleep 0.5
		rm -f "$OUT/nginx/nginx.pid"
	fi
}
trap stop_server EXIT

# Starts a fresh server; sets HTTPS, HTTP and PIDS (not in a subshell: PID must survive).
start_server() {
	case $1 in
	nginx)
		"$NGINX" -p "$OUT/nginx/" -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/error.log"
		for _ in $(seq 50); do [[ -s $OUT/nginx/nginx.pid ]] && break; sleep 0.1; done
		local master
		master=$(cat "$OUT/nginx/nginx.pid")
		sleep 0.3
		HTTPS=127.0.0.1:9443 HTTP=127.0.0.1:9080 PIDS="$(pgrep -d, -P "$master"),$master"
		;;
	pi-failover)
		"$PF_BIN" run --config "$OUT/pi-failover.toml" 2>>"$OUT/pi-failover.log" &
		PID=$!
		for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:9081/up.txt && break; sleep 0.1; done
		HTTPS=127.0.0.1:9444 HTTP=127.0.0.1:9081 PIDS=$PID
		;;
	esac
	# A server that did not start (a port still taken) would leave the last one measured.
	local p
	for p in ${PIDS//,/ }; do
		[[ -d /proc/$p ]] || die "$1 did not start (see $OUT/)"
	done
}

printf 'round\tserver\tattack\tp50_ms\tp99_ms\treader_ok\treader_failed\thealth_failed\tidle_kb\tpeak_kb\tafter_kb\tidle_fds\tpeak_fds\tattackers\tattackers_closed\n' >"$TSV"
for round in $(seq "$ROUNDS"); do
	for attack in "${ATTACKS[@]}"; do
		order=(nginx pi-failover)
		((round % 2 == 0)) && order=(pi-failover nginx)
		for server in "${order[@]}"; do
			start_server "$server"
			log "round $round: $attack against $server ($PIDS)"
			line=$("$CLIENT" "$attack" "$HTTPS" "$HTTP" "$PIDS" "$SECONDS_PER")
			printf '%s\t%s\t%s\n' "$round" "$server" "$line" >>"$TSV"
			stop_server
			sleep 1
		done
	done
done

python3 "$HERE/attack-summary.py" "$TSV" "$SECONDS_PER" "$("$NGINX" -v 2>&1)" >"$SUMMARY"
cat "$SUMMARY"
printf '\n(attackers closed: connections the server closed or refused; silent-tcp reconnects each one)\n'
