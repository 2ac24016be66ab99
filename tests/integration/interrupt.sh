#!/usr/bin/env bash
# SIGINT or SIGTERM during a large copy: kcopy stops submitting, drains the I/O
# in flight, flushes, says for each destination how many sectors it wrote, and
# exits 128+N (130, 143).  A second (and third) SIGINT during the drain changes
# nothing.  Afterwards:
#   - nothing outside the destination ranges changed;
#   - every sub-job-sized chunk of each destination range (chunks counted from
#     the range's start, which is aligned to them) is entirely its old content
#     or entirely the source's: no torn chunk, whatever order sub-jobs end in;
#   - at least as many sectors hold the source's data as kcopy says it wrote;
#   - no I/O is left behind: the devices read with O_DIRECT give the same
#     sha256 right after kcopy exits, 1 s later, and after flushing their page
#     cache (so no dirty page of kcopy's was waiting to be written back).
# The copy (512 MiB to two destinations through a small pool) takes seconds;
# the signal comes after 0.3 s.  Should a machine be so fast that the copy
# ends before the signal, the run checks the complete copy instead and the
# test is reported as skipped (77) rather than failed; a kcopy that goes on
# for more than 1 s after the signal fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_python
env --default-signal=INT true 2>/dev/null || skip "env --default-signal not supported (coreutils < 8.31)"

SRC_SECTORS=1048576 # 512 MiB
DS=2048             # both destinations at 1 MiB: a multiple of every sub-job size used
DST_BYTES=$((516 << 20))
src_img=$(make_image src.img 512M)
src_sum=$(reference digest "$src_img")
src=$(attach "$src_img")

inconclusive=()
failed=()

# new_destination NAME: a 516 MiB image, random in its first 1 MiB and its
# last 3 MiB (around the range), zeroes (sparse) in the range; prints its path.
new_destination() {
    local path=$SCRATCH/$1.img
    truncate -s "$DST_BYTES" "$path"
    head -c 1M /dev/urandom | dd of="$path" conv=notrunc status=none
    head -c 3M /dev/urandom | dd of="$path" bs=1M seek=513 conv=notrunc status=none
    printf '%s\n' "$path"
}

# _exited PID: PID is gone or a zombie.
_exited() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat%% *} == Z ]]
}

_now_us() { echo "${EPOCHREALTIME/./}"; }

# interrupted LABEL WANT "SIGNALS" CHUNK [KCOPY OPTIONS...]: copy all of the
# source to two fresh destinations at $DS; 0.3 s after the start send the
# first of SIGNALS (e.g. "INT", "TERM", "INT INT INT"; the next ones 10 ms and
# 50 ms later); kcopy must exit WANT; then check the destinations as the
# header says, in chunks of CHUNK sectors.
interrupted() {
    local label=$1 want=$2 signals=$3 chunk=$4
    shift 4
    local d1img d2img d1orig d2orig d1 d2 pid rc=0 t_sig=0 t_end sig i n
    printf '\n== %s\n' "$label"
    d1img=$(new_destination "d1.$RANDOM")
    d2img=$(new_destination "d2.$RANDOM")
    d1orig=$(pristine_copy "$d1img")
    d2orig=$(pristine_copy "$d2img")
    d1=$(attach "$d1img")
    d2=$(attach "$d2img")
    local cmd=("$KCOPY" "$@" "$src" "$d1:$DS" "$d2:$DS")
    printf '  $ %s &   # then SIG%s after 0.3 s; want exit %s\n' "$(show_cmd "${cmd[@]}")" "${signals// /, SIG}" "$want"
    # Default dispositions (as at a terminal): a background job of a script
    # would otherwise start with SIGINT ignored.
    env --default-signal=INT,TERM "${cmd[@]}" >"$STDOUT_FILE" 2>"$STDERR_FILE" </dev/null &
    pid=$!
    _CHILD_PID=$pid
    local t0
    t0=$(_now_us)
    sleep 0.3
    i=0
    for sig in $signals; do
        case $i in 1) sleep 0.01 ;; 2) sleep 0.04 ;; esac
        if ! _exited "$pid"; then
            ((i > 0)) || t_sig=$(_now_us)
            kill -s "$sig" "$pid" 2>/dev/null || true
        fi
        i=$((i + 1))
    done
    while ! _exited "$pid"; do
        if (($(_now_us) - t0 > KCOPY_TEST_TIMEOUT * 1000000)); then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            _CHILD_PID=
            fail "$label: kcopy still running ${KCOPY_TEST_TIMEOUT}s after its start (killed)"
        fi
        sleep 0.01
    done
    t_end=$(_now_us)
    wait "$pid" || rc=$?
    _CHILD_PID=
    if [[ -s $STDERR_FILE ]]; then sed 's/^/    stderr: /' "$STDERR_FILE"; fi
    printf '    exit %s, %d ms after the start, %s\n' "$rc" $(((t_end - t0) / 1000)) \
        "$( ((t_sig)) && echo "$(((t_end - t_sig) / 1000)) ms after the first signal" || echo "before any signal")"

    if ((rc == 0)); then
        # The copy finished: fine only if the signal came too late to stop it.
        if ((t_sig)) && ((t_end - t_sig > 1000000)); then
            fail "$label: exit 0 more than 1 s after SIG${signals%% *}: the signal did not stop the copy"
        fi
        check "$label: the copy ended before the signal could stop it: both destinations are complete copies"
        local d dorig out
        for d in "$d1:$d1orig" "$d2:$d2orig"; do
            dorig=${d#*:}
            d=${d%%:*}
            blockdev --flushbufs "$d" || fail "cannot flush buffers of $d"
            out=$(reference chunks "$d" "$dorig" "$src_img" 0 "$SRC_SECTORS" "$DS" "$chunk") ||
                fail "$label: $d: $(head -n 1 <<<"$out")"
            [[ $out == "written=$SRC_SECTORS "* ]] || fail "$label: exit 0 but $d is not a complete copy: $(head -n 1 <<<"$out")"
        done
        inconclusive+=("$label")
        return 0
    fi
    ((rc == want)) || fail "$label: exit status $rc, want $want: $(show_cmd "${cmd[@]}")"

    check "$label: stderr says for each destination how many of its $SRC_SECTORS sectors were written"
    local -A said
    for d in "$d1" "$d2"; do
        n=$(grep -F -- "$d" "$STDERR_FILE" | sed -n 's/.*[^0-9]\([0-9][0-9]*\) of \([0-9][0-9]*\) sectors written.*/\1 \2/p' | head -n 1) || true
        [[ -n $n ]] || fail "$label: no line naming $d with 'N of M sectors written'"
        [[ ${n#* } == "$SRC_SECTORS" ]] || fail "$label: $d: 'of ${n#* }' sectors, want of $SRC_SECTORS"
        ((${n%% *} <= SRC_SECTORS)) || fail "$label: $d: ${n%% *} written of $SRC_SECTORS"
        said[$d]=${n%% *}
    done

    # Right after the exit: the chunk check, which also hashes what each
    # device holds (read with O_DIRECT).  Then, 1 s later and after flushing
    # the page cache, the hashes again.
    local d dorig out first=() i=0
    for d in "$d1:$d1orig" "$d2:$d2orig"; do
        dorig=${d#*:}
        d=${d%%:*}
        check "$label: $d: nothing outside sectors $DS+$SRC_SECTORS changed; every $chunk-sector chunk is all old or all source"
        out=$(reference chunks "$d" "$dorig" "$src_img" 0 "$SRC_SECTORS" "$DS" "$chunk") ||
            fail "$label: $d: $(head -n 1 <<<"$out")"
        echo "    $d: $(head -n 1 <<<"$out") (kcopy said ${said[$d]})"
        local written=${out#written=} claimed=${said[$d]}
        written=${written%% *}
        ((written >= claimed)) ||
            fail "$label: $d: kcopy says $claimed sectors written, only $written hold the source's data"
        first+=("$(sed -n 's/^sha256=//p' <<<"$out")")
    done
    check "$label: no I/O after exit: the O_DIRECT sha256 of each destination is the same 1 s later and after flushing its page cache"
    sleep 1
    blockdev --flushbufs "$d1" "$d2" || fail "cannot flush buffers of $d1 $d2"
    for d in "$d1" "$d2"; do
        [[ $(direct_sha "$d") == "${first[i]}" ]] ||
            fail "$label: $d changed after kcopy had exited (late I/O, or dirty pages left in its page cache)"
        i=$((i + 1))
    done
    # Free the space of this run's destinations.
    _detach "$d1" "$(realpath -- "$d1img")"
    _detach "$d2" "$(realpath -- "$d2img")"
    rm -f -- "$d1img" "$d2img" "$d1orig" "$d2orig"
}

# run_case ARGS...: interrupted ARGS in a subshell; record a failure, go on.
run_case() {
    local rc
    set +e
    (
        set -e
        interrupted "$@"
        # Tell the parent about an inconclusive run (subshell arrays are lost).
        ((${#inconclusive[@]} == 0)) || exit 77
    )
    rc=$?
    set -e
    case $rc in
    0) ;;
    77) inconclusive+=("$1") ;;
    *) failed+=("$1") ;;
    esac
}

slow=(--io-size 64K --pages 64) # 4 sub-jobs of 64 KiB in flight: seconds for 512 MiB
run_case "SIGINT, 64K sub-jobs" 130 INT 128 "${slow[@]}"
run_case "SIGTERM, 64K sub-jobs" 143 TERM 128 "${slow[@]}"
run_case "three SIGINTs, 64K sub-jobs" 130 "INT INT INT" 128 "${slow[@]}"
# 16 MiB in flight: the 2nd and 3rd SIGINT come while much I/O drains.
run_case "three SIGINTs, 1M sub-jobs, 16 MiB in flight" 130 "INT INT INT" 2048 --io-size 1M --pages 4096
run_case "SIGINT then SIGTERM, 1M sub-jobs" 130 "INT TERM" 2048 --io-size 1M --pages 4096
run_case "three SIGINTs, buffered, 64K sub-jobs" 130 "INT INT INT" 128 --buffered "${slow[@]}"
run_case "SIGTERM, buffered, 1M sub-jobs" 143 TERM 2048 --buffered --io-size 1M --pages 4096

check "the source is unchanged"
[[ $(direct_sha "$src") == "$src_sum" ]] || failed+=("source changed")

if ((${#failed[@]})); then
    printf 'failed case: %s\n' "${failed[@]}" >&2
    fail "${#failed[@]} case(s) failed"
fi
if ((${#inconclusive[@]})); then
    printf 'copy finished before the signal: %s\n' "${inconclusive[@]}"
    skip "${#inconclusive[@]} case(s) finished before the signal could stop them (machine too fast for this test)"
fi
pass
