#!/bin/bash
# Measures wsa-loadgen against wsa-fastecho, the fastest peer we have, to
# show that the generator is not what limits a benchmark: fastecho pinned
# to core 0, the generator to core 1, raw echo, 16 connections x 16 in
# flight, 16-byte messages.  Prints the rate and each process's CPU use.
# Then checks the generator's framing against a harsh fastecho (replies
# cut into 3-byte fragments with pings between them, written 5 bytes per
# send): it must see no error.
#
# usage: bench/loadgen/selftest.sh [--framing-only] [BUILDDIR]   (build)
#        bench/loadgen/selftest.sh [--framing-only] LOADGEN FASTECHO
# environment: DURATION (5), WARMUP (1), CONNS (16), INFLIGHT (16), SIZE (16)
set -euo pipefail

framing_only=
if [ "${1:-}" = --framing-only ]; then
	framing_only=1
	shift
fi
if [ $# -eq 2 ]; then
	loadgen=$1 fastecho=$2
else
	loadgen=${1:-build}/bench/loadgen/wsa-loadgen
	fastecho=${1:-build}/bench/loadgen/wsa-fastecho
fi
duration=${DURATION:-5}
warmup=${WARMUP:-1}
conns=${CONNS:-16}
inflight=${INFLIGHT:-16}
size=${SIZE:-16}
tck=$(getconf CLK_TCK)

for f in "$loadgen" "$fastecho"; do
	[ -x "$f" ] || { echo "selftest: $f is not built" >&2; exit 2; }
done

# Pin only where there are two cores to pin to.
pin0=() pin1=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	pin0=(taskset -c 0) pin1=(taskset -c 1)
fi

# CPU seconds a process has used so far (utime + stime of /proc/PID/stat;
# the command name in field 2 holds no blanks here).
cpu_of() {
	awk -v t="$tck" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"
}

json_get() { # KEY JSONLINE
	sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<<"$2"
}

fe_pid= fe_status=0
stop_fastecho() {
	fe_status=0
	if [ -n "$fe_pid" ]; then
		kill "$fe_pid" 2>/dev/null || true
		wait "$fe_pid" || fe_status=$?
		fe_pid=
	fi
}
trap stop_fastecho EXIT

# Starts fastecho with the given options; sets fe_pid and url.  The URL
# is its first line of output: no guessing how long it takes to start.
start_fastecho() {
	coproc FE { exec "${pin0[@]}" "$fastecho" "$@"; }
	fe_pid=$FE_PID
	if ! read -t 10 -r url <&"${FE[0]}"; then
		echo "selftest: fastecho did not start" >&2
		exit 2
	fi
}

speed() {
	local out t0 t1 fe_cpu0 fe_cpu1 errors

	echo "== speed: raw echo, $conns conns x $inflight in flight," \
		"$size B, $duration s (+$warmup s warm-up)"
	start_fastecho
	fe_cpu0=$(cpu_of "$fe_pid")
	t0=$(date +%s.%N)
	out=$("${pin1[@]}" "$loadgen" --url "$url" --proto raw --mode echo \
		--conns "$conns" --inflight "$inflight" --size "$size" \
		--duration "$duration" --warmup "$warmup")
	t1=$(date +%s.%N)
	fe_cpu1=$(cpu_of "$fe_pid")
	stop_fastecho
	[ "$fe_status" -eq 0 ] || { echo "selftest: fastecho failed" >&2; exit 1; }
	errors=$(json_get errors "$out")
	awk -v r="$(json_get msgs_per_s "$out")" -v e="$errors" \
		-v p50="$(json_get p50_us "$out")" \
		-v p99="$(json_get p99_us "$out")" \
		-v lc="$(json_get client_cpu_total_s "$out")" \
		-v f0="$fe_cpu0" -v f1="$fe_cpu1" -v t0="$t0" -v t1="$t1" 'BEGIN {
		f = f1 - f0
		w = t1 - t0
		printf "rate: %.0f msgs/s (p50 %s us, p99 %s us), errors %d\n",
			r, p50, p99, e
		printf "CPU over %.2f s: wsa-loadgen %.2f s (%.0f %%), " \
			"wsa-fastecho %.2f s (%.0f %%)\n",
			w, lc, 100 * lc / w, f, 100 * f / w
	}'
	[ "$errors" = 0 ] || { echo "selftest: errors in the speed run" >&2; exit 1; }
}

framing() {
	local out errors messages

	echo "== framing: replies in 3-byte fragments with pings, 5 bytes" \
		"per send"
	start_fastecho --fragment 3 --chunk 5
	out=$("$loadgen" --url "$url" --proto raw --mode echo --conns 4 \
		--inflight 4 --size 40 --duration 1 --warmup 0)
	stop_fastecho
	errors=$(json_get errors "$out")
	messages=$(json_get messages "$out")
	echo "replies $messages, pings answered $(json_get pings "$out")," \
		"errors $errors, fastecho status $fe_status"
	if [ "$errors" != 0 ] || [ "$fe_status" -ne 0 ] ||
		[ "$messages" -eq 0 ]; then
		echo "selftest: framing check failed" >&2
		exit 1
	fi
}

[ -n "$framing_only" ] || speed
framing
echo "selftest: passed"
