#!/usr/bin/env bash
# S3 -> local sync benchmark: pi-failover vs rclone, s3cmd and aws-cli on the same bucket,
# served by moto_server on 127.0.0.1, in the same run. See bench/README.md.
# Everything generated goes to bench/out/ (gitignored).
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/sync.sh [--site small|docs] [--objects N] [--quick] [--summarize-only]

  --site small      (default) N Jekyll-shaped objects of 1-20 KiB (bench/seed-bucket.py)
  --site docs       a documentation site (bench/gen-docs-site.py): 1,000 files, ~66 MB,
                    with a 3.6 MB search index, a 2.6 MB page, a 1.5 MB JS bundle, a 1 MB
                    sitemap, ~900 pages of 2-60 KB and 50 images of 50-500 KB
  --objects N       small site: objects in the bucket (default 10000)
  --quick           small site: 1000 objects (unless --objects is given); both: no
                    quiet-host wait
  --summarize-only  rebuild bench/out/sync-summary-SITE.md from the last run's TSV

Phases, each over all tools: full (sync into an empty directory), noop (the same sync
again), then the bucket is mutated once (1 % rewritten, half of them same-size edits;
1 % deleted; on the docs site the rewritten files include the search index, the sitemap,
the changelog and the 2.6 MB page) and delta (each tool from its own synced copy).
Each site case writes its own files: bench/out/sync-summary-SITE.md,
bench/out/sync-results-SITE.tsv and bench/out/sync-SITE/.

environment:
  BENCH_TOOLS        tools, in run order (default "pi-failover rclone rclone-fast s3cmd aws")
                       pi-failover  pi-failover sync --once
                       rclone       rclone sync (defaults)
                       rclone-fast  rclone sync --fast-list --checksum
                       s3cmd        s3cmd sync --delete-removed
                       aws          aws s3 sync --delete
  BENCH_BUILD=1      run `cargo build --release` even if the binary exists (it is built
                     anyway when missing and pi-failover is one of the tools)
  PI_FAILOVER_BIN    use this binary instead of target/release/pi-failover (never builds)
  BENCH_RCLONE       rclone binary (default: rclone from PATH, installed with apt)
  BENCH_PORT         moto_server port (default 9101)
  BENCH_QUIET_WAIT   before each run wait up to this many seconds for the host to fall
                     under BENCH_QUIET_PCT % busy (defaults 5 and 25; 0 with --quick)
  BENCH_PYTHON       interpreter for the venv (default /usr/bin/python3)
EOF
}

# ---------------------------------------------------------------- arguments

OBJECTS="" QUICK=0 SUMMARIZE_ONLY=0 SITE=small
while (($# > 0)); do
	case $1 in
	--site) SITE=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
	--site=*) SITE=${1#*=}; shift ;;
	--objects) OBJECTS=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
	--objects=*) OBJECTS=${1#*=}; shift ;;
	--quick) QUICK=1; shift ;;
	--summarize-only) SUMMARIZE_ONLY=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "sync.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done
case $SITE in
small) ;;
docs) [[ -z $OBJECTS ]] || { echo "sync.sh: --objects is for --site small (the docs site has a fixed size)" >&2; exit 2; } ;;
*) echo "sync.sh: unknown site '$SITE' (small docs)" >&2; exit 2 ;;
esac
if ((QUICK)); then
	[[ $SITE != small ]] || OBJECTS=${OBJECTS:-1000}
	QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
else
	[[ $SITE != small ]] || OBJECTS=${OBJECTS:-10000}
	QUIET_WAIT=${BENCH_QUIET_WAIT:-5}
fi
QUIET_PCT=${BENCH_QUIET_PCT:-25}
PORT=${BENCH_PORT:-9101}
read -r -a TOOLS <<<"${BENCH_TOOLS:-pi-failover rclone rclone-fast s3cmd aws}"

for n in "$QUIET_WAIT" "$QUIET_PCT" "$PORT" ${OBJECTS:+"$OBJECTS"}; do
	[[ $n =~ ^[0-9]+$ ]] || { echo "sync.sh: not a whole number: '$n'" >&2; exit 2; }
done
if [[ $SITE == small ]]; then
	((OBJECTS >= 100)) || { echo "sync.sh: --objects must be at least 100" >&2; exit 2; }
fi
((${#TOOLS[@]} >= 1)) || { echo "sync.sh: BENCH_TOOLS is empty" >&2; exit 2; }
declare -A SEEN=()
for t in "${TOOLS[@]}"; do
	case $t in
	pi-failover | rclone | rclone-fast | s3cmd | aws) ;;
	*) echo "sync.sh: unknown tool '$t' (pi-failover rclone rclone-fast s3cmd aws)" >&2; exit 2 ;;
	esac
	[[ -z ${SEEN[$t]:-} ]] || { echo "sync.sh: tool '$t' given twice" >&2; exit 2; }
	SEEN[$t]=1
done

# ---------------------------------------------------------------- layout

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUT=$HERE/out
# Each site case has its own results, summary and work directory, so both can be kept.
WORK=$OUT/sync-$SITE
RESULTS=$OUT/sync-results-$SITE.tsv
SUMMARY=$OUT/sync-summary-$SITE.md
if ((SUMMARIZE_ONLY)) && [[ $SITE == small && ! -f $RESULTS && -f $OUT/sync-results.tsv ]]; then
	WORK=$OUT/sync RESULTS=$OUT/sync-results.tsv # a run from before the site cases
fi
VENV=$OUT/sync-venv
CERT=$OUT/cert.pem
KEY=$OUT/key.pem
VERSIONS=$WORK/versions.txt
META=$WORK/meta.txt
MOTO_LOG=$WORK/moto.log
CREDS=$WORK/aws-credentials
AWS_CONF=$WORK/aws-config
RCLONE_CONF=$WORK/rclone.conf
S3CFG=$WORK/s3cfg
PF_CONF=$WORK/pi-failover.toml
PF_DATA=$WORK/pi-failover
DST=$WORK/dst
TIMES=$WORK/times
LOGS=$WORK/logs
CHECKS=$WORK/checks
MANIFEST_BEFORE=$WORK/manifest-before.tsv
MANIFEST_AFTER=$WORK/manifest-after.tsv
MUTATION=$WORK/mutation.tsv
ENDPOINT=http://127.0.0.1:$PORT
BUCKET=site
ACCESS_KEY=AKTESTKEY123
SECRET_KEY=SKTESTSECRET456
PF_BIN=${PI_FAILOVER_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/pi-failover}
RCLONE=${BENCH_RCLONE:-rclone}
if [[ -n ${BENCH_PYTHON:-} ]]; then
	PYTHON=$BENCH_PYTHON
elif [[ -x /usr/bin/python3 ]]; then
	PYTHON=/usr/bin/python3
else
	PYTHON=python3
fi
VPY=$VENV/bin/python

log() { printf '%s\n' "$*" >&2; }
die() { log "sync.sh: $*"; exit 1; }
want() { local t; for t in "${TOOLS[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }

# ---------------------------------------------------------------- summary

summarize() {
	python3 "$HERE/sync-summary.py" --results "$RESULTS" --versions "$VERSIONS" --meta "$META" \
		--tools "${TOOLS[*]}" --manifest "$MANIFEST_BEFORE" --plan "$MUTATION" --work "$WORK" >"$SUMMARY"
}

if ((SUMMARIZE_ONLY)); then
	[[ -f $RESULTS ]] || die "no results in $RESULTS; run the benchmark first"
	summarize
	cat "$SUMMARY"
	exit 0
fi

# ---------------------------------------------------------------- tools

install_tools() {
	local pkgs=() sudo=()
	[[ -x /usr/bin/time ]] || pkgs+=(time)
	if want rclone || want rclone-fast; then
		[[ -n ${BENCH_RCLONE:-} ]] || command -v rclone >/dev/null || pkgs+=(rclone)
	fi
	if want s3cmd; then command -v s3cmd >/dev/null || pkgs+=(s3cmd); fi
	command -v curl >/dev/null || pkgs+=(curl)
	command -v openssl >/dev/null || pkgs+=(openssl)
	if [[ ! -x $VPY ]] && ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
		pkgs+=(python3-venv)
		[[ -n ${BENCH_PYTHON:-} ]] || PYTHON=/usr/bin/python3
	fi
	if ((${#pkgs[@]} > 0)); then
		command -v apt-get >/dev/null || die "missing tools (${pkgs[*]}) and no apt-get; install them by hand"
		if ((EUID != 0)); then
			command -v sudo >/dev/null || die "missing tools (${pkgs[*]}); run as root or install them"
			sudo=(sudo)
		fi
		log "== installing with apt: ${pkgs[*]}"
		"${sudo[@]}" apt-get update
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
	fi

	# The venv: moto_server (the S3 server), boto3 (seeding), aws-cli (a peer).
	if [[ ! -x $VPY ]]; then
		log "== creating $VENV ($PYTHON)"
		"$PYTHON" -m venv "$VENV"
	fi
	if ! [[ -x $VENV/bin/moto_server && -x $VENV/bin/aws ]] || ! "$VPY" -c 'import boto3, moto' 2>/dev/null; then
		log "== pip install moto[server] boto3 awscli into $VENV (a minute or two)"
		"$VPY" -m pip install --quiet 'moto[server]' boto3 awscli
	fi
}

build_pi_failover() {
	want pi-failover || return 0
	if [[ -z ${PI_FAILOVER_BIN:-} ]] && [[ ${BENCH_BUILD:-0} == 1 || ! -x $PF_BIN ]]; then
		command -v cargo >/dev/null || die "cargo not found; install Rust or set PI_FAILOVER_BIN"
		log "== cargo build --release"
		(cd "$REPO" && cargo build --release)
	fi
	[[ -x $PF_BIN ]] || die "$PF_BIN not found (set PI_FAILOVER_BIN, or leave pi-failover out of BENCH_TOOLS)"
	"$PF_BIN" sync --help >/dev/null 2>&1 ||
		die "$PF_BIN has no 'sync' subcommand (an older build? BENCH_BUILD=1 rebuilds it, or leave pi-failover out of BENCH_TOOLS)"
}

# ---------------------------------------------------------------- configs

write_configs() {
	local old_umask
	old_umask=$(umask)
	umask 077
	cat >"$CREDS" <<EOF
[default]
aws_access_key_id = $ACCESS_KEY
aws_secret_access_key = $SECRET_KEY
EOF
	cat >"$AWS_CONF" <<EOF
[default]
region = us-east-1
s3 =
    addressing_style = path
EOF
	cat >"$RCLONE_CONF" <<EOF
[bench]
type = s3
provider = Other
access_key_id = $ACCESS_KEY
secret_access_key = $SECRET_KEY
endpoint = $ENDPOINT
region = us-east-1
force_path_style = true
EOF
	cat >"$S3CFG" <<EOF
[default]
access_key = $ACCESS_KEY
secret_key = $SECRET_KEY
host_base = 127.0.0.1:$PORT
host_bucket = 127.0.0.1:$PORT
bucket_location = us-east-1
use_https = False
signature_v2 = False
EOF
	umask "$old_umask"
	if want pi-failover; then
		if [[ ! -s $CERT || ! -s $KEY ]] || ! openssl x509 -in "$CERT" -noout -checkend 86400 >/dev/null 2>&1; then
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
				-subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
				-keyout "$KEY" -out "$CERT" 2>/dev/null
		fi
		cat >"$PF_CONF" <<EOF
# Generated by bench/sync.sh; overwritten on every run.
[storage]
data_dir = "$PF_DATA"

[site]
hostnames = ["localhost"]

[[tls.certificates]]
cert = "$CERT"
key = "$KEY"

[s3]
bucket = "$BUCKET"
region = "us-east-1"
endpoint = "$ENDPOINT"
path_style = true
credentials_file = "$CREDS"
concurrency = 8
EOF
	fi
}

# The environment every tool runs in: our credentials and config files only.
env_unset=(-u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY
	-u AWS_SESSION_TOKEN -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_S3 -u AWS_REGION -u AWS_DEFAULT_REGION)
env_set=("AWS_SHARED_CREDENTIALS_FILE=$CREDS" "AWS_CONFIG_FILE=$AWS_CONF")

label_of() {
	case $1 in
	pi-failover) echo "pi-failover" ;;
	rclone) echo "rclone (defaults)" ;;
	rclone-fast) echo "rclone --fast-list --checksum" ;;
	s3cmd) echo "s3cmd --delete-removed" ;;
	aws) echo "aws s3 sync --delete" ;;
	esac
}

tree_of() { # tool -> the directory holding its copy of the site
	if [[ $1 == pi-failover ]]; then
		echo "$PF_DATA/site/current/files"
	else
		echo "$DST/$1"
	fi
}

CMD=()
tool_cmd() { # tool -> CMD=(the sync command)
	local d=$DST/$1
	case $1 in
	pi-failover) CMD=(env "${env_unset[@]}" "${env_set[@]}" "$PF_BIN" sync --once --config "$PF_CONF") ;;
	# Debian's rclone 1.60 refuses any S3 remote when AWS_CA_BUNDLE is set (even over http).
	rclone) CMD=(env "${env_unset[@]}" -u AWS_CA_BUNDLE "${env_set[@]}" "$RCLONE" --config "$RCLONE_CONF" sync "bench:$BUCKET" "$d") ;;
	rclone-fast) CMD=(env "${env_unset[@]}" -u AWS_CA_BUNDLE "${env_set[@]}" "$RCLONE" --config "$RCLONE_CONF" sync --fast-list --checksum "bench:$BUCKET" "$d") ;;
	s3cmd) CMD=(env "${env_unset[@]}" "${env_set[@]}" s3cmd -c "$S3CFG" sync --delete-removed --no-progress "s3://$BUCKET/" "$d/") ;;
	aws) CMD=(env "${env_unset[@]}" "${env_set[@]}" "$VENV/bin/aws" --endpoint-url "$ENDPOINT" s3 sync --delete --only-show-errors "s3://$BUCKET/" "$d/") ;;
	esac
}

# ---------------------------------------------------------------- moto

MOTO_PID=""
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_moto() {
	local i t0
	port_busy "$PORT" && die "port $PORT is already in use (a leftover moto_server? ss -ltnp 'sport = :$PORT')"
	: >"$MOTO_LOG"
	t0=$(date +%s.%N)
	# Werkzeug writes one access line per request to stderr.
	"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >>"$MOTO_LOG" 2>&1 &
	MOTO_PID=$!
	for ((i = 0; i < 600; i++)); do
		if curl -s -o /dev/null --max-time 2 "$ENDPOINT/"; then
			log "   moto_server pid $MOTO_PID answered after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
			return 0
		fi
		kill -0 "$MOTO_PID" 2>/dev/null || { tail -n 20 "$MOTO_LOG" >&2; MOTO_PID=""; die "moto_server exited during start-up"; }
		sleep 0.1
	done
	die "moto_server did not answer $ENDPOINT within 60 s"
}

stop_moto() {
	[[ -n $MOTO_PID ]] || return 0
	kill -TERM "$MOTO_PID" 2>/dev/null || true
	local i
	for ((i = 0; i < 50; i++)); do
		kill -0 "$MOTO_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$MOTO_PID" 2>/dev/null && kill -KILL "$MOTO_PID" 2>/dev/null
	wait "$MOTO_PID" 2>/dev/null || true
	MOTO_PID=""
}

TOOL_PID=""
cleanup() {
	local rc=$? kids
	trap - EXIT INT TERM
	if [[ -n $TOOL_PID ]]; then # /usr/bin/time and the tool it runs
		mapfile -t kids < <(pgrep -P "$TOOL_PID" || true)
		kill -TERM "${kids[@]}" "$TOOL_PID" 2>/dev/null || true
		wait "$TOOL_PID" 2>/dev/null || true
	fi
	stop_moto
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log_size() { stat -c %s "$MOTO_LOG"; }

settle_log() { # waits until moto's log has not grown for 0.6 s (at most 15 s)
	local prev=-1 cur stable=0 i
	for ((i = 0; i < 75; i++)); do
		cur=$(log_size)
		if ((cur == prev)); then
			stable=$((stable + 1))
			((stable >= 3)) && return 0
		else
			stable=0
		fi
		prev=$cur
		sleep 0.2
	done
	log "   (moto's log still growing after 15 s; counting what is there)"
}

# count_requests offset -> "total list head get other" for the access lines after offset.
# LIST = GET on the bucket itself (ListObjects v1/v2); sub-resource GETs on the bucket
# (?location, ?acl, ...), PUT/POST/DELETE and GET / (ListBuckets) are "other".
count_requests() {
	tail -c +"$(($1 + 1))" "$MOTO_LOG" | awk -v bucket="$BUCKET" '
		match($0, /"[A-Z]+ [^ "]+ HTTP\/[0-9.]+"/) {
			split(substr($0, RSTART + 1, RLENGTH - 2), p, " ")
			m = p[1]; u = p[2]; path = u; q = ""
			k = index(u, "?")
			if (k > 0) { path = substr(u, 1, k - 1); q = substr(u, k + 1) }
			total++
			if (m == "HEAD") { head++; next }
			if (m == "GET" && (path == "/" bucket || path == "/" bucket "/")) {
				if (q ~ /(^|&)(location|acl|policy|versioning|website|cors|lifecycle|tagging|encryption|logging|notification|replication|uploads|versions|object-lock|ownershipControls|publicAccessBlock|requestPayment|accelerate|analytics|metrics|inventory|intelligent-tiering)(=|&|$)/) { other++ } else { list++ }
				next
			}
			if (m == "GET" && index(path, "/" bucket "/") == 1 && length(path) > length(bucket) + 2) { get++; next }
			other++
		}
		END { printf "%d %d %d %d %d\n", total, list, head, get, other }'
}

# ---------------------------------------------------------------- /proc accounting

CLK_TCK=$(getconf CLK_TCK)
PS_BUSY=0 PS_TOTAL=0
read_proc_stat() {
	local _cpu user nice system idle iowait irq softirq steal _rest
	read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
	PS_BUSY=$((user + nice + system + irq + softirq + steal))
	PS_TOTAL=$((PS_BUSY + idle + iowait))
}

pid_ticks() { # pid -> utime+stime
	local line f
	read -r line 2>/dev/null <"/proc/$1/stat" || { echo 0; return 0; }
	read -r -a f <<<"${line##*) }"
	echo $((f[11] + f[12]))
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

# ---------------------------------------------------------------- one run

time_field() { # file "label" -> value after the last ': ' of that /usr/bin/time -v line
	sed -n "s/^[[:space:]]*$2: //p" "$1" | tail -n 1
}

wall_seconds() { # "h:mm:ss" or "m:ss.ss" -> seconds
	awk -v t="$1" 'BEGIN { n = split(t, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }'
}

RUN_NO=0
run_tool() { # tool phase manifest
	local tool=$1 phase=$2 manifest=$3 tfile lfile cfile dir off b0 t0 b1 t1 m0 m1 rc=0
	local wall rss user sys counts check others tree
	RUN_NO=$((RUN_NO + 1))
	tfile=$TIMES/$tool-$phase.txt lfile=$LOGS/$tool-$phase.log cfile=$CHECKS/$tool-$phase.txt
	if [[ $phase == full ]]; then
		if [[ $tool == pi-failover ]]; then
			rm -rf "$PF_DATA"
			mkdir -p "$PF_DATA"
		else
			rm -rf "${DST:?}/$tool"
			mkdir -p "$DST/$tool"
		fi
	fi
	tool_cmd "$tool"
	wait_quiet
	settle_log
	off=$(log_size)
	m0=$(pid_ticks "$MOTO_PID")
	read_proc_stat; b0=$PS_BUSY t0=$PS_TOTAL
	# In the background, so that Ctrl-C or SIGTERM reach the trap at once (cleanup stops the tool).
	/usr/bin/time -v -o "$tfile" "${CMD[@]}" >"$lfile" 2>&1 </dev/null &
	TOOL_PID=$!
	wait "$TOOL_PID" || rc=$?
	TOOL_PID=""
	read_proc_stat; b1=$PS_BUSY t1=$PS_TOTAL
	m1=$(pid_ticks "$MOTO_PID")
	kill -0 "$MOTO_PID" 2>/dev/null || die "moto_server died during $tool $phase (see $MOTO_LOG)"
	settle_log
	counts=$(count_requests "$off")

	wall=$(wall_seconds "$(time_field "$tfile" 'Elapsed (wall clock) time (h:mm:ss or m:ss)')")
	rss=$(time_field "$tfile" 'Maximum resident set size (kbytes)')
	user=$(time_field "$tfile" 'User time (seconds)')
	sys=$(time_field "$tfile" 'System time (seconds)')
	others=$(awk -v busy="$((b1 - b0))" -v tot="$((t1 - t0))" -v tool="$user $sys" -v moto="$((m1 - m0))" -v hz="$CLK_TCK" \
		'BEGIN { split(tool, c, " "); o = busy / hz - (c[1] + c[2]) - moto / hz; if (o < 0) o = 0
		         printf "%.3f", (tot > 0 ? o / (tot / hz) : 0) }')

	dir=$(tree_of "$tool")
	if [[ $tool == pi-failover ]]; then
		check=$("$VPY" "$HERE/seed-bucket.py" compare --manifest "$manifest" --dir "$dir" --ignore-compressed --details "$cfile")
	else
		check=$("$VPY" "$HERE/seed-bucket.py" compare --manifest "$manifest" --dir "$dir" --details "$cfile")
	fi
	local -A C=()
	local kv kvs
	read -r tree kvs <<<"$check"
	read -r -a kvs <<<"$kvs"
	for kv in "${kvs[@]}"; do C[${kv%%=*}]=${kv#*=}; done

	local total list head get other
	read -r total list head get other <<<"$counts"
	printf '%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.2f\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n' \
		"$(date -u +%FT%TZ)" "$phase" "$RUN_NO" "$tool" "$(label_of "$tool")" "$OBJECTS" "$rc" "$wall" "$rss" \
		"$user" "$sys" "$total" "$list" "$head" "$get" "$other" "$(awk -v t="$((m1 - m0))" -v hz="$CLK_TCK" 'BEGIN { print t / hz }')" \
		"$others" "$tree" "${C[files]}" "${C[missing]}" "${C[stale]}" "${C[extra]}" "${C[ignored]}" "$SITE" >>"$RESULTS"
	log "$(printf '   %-5s %-12s %8.2f s  %6d req (LIST %d, HEAD %d, GET %d, other %d)  %6.1f MB  exit %d  tree %s' \
		"$phase" "$tool" "$wall" "$total" "$list" "$head" "$get" "$other" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$rc" \
		"$(if [[ $tree == ok ]]; then echo ok; else echo "${check#bad }"; fi)")"
	if ((rc != 0)); then
		log "   $tool exited $rc; last lines of $lfile:"
		tail -n 5 "$lfile" | sed 's/^/     | /' >&2
	fi
}

# ---------------------------------------------------------------- versions

collect_versions() {
	local cpu
	cpu=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -n1)
	[[ -n $cpu ]] || cpu=$(sed -n 's/^\(Model\|Hardware\)[[:space:]]*: *//p' /proc/cpuinfo | head -n1)
	{
		echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "host: $(uname -m), kernel $(uname -r), $(getconf _NPROCESSORS_ONLN) CPUs, ${cpu:-unknown CPU}"
		echo "S3 server: moto_server $("$VPY" -c 'import moto; print(moto.__version__)') (Python $("$VPY" -c 'import platform; print(platform.python_version())'))," \
			"boto3 $("$VPY" -c 'import boto3; print(boto3.__version__)') for seeding"
		if want pi-failover; then
			echo "pi-failover: $("$PF_BIN" --version 2>/dev/null | head -n1 || echo "version unknown"), \`sync --once\`, concurrency 8"
		fi
		if want rclone || want rclone-fast; then
			echo "rclone: $(env -u AWS_CA_BUNDLE "$RCLONE" version 2>/dev/null | head -n1) (defaults: --checkers 8 --transfers 4)"
		fi
		if want s3cmd; then echo "s3cmd: $(s3cmd --version 2>&1 | head -n1)"; fi
		if want aws; then echo "aws-cli: $("$VENV/bin/aws" --version 2>&1 | head -n1)"; fi
		echo "tool order: full ${TOOLS[*]}; noop ${REV[*]}; delta ${TOOLS[*]}"
	} >"$VERSIONS"
}

# ---------------------------------------------------------------- main

build_pi_failover
install_tools
if want rclone || want rclone-fast; then
	command -v "$RCLONE" >/dev/null || die "rclone not found ($RCLONE)"
fi
mkdir -p "$OUT" "$WORK"
rm -rf "${WORK:?}/dst" "$PF_DATA" "$TIMES" "$LOGS" "$CHECKS"
mkdir -p "$DST" "$TIMES" "$LOGS" "$CHECKS"
rm -f "$RESULTS" "$SUMMARY" "$META" "$MANIFEST_BEFORE" "$MANIFEST_AFTER" "$MUTATION"
write_configs

REV=()
for ((k = ${#TOOLS[@]} - 1; k >= 0; k--)); do REV+=("${TOOLS[k]}"); done
collect_versions
sed 's/^/   /' "$VERSIONS" >&2

log "== moto_server on $ENDPOINT"
start_moto

# The site's arguments to seed-bucket.py: the docs site has a fixed size.
if [[ $SITE == small ]]; then
	SITE_ARGS=(--site small --objects "$OBJECTS")
	log "== seeding bucket '$BUCKET' with $OBJECTS objects (small site)"
else
	SITE_ARGS=(--site "$SITE")
	log "== seeding bucket '$BUCKET' with the $SITE site"
fi
"$VPY" "$HERE/seed-bucket.py" seed --endpoint "$ENDPOINT" --bucket "$BUCKET" "${SITE_ARGS[@]}" --manifest "$MANIFEST_BEFORE" >&2
"$VPY" "$HERE/seed-bucket.py" verify --endpoint "$ENDPOINT" --bucket "$BUCKET" --manifest "$MANIFEST_BEFORE" >&2
OBJECTS=$(awk 'END { print NR }' "$MANIFEST_BEFORE")
{
	echo "site=$SITE"
	echo "objects=$OBJECTS"
	echo "bytes=$(awk -F'\t' '{ s += $3 } END { print s + 0 }' "$MANIFEST_BEFORE")"
} >"$META"

printf 'ts\tphase\trun\ttool\tlabel\tobjects\trc\twall_s\tpeak_rss_kb\tuser_s\tsys_s\trequests\tlist\thead\tget\tother\tmoto_cpu_s\tothers_share\ttree\tfiles\tmissing\tstale\textra\tignored\tsite\n' >"$RESULTS"

# Tools alternate: full in BENCH_TOOLS order, noop reversed, delta in order again, so no tool
# is always first or last after a phase change.
log "== full: sync into an empty directory"
for t in "${TOOLS[@]}"; do run_tool "$t" full "$MANIFEST_BEFORE"; done
log "== noop: the same sync again"
for t in "${REV[@]}"; do run_tool "$t" noop "$MANIFEST_BEFORE"; done

log "== mutating the bucket: 1 % rewritten (half same-size), 1 % deleted"
mut=$("$VPY" "$HERE/seed-bucket.py" mutate --endpoint "$ENDPOINT" --bucket "$BUCKET" "${SITE_ARGS[@]}" \
	--manifest "$MANIFEST_AFTER" --plan "$MUTATION")
log "   $mut"
"$VPY" "$HERE/seed-bucket.py" verify --endpoint "$ENDPOINT" --bucket "$BUCKET" --manifest "$MANIFEST_AFTER" >&2
{
	echo "changed=$(grep -c -v '^deleted' "$MUTATION" || true)"
	echo "same_size=$(grep -c '^same-size' "$MUTATION" || true)"
	echo "deleted=$(grep -c '^deleted' "$MUTATION" || true)"
} >>"$META"

log "== delta: each tool from its own copy"
for t in "${TOOLS[@]}"; do run_tool "$t" delta "$MANIFEST_AFTER"; done

stop_moto
summarize
log ""
cat "$SUMMARY"
log ""
log "results: $RESULTS  summary: $SUMMARY  logs: $LOGS"
