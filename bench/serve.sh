#!/usr/bin/env bash
# HTTPS static-file benchmark: nginx vs pi-failover, same files, same run, alternating A B A B,
# over HTTP/1.1 (wrk) and HTTP/2 (h2load, several streams per connection as browsers use them).
# See bench/README.md. Everything generated goes to bench/out/ (gitignored).
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/serve.sh [--rounds N] [--duration S] [--quick] [--summarize-only]

  --rounds N        alternating rounds per case, protocol and connection count (default 3)
  --duration S      seconds per load run (default 10)
  --quick           1 round of 3 s, 3 s memory runs, no quiet-host wait (smoke test)
  --summarize-only  rebuild bench/out/summary.md from the last run's TSV files

environment:
  BENCH_SERVERS      servers to compare, in A B order (default "nginx pi-failover")
  BENCH_CASES        subset of cases by letter, e.g. "a c" (default "a b c")
  BENCH_PROTOCOLS    "h1" (wrk), "h2" (h2load) or both (default "h1 h2")
  BENCH_CONNS        connection counts (default "64 256")
  BENCH_H2_STREAMS   concurrent streams per HTTP/2 connection (default 10)
  BENCH_THREADS      wrk and h2load threads (default 2)
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
read -r -a PROTOCOLS <<<"${BENCH_PROTOCOLS:-h1 h2}"
H2_STREAMS=${BENCH_H2_STREAMS:-10}

for n in "$ROUNDS" "$DURATION" "$QUIET_WAIT" "$QUIET_PCT" "$THREADS" "$MEM_CONNS" "$MEM_DURATION" "$H2_STREAMS" "${CONNS[@]}"; do
	[[ $n =~ ^[0-9]+$ ]] || { echo "serve.sh: not a whole number: '$n'" >&2; exit 2; }
done
((ROUNDS >= 1 && DURATION >= 1)) || { echo "serve.sh: rounds and duration must be >= 1" >&2; exit 2; }
((${#SERVERS[@]} >= 1)) || { echo "serve.sh: BENCH_SERVERS is empty" >&2; exit 2; }
for s in "${SERVERS[@]}"; do
	case $s in nginx | pi-failover) ;; *) echo "serve.sh: unknown server '$s' (nginx, pi-failover)" >&2; exit 2 ;; esac
done
((${#PROTOCOLS[@]} >= 1)) || { echo "serve.sh: BENCH_PROTOCOLS is empty" >&2; exit 2; }
for p in "${PROTOCOLS[@]}"; do
	case $p in h1 | h2) ;; *) echo "serve.sh: unknown protocol '$p' (h1, h2)" >&2; exit 2 ;; esac
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
PAYLOAD=$OUT/payload.tsv
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
speaks() { local p; for p in "${PROTOCOLS[@]}"; do [[ $p == "$1" ]] && return 0; done; return 1; }

# ---------------------------------------------------------------- summary (python3)

summarize() {
	python3 "$HERE/serve-summary.py" "$SAMPLES" "$MEMTSV" "$VERSIONS" "${SERVERS[*]}" "$PAYLOAD" >"$SUMMARY"
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
	command -v h2load >/dev/null || pkgs+=(nghttp2-client)
	command -v brotli >/dev/null || pkgs+=(brotli)
	command -v gzip >/dev/null || pkgs+=(gzip)
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
		speaks h2 && die "this nginx has no HTTP/2 module; run with BENCH_PROTOCOLS=h1"
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
        # The siblings made by precompress() below (Debian's nginx has no brotli module).
        gzip_static on;
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

# run_load proto url conns seconds outfile: runs wrk (h1) or h2load (h2) in a subshell whose
# cutime+cstime (read after reaping the tool) is the load generator's own CPU; writes it to
# outfile.cpu. Backgrounded so traps fire at once. Either way outfile ends with one `BENCH ...`
# report line (wrk's Lua hook; bench/h2load-report.py for h2load, percentiles from its log).
run_load() {
	local proto=$1 url=$2 conns=$3 secs=$4 out=$5
	(
		case $proto in
		h1) wrk -t"$THREADS" -c"$conns" -d"${secs}s" --timeout 5s -s "$LUA" "$url" >"$out" 2>&1 & ;;
		h2) h2load -t"$THREADS" -c"$conns" -m"$H2_STREAMS" -D"$secs" -T5 -N5 --log-file="$out.log" "$url" >"$out" 2>&1 & ;;
		esac
		echo $! >"$RAW/wrk.pid"
		rc=0
		wait $! || rc=$?
		read -r line <"/proc/$BASHPID/stat"
		read -r -a f <<<"${line##*) }"
		echo "$((f[13] + f[14]))" >"$out.cpu"
		if [[ $proto == h2 ]]; then
			# The report goes to a file of its own first: the script reads "$out".
			python3 "$HERE/h2load-report.py" "$out" "$out.log" >"$out.report" || rc=1
			cat "$out.report" >>"$out"
			rm -f "$out.log" "$out.report"
		fi
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

# ---------------------------------------------------------------- payload

# Page views whose bytes on the wire are recorded: the generated site's front page and the
# demo's sample site (src/demo/site, copied under /sample/), each with its CSS and JS.
PAGE_VIEWS=(
	"generated:/ /assets/css/main.css /assets/css/syntax.css /assets/js/main.js"
	"sample:/sample/ /sample/assets/css/main.css /sample/assets/js/badge.js /sample/favicon.svg"
)

# Brotli and gzip siblings of the page views' text files, made as the appliance's sync makes
# them (src/sync/precompress.rs: brotli quality 4 with an 18-bit window, gzip level 4, a
# sibling only when smaller and the original at least 512 bytes). Served as-is by
# pi-failover (site.root); nginx serves the .gz ones (gzip_static).
precompress() {
	local f size
	cp -r "$REPO/src/demo/site" "$SITE/sample"
	while IFS= read -r -d '' f; do
		size=$(stat -c %s "$f")
		((size >= 512)) || continue
		brotli -q 4 -w 18 -f -o "$f.br" "$f"
		gzip -4 -n -c "$f" >"$f.gz"
		(($(stat -c %s "$f.br") < size)) || rm -f "$f.br"
		(($(stat -c %s "$f.gz") < size)) || rm -f "$f.gz"
		touch -r "$f" "$f.br" "$f.gz" 2>/dev/null || true
	done < <(find "$SITE" -type f \( -name '*.html' -o -name '*.css' -o -name '*.js' -o -name '*.svg' \) -print0)
}

# measure_payload server: for each page view, the bytes a browser receives (response headers
# and bodies, as curl counts them over HTTP/2) with and without compression.
measure_payload() {
	local s=$1 port=${PORT[$1]} view name paths path enc total_id total_enc got hdr body
	for view in "${PAGE_VIEWS[@]}"; do
		name=${view%%:*}
		read -r -a paths <<<"${view#*:}"
		total_id=0 total_enc=0
		for path in "${paths[@]}"; do
			for enc in identity "br, gzip, deflate"; do
				got=$(curl_tls "$port" "$path" --http2 -o /dev/null -H "Accept-Encoding: $enc" \
					-w '%{http_code} %{size_header} %{size_download}') || die "$s: curl $path failed"
				read -r code hdr body <<<"$got"
				[[ $code == 200 ]] || die "$s: GET $path gave HTTP $code in the payload check"
				if [[ $enc == identity ]]; then total_id=$((total_id + hdr + body)); else total_enc=$((total_enc + hdr + body)); fi
			done
		done
		printf '%s\t%s\t%d\t%d\t%d\n' "$s" "$name" "${#paths[@]}" "$total_id" "$total_enc" >>"$PAYLOAD"
	done
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
	if speaks h2; then
		got=$(curl_tls "$port" / --http2 -o /dev/null -w '%{http_version}') || got="curl failed"
		[[ $got == 2 ]] || die "$s: HTTP/2 not negotiated (curl --http2 gave '$got')"
	fi
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
		if speaks h1; then echo "wrk: $(wrk -v 2>&1 | head -n1 || true)"; fi
		if speaks h2; then echo "h2load: $(h2load --version 2>&1 | head -n1 || true), $H2_STREAMS streams per connection"; fi
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
precompress
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
	-subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$KEY" -out "$CERT" 2>/dev/null
want nginx && write_nginx_conf
want pi-failover && write_pf_conf
write_lua
collect_versions
sed 's/^/   /' "$VERSIONS" >&2

# ---- throughput: both servers up, runs alternate A B A B

printf 'server\tview\tfiles\tidentity_bytes\tcompressed_bytes\n' >"$PAYLOAD"
NRUNS=$((${#CASE_NAMES[@]} * ${#PROTOCOLS[@]} * ${#CONNS[@]} * ROUNDS * ${#SERVERS[@]}))
log "== throughput: $NRUNS runs of ${DURATION}s (${ROUNDS} rounds x ${#CASE_NAMES[@]} cases x ${#PROTOCOLS[@]} protocols x ${#CONNS[@]} conns x ${#SERVERS[@]} servers)"
for s in "${SERVERS[@]}"; do
	start_server "$s"
	preflight "$s"
	measure_payload "$s"
	# Warm-up: page cache, lazy initialisation, TLS code paths.
	for p in "${PROTOCOLS[@]}"; do run_load "$p" "https://localhost:${PORT[$s]}/" 16 1 "$RAW/warmup-$p-$s.txt" || true; done
done

printf 'ts\tcase\tproto\tstreams\tpath\tconns\tround\tserver\tthreads\tduration_s\trequests\treq_s\tp50_ms\tp99_ms\tbytes\tsocket_errors\tstatus_errors\tsrv_cpu_s\twrk_cpu_s\tothers_cpu_s\tothers_share\tbusy_share\treq_per_srv_cpu_s\n' >"$SAMPLES"
n=0
for i in "${!CASE_NAMES[@]}"; do
	for p in "${PROTOCOLS[@]}"; do
	streams=1
	[[ $p == h2 ]] && streams=$H2_STREAMS
	for c in "${CONNS[@]}"; do
		for ((r = 1; r <= ROUNDS; r++)); do
			for s in "${SERVERS[@]}"; do
				n=$((n + 1))
				case_name=${CASE_NAMES[i]}
				raw=$RAW/$case_name-$p-c$c-r$r-$s.txt
				wait_quiet
				mapfile -t pids < <(server_pids "$s")
				((${#pids[@]} > 0)) || die "$s is not running"
				s0=$(cpu_ticks "${pids[@]}")
				read_proc_stat; b0=$PS_BUSY t0=$PS_TOTAL
				run_load "$p" "https://localhost:${PORT[$s]}${CASE_PATHS[i]}" "$c" "$DURATION" "$raw" ||
					log "   warning: the load generator exited non-zero, see $raw"
				read_proc_stat; b1=$PS_BUSY t1=$PS_TOTAL
				s1=$(cpu_ticks "${pids[@]}")
				parse_wrk "$raw" || { cat "$raw" >&2; die "no report from the load generator in $raw"; }
				wrk_ticks=$(<"$raw.cpu")
				row=$(awk -v ts="$(date -u +%FT%TZ)" -v cs="$case_name" -v pr="$p" -v sm="$streams" -v path="${CASE_PATHS[i]}" -v c="$c" -v r="$r" \
					-v s="$s" -v th="$THREADS" -v dur="$DURATION" -v req="${W[requests]}" -v dus="${W[duration_us]}" \
					-v p50="${W[p50_us]}" -v p99="${W[p99_us]}" -v bytes="${W[bytes]}" \
					-v sock="$((W[connect] + W[read] + W[write] + W[timeout]))" -v st="${W[status]}" \
					-v srv="$((s1 - s0))" -v wrk="$wrk_ticks" -v busy="$((b1 - b0))" -v tot="$((t1 - t0))" -v hz="$CLK_TCK" \
					'BEGIN {
						oth = busy - srv - wrk; if (oth < 0) oth = 0
						if (tot <= 0) tot = 1
						rps = dus > 0 ? req / (dus / 1e6) : 0
						per = srv > 0 ? req / (srv / hz) : 0
						printf "%s\t%s\t%s\t%d\t%s\t%d\t%d\t%s\t%d\t%d\t%d\t%.1f\t%.3f\t%.3f\t%.0f\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.4f\t%.4f\t%.0f\n",
							ts, cs, pr, sm, path, c, r, s, th, dur, req, rps, p50 / 1000, p99 / 1000, bytes, sock, st,
							srv / hz, wrk / hz, oth / hz, oth / tot, busy / tot, per
					}')
				printf '%s\n' "$row" >>"$SAMPLES"
				IFS=$'\t' read -r -a f <<<"$row"
				log "$(printf '[%2d/%d] %-11s %s c=%-3s r%d %-11s %9s req/s  p50 %7s  p99 %8s ms  srv %5s CPU-s  %7s req/CPU-s  others %3.0f%%  err %s/%s' \
					"$n" "$NRUNS" "$case_name" "$p" "$c" "$r" "$s" "${f[11]}" "${f[12]}" "${f[13]}" "${f[17]}" "${f[22]}" \
					"$(awk -v x="${f[20]}" 'BEGIN { print 100 * x }')" "${f[15]}" "${f[16]}")"
			done
		done
	done
	done
done
for s in "${SERVERS[@]}"; do stop_server "$s"; done

# ---- peak memory: a fresh server per case and protocol, one load run, then sum VmHWM over its
# processes (over HTTP/2 each connection carries BENCH_H2_STREAMS responses at once)

printf 'ts\tcase\tproto\tstreams\tpath\tserver\tconns\tduration_s\tidle_rss_kb\tpeak_hwm_kb\trss_after_kb\tnprocs\trequests\tsocket_errors\tstatus_errors\n' >"$MEMTSV"
if [[ ${BENCH_SKIP_MEM:-0} != 1 ]]; then
	log "== peak memory: fresh server, $MEM_CONNS connections for ${MEM_DURATION}s per case and protocol"
	for i in "${!CASE_NAMES[@]}"; do
		for p in "${PROTOCOLS[@]}"; do
		streams=1
		[[ $p == h2 ]] && streams=$H2_STREAMS
		for s in "${SERVERS[@]}"; do
			case_name=${CASE_NAMES[i]}
			raw=$RAW/mem-$case_name-$p-$s.txt
			start_server "$s"
			mapfile -t pids < <(server_pids "$s")
			idle=$(status_kb VmRSS "${pids[@]}")
			run_load "$p" "https://localhost:${PORT[$s]}${CASE_PATHS[i]}" "$MEM_CONNS" "$MEM_DURATION" "$raw" ||
				log "   warning: the load generator exited non-zero, see $raw"
			mapfile -t pids < <(server_pids "$s")
			hwm=$(status_kb VmHWM "${pids[@]}")
			rss=$(status_kb VmRSS "${pids[@]}")
			parse_wrk "$raw" || { cat "$raw" >&2; die "no report from the load generator in $raw"; }
			printf '%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n' "$(date -u +%FT%TZ)" "$case_name" \
				"$p" "$streams" "${CASE_PATHS[i]}" "$s" "$MEM_CONNS" "$MEM_DURATION" "$idle" "$hwm" "$rss" "${#pids[@]}" "${W[requests]}" \
				"$((W[connect] + W[read] + W[write] + W[timeout]))" "${W[status]}" >>"$MEMTSV"
			log "$(printf '   %-11s %s %-11s idle %6.1f MiB  peak %6.1f MiB  (%d processes, %d requests)' "$case_name" "$p" "$s" \
				"$(awk -v k="$idle" 'BEGIN { print k / 1024 }')" "$(awk -v k="$hwm" 'BEGIN { print k / 1024 }')" \
				"${#pids[@]}" "${W[requests]}")"
			stop_server "$s"
		done
		done
	done
fi

summarize
log ""
cat "$SUMMARY"
log ""
log "samples: $SAMPLES  memory: $MEMTSV  summary: $SUMMARY"
