#!/usr/bin/env bash
# HTTPS static-file benchmark: nginx vs pi-failover, same files, same run, alternating A B A B.
# See bench/README.md. Everything generated goes to bench/out/ (gitignored).
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/serve.sh [--rounds N] [--duration S] [--quick] [--summarize-only]

  --rounds N        alternating rounds per case and connection count (default 3)
  --duration S      seconds per wrk run (default 10)
  --quick           1 round of 3 s, 3 s memory runs, no quiet-host wait (smoke test)
  --summarize-only  rebuild bench/out/summary.md from the last run's TSV files

environment:
  BENCH_SERVERS      servers to compare, in A B order (default "nginx pi-failover")
  BENCH_CASES        subset of cases by letter, e.g. "a c" (default "a b c")
  BENCH_CONNS        connection counts (default "64 256")
  BENCH_THREADS      wrk threads (default 2)
  BENCH_MEM_CONNS    connections for the peak-RSS runs (default 256)
  BENCH_MEM_DURATION seconds per peak-RSS run (default 5; 3 with --quick)
  BENCH_SKIP_MEM=1   skip the peak-RSS runs
  BENCH_QUIET_WAIT   before each run wait up to this many seconds for the host to fall
                     under BENCH_QUIET_PCT % busy (defaults 5 and 25; 0 with --quick)
  BENCH_NO_BUILD=1   don't run `cargo build --release` (binary must exist)
  PI_FAILOVER_BIN    use this binary instead of target/release/pi-failover (implies no build)
  BENCH_NGINX_KTLS=1 add `ssl_conf_command Options KTLS;` to nginx (needs the tls kernel module)
EOF
}

# ---------------------------------------------------------------- arguments

ROUNDS="" DURATION="" QUICK=0 SUMMARIZE_ONLY=0
while (($# > 0)); do
	case $1 in
	--rounds) ROUNDS=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
	--rounds=*) ROUNDS=${1#*=}; shift ;;
	--duration) DURATION=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
	--duration=*) DURATION=${1#*=}; shift ;;
	--quick) QUICK=1; shift ;;
	--summarize-only) SUMMARIZE_ONLY=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "serve.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done
if ((QUICK)); then
	ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-3}
	QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
	MEM_DURATION=${BENCH_MEM_DURATION:-3}
else
	ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10}
	QUIET_WAIT=${BENCH_QUIET_WAIT:-5}
	MEM_DURATION=${BENCH_MEM_DURATION:-5}
fi
QUIET_PCT=${BENCH_QUIET_PCT:-25}
THREADS=${BENCH_THREADS:-2}
MEM_CONNS=${BENCH_MEM_CONNS:-256}
read -r -a CONNS <<<"${BENCH_CONNS:-64 256}"
read -r -a SERVERS <<<"${BENCH_SERVERS:-nginx pi-failover}"
read -r -a WANT_CASES <<<"${BENCH_CASES:-a b c}"

for n in "$ROUNDS" "$DURATION" "$QUIET_WAIT" "$QUIET_PCT" "$THREADS" "$MEM_CONNS" "$MEM_DURATION" "${CONNS[@]}"; do
	[[ $n =~ ^[0-9]+$ ]] || { echo "serve.sh: not a whole number: '$n'" >&2; exit 2; }
done
((ROUNDS >= 1 && DURATION >= 1)) || { echo "serve.sh: rounds and duration must be >= 1" >&2; exit 2; }
((${#SERVERS[@]} >= 1)) || { echo "serve.sh: BENCH_SERVERS is empty" >&2; exit 2; }
for s in "${SERVERS[@]}"; do
	case $s in nginx | pi-failover) ;; *) echo "serve.sh: unknown server '$s' (nginx, pi-failover)" >&2; exit 2 ;; esac
done

# ---------------------------------------------------------------- layout

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUT=$HERE/out
SITE=$OUT/site
CERT=$OUT/cert.pem
KEY=$OUT/key.pem
NGX_PREFIX=$OUT/nginx
PF_CONF=$OUT/pi-failover.toml
PF_LOG=$OUT/pi-failover.log
LUA=$OUT/report.lua
RAW=$OUT/wrk
SAMPLES=$OUT/samples.tsv
MEMTSV=$OUT/memory.tsv
VERSIONS=$OUT/versions.txt
SUMMARY=$OUT/summary.md
PF_BIN=${PI_FAILOVER_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/pi-failover}

declare -A PORT=([nginx]=8443 [pi-failover]=8444)
declare -A SERVER_PID=()

# Cases: name, URL path, file under the site root (for the expected size).
ALL_CASE_NAMES=(a_up_txt b_index_15k c_img_200k)
ALL_CASE_PATHS=(/up.txt / /assets/img/photo-1.jpg)
ALL_CASE_FILES=(up.txt index.html assets/img/photo-1.jpg)
CASE_NAMES=() CASE_PATHS=() CASE_FILES=()
for i in "${!ALL_CASE_NAMES[@]}"; do
	for w in "${WANT_CASES[@]}"; do
		if [[ $w == "${ALL_CASE_NAMES[i]:0:1}" || $w == "${ALL_CASE_NAMES[i]}" ]]; then
			CASE_NAMES+=("${ALL_CASE_NAMES[i]}") CASE_PATHS+=("${ALL_CASE_PATHS[i]}") CASE_FILES+=("${ALL_CASE_FILES[i]}")
			break
		fi
	done
done
((${#CASE_NAMES[@]} > 0)) || { echo "serve.sh: BENCH_CASES selects no case (a, b, c)" >&2; exit 2; }

log() { printf '%s\n' "$*" >&2; }
die() { log "serve.sh: $*"; exit 1; }
want() { local s; for s in "${SERVERS[@]}"; do [[ $s == "$1" ]] && return 0; done; return 1; }

# ---------------------------------------------------------------- summary (python3)

summarize() {
	python3 - "$SAMPLES" "$MEMTSV" "$VERSIONS" "${SERVERS[*]}" >"$SUMMARY" <<'PY'
import csv, os, statistics, sys

samples_path, mem_path, versions_path, servers_arg = sys.argv[1:5]
order = servers_arg.split()

def rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))

samples, mem = rows(samples_path), rows(mem_path)
present = []
for r in samples + mem:
    if r["server"] not in present:
        present.append(r["server"])
order = [s for s in order if s in present] + [s for s in present if s not in order]
versions = open(versions_path).read().strip().splitlines() if os.path.exists(versions_path) else []

def med(xs):
    return statistics.median(xs) if xs else float("nan")

def num(x, digits=0):
    if x != x:  # nan
        return "n/a"
    return f"{x:,.{digits}f}"

def ratio(a, b):
    return f"{a / b:.2f}" if b and a == a and b == b else "n/a"

out = []
w = out.append
w("# HTTPS static files: " + " vs ".join(order))
w("")
if samples:
    rounds = max(int(r["round"]) for r in samples)
    dur = samples[0]["duration_s"]
    alt = f", servers alternating {' '.join(order * 2)} ..." if len(order) > 1 else ""
    w(f"Medians of {rounds} round(s){alt}, {dur} s per wrk run, "
      f"`wrk -t{samples[0].get('threads', '2')} --timeout 5s`, no Accept-Encoding.")
    w("")
for v in versions:
    w("- " + v)
w("")

keys = []
for r in samples:
    k = (r["case"], int(r["conns"]))
    if k not in keys:
        keys.append(k)

agg = {}
if samples:
    w("## Throughput, latency, CPU")
    w("")
    w("| case | conns | server | n | req/s | p50 ms | p99 ms | srv CPU s | req/srv-CPU-s | "
      "others' CPU | errors sock/status | clean runs (others < 10 %): n, req/s |")
    w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for case, conns in keys:
        for s in order:
            rs = [r for r in samples if r["case"] == case and int(r["conns"]) == conns and r["server"] == s]
            if not rs:
                continue
            f = lambda col: [float(r[col]) for r in rs]
            m = {c: med(f(c)) for c in ("req_s", "p50_ms", "p99_ms", "srv_cpu_s", "req_per_srv_cpu_s", "others_share")}
            agg[(case, conns, s)] = m
            sock = sum(int(r["socket_errors"]) for r in rs)
            status = sum(int(r["status_errors"]) for r in rs)
            clean = [float(r["req_s"]) for r in rs if float(r["others_share"]) < 0.10]
            w(f"| {case} | {conns} | {s} | {len(rs)} | **{num(m['req_s'])}** | {num(m['p50_ms'], 2)} | "
              f"{num(m['p99_ms'], 1)} | {num(m['srv_cpu_s'], 2)} | {num(m['req_per_srv_cpu_s'])} | "
              f"{num(100 * m['others_share'])} % | {sock}/{status} | "
              + (f"{len(clean)}: {num(med(clean))}" if clean else "0") + " |")
    w("")

memagg = {}
for r in mem:
    memagg[(r["case"], r["server"])] = r

if "nginx" in order and "pi-failover" in order and (agg or memagg):
    w("## pi-failover / nginx")
    w("")
    w("Ratios of the medians above. Higher is better for req/s and req/srv-CPU-s; lower is better "
      "for p99 and peak RSS.")
    w("")
    w("| case | conns | req/s | req/srv-CPU-s | p99 | peak RSS |")
    w("|---|---:|---:|---:|---:|---:|")
    mem_conns = {int(r["conns"]) for r in mem}
    for case, conns in keys:
        a, b = agg.get((case, conns, "pi-failover")), agg.get((case, conns, "nginx"))
        if not (a and b):
            continue
        rss = "–"
        if conns in mem_conns and (case, "pi-failover") in memagg and (case, "nginx") in memagg:
            rss = ratio(float(memagg[(case, "pi-failover")]["peak_hwm_kb"]),
                        float(memagg[(case, "nginx")]["peak_hwm_kb"]))
        w(f"| {case} | {conns} | {ratio(a['req_s'], b['req_s'])} | "
          f"{ratio(a['req_per_srv_cpu_s'], b['req_per_srv_cpu_s'])} | {ratio(a['p99_ms'], b['p99_ms'])} | {rss} |")
    w("")

if mem:
    mc = mem[0]["conns"]
    md = mem[0]["duration_s"]
    w(f"## Peak memory (fresh server per row, wrk -c{mc} for {md} s; sum over the server's processes)")
    w("")
    w("| case | server | idle RSS MiB | peak VmHWM MiB | RSS after MiB | requests | errors sock/status |")
    w("|---|---|---:|---:|---:|---:|---:|")
    cases = []
    for r in mem:
        if r["case"] not in cases:
            cases.append(r["case"])
    for case in cases:
        for s in order:
            r = memagg.get((case, s))
            if r:
                w(f"| {case} | {s} | {int(r['idle_rss_kb']) / 1024:.1f} | **{int(r['peak_hwm_kb']) / 1024:.1f}** | "
                  f"{int(r['rss_after_kb']) / 1024:.1f} | {int(r['requests']):,} | "
                  f"{r['socket_errors']}/{r['status_errors']} |")
    w("")

w("Raw samples: `bench/out/samples.tsv`, `bench/out/memory.tsv`; wrk output: `bench/out/wrk/`.")
print("\n".join(out))
PY
}

if ((SUMMARIZE_ONLY)); then
	[[ -f $SAMPLES || -f $MEMTSV ]] || die "no samples in $OUT; run the benchmark first"
	summarize
	cat "$SUMMARY"
	exit 0
fi

# ---------------------------------------------------------------- tools

NGINX=${NGINX:-}
find_nginx() {
	if [[ -z $NGINX ]]; then
		NGINX=$(command -v nginx || true)
		[[ -n $NGINX ]] || { [[ -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx; } || true
	fi
}

apt_candidate() { # prints the candidate version of a Debian package, or nothing
	apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" { print $2 }'
}

install_tools() {
	local pkgs=() sudo=() p
	find_nginx
	if want nginx && [[ -z $NGINX ]]; then
		# Debian 12+: `nginx` is the server itself (nginx-light only adds a module);
		# older releases: `nginx` is a metapackage and nginx-light a lighter build.
		for p in nginx nginx-light; do
			if [[ -n $(apt_candidate "$p") ]]; then pkgs+=("$p"); break; fi
		done
		((${#pkgs[@]} > 0)) || die "no nginx package available (apt-cache policy nginx nginx-light)"
	fi
	command -v wrk >/dev/null || pkgs+=(wrk)
	command -v openssl >/dev/null || pkgs+=(openssl)
	command -v curl >/dev/null || pkgs+=(curl)
	command -v python3 >/dev/null || pkgs+=(python3)
	((${#pkgs[@]} > 0)) || return 0
	command -v apt-get >/dev/null || die "missing tools (${pkgs[*]}) and no apt-get; install them by hand"
	if ((EUID != 0)); then
		command -v sudo >/dev/null || die "missing tools (${pkgs[*]}); run as root or install them"
		sudo=(sudo)
	fi
	log "== installing: ${pkgs[*]}"
	"${sudo[@]}" apt-get update
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
	NGINX=""
	find_nginx
}

build_pi_failover() {
	want pi-failover || return 0
	if [[ -z ${PI_FAILOVER_BIN:-} && ${BENCH_NO_BUILD:-0} != 1 ]]; then
		command -v cargo >/dev/null || die "cargo not found; install Rust or set PI_FAILOVER_BIN"
		log "== cargo build --release"
		(cd "$REPO" && cargo build --release)
	fi
	[[ -x $PF_BIN ]] || die "$PF_BIN not found (build failed, or BENCH_NO_BUILD=1 without a binary)"
}

# ---------------------------------------------------------------- /proc accounting

CLK_TCK=$(getconf CLK_TCK)
NCPU=$(getconf _NPROCESSORS_ONLN)

PS_BUSY=0 PS_TOTAL=0
read_proc_stat() { # whole-machine busy and total ticks, all CPUs
	local _cpu user nice system idle iowait irq softirq steal _rest
	read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
	PS_BUSY=$((user + nice + system + irq + softirq + steal))
	PS_TOTAL=$((PS_BUSY + idle + iowait))
}

stat_fields() { # pid -> fields after "(comm) ": state ppid ... utime(11) stime(12) cutime(13) cstime(14)
	local line
	read -r line 2>/dev/null <"/proc/$1/stat" || return 1
	printf '%s\n' "${line##*) }"
}

server_pids() { # server -> its main pid and that pid's children (nginx workers)
	local main=${SERVER_PID[$1]:-} p f
	[[ -n $main && -d /proc/$main ]] || return 0
	printf '%s\n' "$main"
	for p in /proc/[0-9]*; do
		f=$(stat_fields "${p#/proc/}") || continue
		read -r -a f <<<"$f"
		[[ ${f[1]} == "$main" ]] && printf '%s\n' "${p#/proc/}"
	done
	return 0
}

cpu_ticks() { # pids... -> sum of utime+stime
	local sum=0 p f
	for p in "$@"; do
		f=$(stat_fields "$p") || continue
		read -r -a f <<<"$f"
		sum=$((sum + f[11] + f[12]))
	done
	printf '%s\n' "$sum"
}

status_kb() { # field pids... -> sum of that /proc/<pid>/status field, in kB
	local field=$1 sum=0 p k v _u
	shift
	for p in "$@"; do
		[[ -r /proc/$p/status ]] || continue
		while read -r k v _u; do
			if [[ $k == "$field:" ]]; then sum=$((sum + v)); break; fi
		done <"/proc/$p/status"
	done
	printf '%s\n' "$sum"
}

wait_quiet() {
	((QUIET_WAIT > 0)) || return 0
	local waited=0 b0 t0 pct
	while :; do
		read_proc_stat; b0=$PS_BUSY t0=$PS_TOTAL
		sleep 1
		read_proc_stat
		pct=$(((PS_BUSY - b0) * 100 / (PS_TOTAL - t0 > 0 ? PS_TOTAL - t0 : 1)))
		((pct < QUIET_PCT)) && return 0
		waited=$((waited + 1))
		if ((waited >= QUIET_WAIT)); then
			log "   (host still ${pct}% busy after ${waited}s; measuring anyway)"
			return 0
		fi
	done
}

# ---------------------------------------------------------------- servers

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_nginx_conf() {
	local v vv user_line="" listen_http2="" http2_line="" ktls_line="" temp_lines="" m
	mkdir -p "$NGX_PREFIX/tmp"
	v=$("$NGINX" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
	vv=$("$NGINX" -V 2>&1)
	if ((EUID == 0)); then user_line="user $(id -un) $(id -gn);"; fi
	if [[ $vv == *--with-http_v2_module* ]]; then
		# `listen ... http2` is deprecated from 1.25.1 in favour of `http2 on;`.
		if [[ $(printf '%s\n' "1.25.1" "$v" | sort -V | head -n1) == "1.25.1" ]]; then
			http2_line="http2 on;"
		else
			listen_http2=" http2"
		fi
	else
		log "   (this nginx has no HTTP/2 module; h2 off — wrk speaks HTTP/1.1 anyway)"
	fi
	[[ ${BENCH_NGINX_KTLS:-0} == 1 ]] && ktls_line="ssl_conf_command Options KTLS;"
	for m in proxy fastcgi uwsgi scgi; do
		[[ $vv == *--without-http_${m}_module* ]] || temp_lines+="    ${m}_temp_path \"$NGX_PREFIX/tmp/$m\";"$'\n'
	done
	cat >"$NGX_PREFIX/nginx.conf" <<EOF
# Generated by bench/serve.sh; overwritten on every run.
$user_line
worker_processes auto;
worker_rlimit_nofile 16384;
daemon off;
pid "$NGX_PREFIX/nginx.pid";
error_log "$NGX_PREFIX/error.log" warn;

events {
    worker_connections 4096;
}

http {
    types {
        text/html html;
        text/css css;
        application/javascript js;
        image/jpeg jpg jpeg;
        image/svg+xml svg;
        image/x-icon ico;
        application/xml xml;
        text/plain txt;
    }
    default_type application/octet-stream;

    client_body_temp_path "$NGX_PREFIX/tmp/client_body";
$temp_lines
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;

    server {
        listen 127.0.0.1:${PORT[nginx]} ssl$listen_http2;
        $http2_line
        server_name localhost;

        ssl_certificate "$CERT";
        ssl_certificate_key "$KEY";
        ssl_protocols TLSv1.3;
        $ktls_line

        root "$SITE";
        index index.html;
        error_page 404 /404.html;
        add_header X-Powered-By raspberry-pi always;
    }
}
EOF
	"$NGINX" -t -q -p "$NGX_PREFIX/" -c "$NGX_PREFIX/nginx.conf" -e "$NGX_PREFIX/error.log" ||
		die "nginx -t rejected $NGX_PREFIX/nginx.conf (see $NGX_PREFIX/error.log)"
}

write_pf_conf() {
	cat >"$PF_CONF" <<EOF
# Generated by bench/serve.sh; overwritten on every run.
[site]
root = "$SITE"
hostnames = ["localhost"]
powered_by = "raspberry-pi"
health_path = "/up.txt"

[listen]
https = "127.0.0.1:${PORT[pi-failover]}"
http = "off"

[[tls.certificates]]
cert = "$CERT"
key = "$KEY"

[limits]
max_connections = 4096
# Every load connection comes from 127.0.0.1: lift the per-address cap to the whole.
max_connections_per_address = 4096
idle_timeout = "75s"

[log]
level = "warn"
EOF
}

curl_tls() { # port path [curl args...]
	local port=$1 path=$2
	shift 2
	curl -sS --max-time 10 --cacert "$CERT" --resolve "localhost:$port:127.0.0.1" "$@" "https://localhost:$port$path"
}

start_server() {
	local s=$1 port=${PORT[$1]} pid i
	port_busy "$port" && die "port $port is already in use (a leftover server? ss -ltnp 'sport = :$port')"
	case $s in
	nginx)
		"$NGINX" -p "$NGX_PREFIX/" -c "$NGX_PREFIX/nginx.conf" -e "$NGX_PREFIX/error.log" \
			>>"$NGX_PREFIX/stderr.log" 2>&1 &
		pid=$!
		;;
	pi-failover)
		"$PF_BIN" run --config "$PF_CONF" >>"$PF_LOG" 2>&1 &
		pid=$!
		;;
	esac
	SERVER_PID[$s]=$pid
	for ((i = 0; i < 200; i++)); do
		if curl_tls "$port" /up.txt -o /dev/null 2>/dev/null; then
			sleep 0.2 # let nginx workers finish starting
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			unset "SERVER_PID[$s]"
			case $s in
			nginx) tail -n 20 "$NGX_PREFIX/stderr.log" "$NGX_PREFIX/error.log" >&2 || true ;;
			pi-failover) tail -n 20 "$PF_LOG" >&2 || true ;;
			esac
			die "$s exited during start-up"
		fi
		sleep 0.1
	done
	die "$s did not answer https://localhost:$port/up.txt within 20 s"
}

stop_server() {
	local s=$1 pid=${SERVER_PID[$1]:-} pids i p
	[[ -n $pid ]] || return 0
	mapfile -t pids < <(server_pids "$s")
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && { log "   ($s pid $pid ignored SIGTERM for 15 s; killing)"; kill -KILL "$pid" 2>/dev/null || true; }
	wait "$pid" 2>/dev/null || true
	for p in "${pids[@]}"; do
		[[ $p == "$pid" ]] && continue
		if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
	done
	unset "SERVER_PID[$s]"
}

WRK_SUB=""
cleanup() {
	local rc=$? s
	trap - EXIT INT TERM
	if [[ -n $WRK_SUB ]]; then
		if [[ -f $RAW/wrk.pid ]]; then kill -TERM "$(<"$RAW/wrk.pid")" 2>/dev/null || true; fi
		kill -TERM "$WRK_SUB" 2>/dev/null || true
	fi
	for s in "${!SERVER_PID[@]}"; do stop_server "$s"; done
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- wrk

write_lua() {
	cat >"$LUA" <<'EOF'
-- wrk report: one machine-readable line; latencies in microseconds.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%.0f duration_us=%.0f bytes=%.0f p50_us=%.0f p99_us=%.0f " ..
    "connect=%.0f read=%.0f write=%.0f status=%.0f timeout=%.0f\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
EOF
}

# run_wrk url conns seconds outfile: runs wrk in a subshell whose cutime+cstime (read after
# reaping wrk) is wrk's own CPU; writes it to outfile.cpu. Backgrounded so traps fire at once.
run_wrk() {
	local url=$1 conns=$2 secs=$3 out=$4
	(
		wrk -t"$THREADS" -c"$conns" -d"${secs}s" --timeout 5s -s "$LUA" "$url" >"$out" 2>&1 &
		echo $! >"$RAW/wrk.pid"
		rc=0
		wait $! || rc=$?
		read -r line <"/proc/$BASHPID/stat"
		read -r -a f <<<"${line##*) }"
		echo "$((f[13] + f[14]))" >"$out.cpu"
		exit "$rc"
	) &
	WRK_SUB=$!
	local rc=0
	wait "$WRK_SUB" || rc=$?
	WRK_SUB=""
	rm -f "$RAW/wrk.pid"
	return "$rc"
}

declare -A W=()
parse_wrk() { # outfile -> fills W[requests,duration_us,...]; fails if no report line
	local line kv kvs
	W=()
	line=$(grep -m1 '^BENCH ' "$1") || return 1
	read -r -a kvs <<<"${line#BENCH }"
	for kv in "${kvs[@]}"; do W[${kv%%=*}]=${kv#*=}; done
}

# ---------------------------------------------------------------- preflight

preflight() { # server: each case answers 200 with the file's exact size; 404 works
	local s=$1 port=${PORT[$1]} i want got code size hdr
	hdr=$OUT/headers-$s.txt
	for i in "${!CASE_NAMES[@]}"; do
		want=$(stat -c %s "$SITE/${CASE_FILES[i]}")
		got=$(curl_tls "$port" "${CASE_PATHS[i]}" --http1.1 -o /dev/null -D "$hdr" -w '%{http_code} %{size_download}') ||
			die "$s: curl ${CASE_PATHS[i]} failed"
		read -r code size <<<"$got"
		[[ $code == 200 && $size == "$want" ]] ||
			die "$s: GET ${CASE_PATHS[i]} gave HTTP $code with $size bytes, expected 200 with $want"
		grep -qi '^x-powered-by: *raspberry-pi' "$hdr" || log "   warning: $s sends no 'X-Powered-By: raspberry-pi' on ${CASE_PATHS[i]}"
		! grep -qi '^content-encoding:' "$hdr" || log "   warning: $s compressed ${CASE_PATHS[i]} without Accept-Encoding"
	done
	code=$(curl_tls "$port" /no-such-page.html --http1.1 -o /dev/null -w '%{http_code}') || code="curl failed"
	[[ $code == 404 ]] || log "   warning: $s answered HTTP $code for a missing page (expected 404)"
	log "   $s: cases answer 200 with the expected sizes; $(openssl s_client -connect "127.0.0.1:$port" \
		-servername localhost -brief </dev/null 2>&1 | sed -n 's/^\(Protocol version\|Ciphersuite\): */\1 /p' | paste -sd, -)"
}

# ---------------------------------------------------------------- versions

collect_versions() {
	local cpu
	cpu=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -n1)
	[[ -n $cpu ]] || cpu=$(sed -n 's/^\(Model\|Hardware\)[[:space:]]*: *//p' /proc/cpuinfo | head -n1)
	{
		echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "host: $(uname -m), kernel $(uname -r), $NCPU CPUs, ${cpu:-unknown CPU}"
		if want nginx; then echo "nginx: $("$NGINX" -v 2>&1 | head -n1)"; fi
		echo "wrk: $(wrk -v 2>&1 | head -n1 || true)"
		echo "openssl: $(openssl version)"
		echo "rustc: $(rustc -V 2>/dev/null || echo n/a)"
		if want pi-failover; then
			echo "pi-failover: $("$PF_BIN" --version 2>/dev/null | head -n1 || echo "version unknown"), $PF_BIN"
		fi
		echo "site: $(find "$SITE" -type f -printf '%s\n' | awk '{ n++; b += $1 } END { printf "%d files, %d bytes", n, b }') (bench/gen-site.py)"
	} >"$VERSIONS"
}

# ---------------------------------------------------------------- main

install_tools
build_pi_failover
mkdir -p "$OUT" "$RAW" "$NGX_PREFIX"
rm -f "$RAW"/*.txt "$RAW"/*.cpu

log "== site, certificate, configs in $OUT"
rm -rf "$SITE"
python3 "$HERE/gen-site.py" "$SITE" >&2
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
	-subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$KEY" -out "$CERT" 2>/dev/null
want nginx && write_nginx_conf
want pi-failover && write_pf_conf
write_lua
collect_versions
sed 's/^/   /' "$VERSIONS" >&2

# ---- throughput: both servers up, runs alternate A B A B

NRUNS=$((${#CASE_NAMES[@]} * ${#CONNS[@]} * ROUNDS * ${#SERVERS[@]}))
log "== throughput: $NRUNS runs of ${DURATION}s (${ROUNDS} rounds x ${#CASE_NAMES[@]} cases x ${#CONNS[@]} conns x ${#SERVERS[@]} servers)"
for s in "${SERVERS[@]}"; do
	start_server "$s"
	preflight "$s"
	# Warm-up: page cache, lazy initialisation, TLS code paths.
	run_wrk "https://localhost:${PORT[$s]}/" 16 1 "$RAW/warmup-$s.txt" || true
done

printf 'ts\tcase\tpath\tconns\tround\tserver\tthreads\tduration_s\trequests\treq_s\tp50_ms\tp99_ms\tbytes\tsocket_errors\tstatus_errors\tsrv_cpu_s\twrk_cpu_s\tothers_cpu_s\tothers_share\tbusy_share\treq_per_srv_cpu_s\n' >"$SAMPLES"
n=0
for i in "${!CASE_NAMES[@]}"; do
	for c in "${CONNS[@]}"; do
		for ((r = 1; r <= ROUNDS; r++)); do
			for s in "${SERVERS[@]}"; do
				n=$((n + 1))
				case_name=${CASE_NAMES[i]}
				raw=$RAW/$case_name-c$c-r$r-$s.txt
				wait_quiet
				mapfile -t pids < <(server_pids "$s")
				((${#pids[@]} > 0)) || die "$s is not running"
				s0=$(cpu_ticks "${pids[@]}")
				read_proc_stat; b0=$PS_BUSY t0=$PS_TOTAL
				run_wrk "https://localhost:${PORT[$s]}${CASE_PATHS[i]}" "$c" "$DURATION" "$raw" ||
					log "   warning: wrk exited non-zero, see $raw"
				read_proc_stat; b1=$PS_BUSY t1=$PS_TOTAL
				s1=$(cpu_ticks "${pids[@]}")
				parse_wrk "$raw" || { cat "$raw" >&2; die "no report from wrk in $raw"; }
				wrk_ticks=$(<"$raw.cpu")
				row=$(awk -v ts="$(date -u +%FT%TZ)" -v cs="$case_name" -v path="${CASE_PATHS[i]}" -v c="$c" -v r="$r" \
					-v s="$s" -v th="$THREADS" -v dur="$DURATION" -v req="${W[requests]}" -v dus="${W[duration_us]}" \
					-v p50="${W[p50_us]}" -v p99="${W[p99_us]}" -v bytes="${W[bytes]}" \
					-v sock="$((W[connect] + W[read] + W[write] + W[timeout]))" -v st="${W[status]}" \
					-v srv="$((s1 - s0))" -v wrk="$wrk_ticks" -v busy="$((b1 - b0))" -v tot="$((t1 - t0))" -v hz="$CLK_TCK" \
					'BEGIN {
						oth = busy - srv - wrk; if (oth < 0) oth = 0
						if (tot <= 0) tot = 1
						rps = dus > 0 ? req / (dus / 1e6) : 0
						per = srv > 0 ? req / (srv / hz) : 0
						printf "%s\t%s\t%s\t%d\t%d\t%s\t%d\t%d\t%d\t%.1f\t%.3f\t%.3f\t%.0f\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.4f\t%.4f\t%.0f\n",
							ts, cs, path, c, r, s, th, dur, req, rps, p50 / 1000, p99 / 1000, bytes, sock, st,
							srv / hz, wrk / hz, oth / hz, oth / tot, busy / tot, per
					}')
				printf '%s\n' "$row" >>"$SAMPLES"
				IFS=$'\t' read -r -a f <<<"$row"
				log "$(printf '[%2d/%d] %-11s c=%-3s r%d %-11s %9s req/s  p50 %7s  p99 %8s ms  srv %5s CPU-s  %7s req/CPU-s  others %3.0f%%  err %s/%s' \
					"$n" "$NRUNS" "$case_name" "$c" "$r" "$s" "${f[9]}" "${f[10]}" "${f[11]}" "${f[15]}" "${f[20]}" \
					"$(awk -v x="${f[18]}" 'BEGIN { print 100 * x }')" "${f[13]}" "${f[14]}")"
			done
		done
	done
done
for s in "${SERVERS[@]}"; do stop_server "$s"; done

# ---- peak memory: a fresh server per case, one wrk run, then sum VmHWM over its processes

printf 'ts\tcase\tpath\tserver\tconns\tduration_s\tidle_rss_kb\tpeak_hwm_kb\trss_after_kb\tnprocs\trequests\tsocket_errors\tstatus_errors\n' >"$MEMTSV"
if [[ ${BENCH_SKIP_MEM:-0} != 1 ]]; then
	log "== peak memory: fresh server, wrk -c$MEM_CONNS for ${MEM_DURATION}s per case"
	for i in "${!CASE_NAMES[@]}"; do
		for s in "${SERVERS[@]}"; do
			case_name=${CASE_NAMES[i]}
			raw=$RAW/mem-$case_name-$s.txt
			start_server "$s"
			mapfile -t pids < <(server_pids "$s")
			idle=$(status_kb VmRSS "${pids[@]}")
			run_wrk "https://localhost:${PORT[$s]}${CASE_PATHS[i]}" "$MEM_CONNS" "$MEM_DURATION" "$raw" ||
				log "   warning: wrk exited non-zero, see $raw"
			mapfile -t pids < <(server_pids "$s")
			hwm=$(status_kb VmHWM "${pids[@]}")
			rss=$(status_kb VmRSS "${pids[@]}")
			parse_wrk "$raw" || { cat "$raw" >&2; die "no report from wrk in $raw"; }
			printf '%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n' "$(date -u +%FT%TZ)" "$case_name" \
				"${CASE_PATHS[i]}" "$s" "$MEM_CONNS" "$MEM_DURATION" "$idle" "$hwm" "$rss" "${#pids[@]}" "${W[requests]}" \
				"$((W[connect] + W[read] + W[write] + W[timeout]))" "${W[status]}" >>"$MEMTSV"
			log "$(printf '   %-11s %-11s idle %6.1f MiB  peak %6.1f MiB  (%d processes, %d requests)' "$case_name" "$s" \
				"$(awk -v k="$idle" 'BEGIN { print k / 1024 }')" "$(awk -v k="$hwm" 'BEGIN { print k / 1024 }')" \
				"${#pids[@]}" "${W[requests]}")"
			stop_server "$s"
		done
	done
fi

summarize
log ""
cat "$SUMMARY"
log ""
log "samples: $SAMPLES  memory: $MEMTSV  summary: $SUMMARY"
