# mapfile_lib.sh — helpers for the --mapfile tests (mapfile_*.sh).  Sourced
# after lib.sh, never run.
#
# GNU ddrescue's own tools are the judges of every mapfile kcopy writes:
#   ddrescuelog -t MAP          reads it (exit 2 for a corrupt one) and sums it up
#   ddrescuelog -l TYPES -b512  lists the 512-byte sectors of the given types
#   ddrescuelog -p REF MAP      compares the block types of two maps (exit 0: same)
#   ddrescuelog -D [-i -s] MAP  exit 0 when the (domain of the) rescue is finished
# and ddrescue itself continues kcopy's maps (and kcopy ddrescue's).
# Positions in a mapfile are bytes on the SOURCE (absolute, not relative to the
# copied range).

# need_mapfile: skip (77) without GNU ddrescue's tools or jq; fail when the
# kcopy under test has no --mapfile option.
need_mapfile() {
    command -v ddrescuelog >/dev/null || skip "ddrescuelog not installed (apt-get install gddrescue)"
    command -v ddrescue >/dev/null || skip "ddrescue not installed (apt-get install gddrescue)"
    command -v jq >/dev/null || skip "jq not installed"
    "$KCOPY" --help 2>&1 | grep -q -- '--mapfile' || fail "$KCOPY has no --mapfile option"
}

# --- reading maps with ddrescuelog -------------------------------------------

# expect_map_readable WHAT MAP: ddrescuelog reads MAP without complaint.
expect_map_readable() {
    local out
    out=$(ddrescuelog -t -- "$2" 2>&1) || fail "$1: ddrescuelog cannot read $2: $out"
}

# map_sectors MAP TYPES [POS SIZE]: the 512-byte sectors (absolute source
# sector numbers, one a line) whose type is one of TYPES (e.g. "+", "?*/-"),
# inside bytes [POS, POS+SIZE) when given; as ddrescuelog lists them.
map_sectors() {
    local map=$1 types=$2 dom=() out
    (($# >= 4)) && dom=(-i "$3" -s "$4")
    out=$(ddrescuelog -l"$types" -b512 "${dom[@]}" -- "$map" 2>&1) || fail "ddrescuelog -l$types $map: $out"
    [[ -z $out ]] || printf '%s\n' "$out"
}

# map_runs MAP TYPES [POS SIZE]: the same sectors as runs, "START COUNT" a line.
map_runs() {
    map_sectors "$@" | awk '
        NR == 1 { s = $1; n = 1; next }
        $1 == s + n { n++; next }
        { print s, n; s = $1; n = 1 }
        END { if (NR) print s, n }'
}

# map_bytes MAP TYPES [POS SIZE]: how many bytes of those types (whole sectors).
map_bytes() {
    local n
    n=$(map_sectors "$@" | wc -l)
    echo $((n * 512))
}

# write_map FILE [COMMENT...]: write a mapfile in ddrescue's format from the
# blocks "POS SIZE STATUS" (bytes, any C integer notation) read on stdin, with
# each COMMENT as a "# COMMENT" line before the status line.  The status line
# is "0x0 ? 1" (copying, at 0).  Nothing is checked: corrupt maps are wanted too.
write_map() {
    local file=$1 c pos size st
    shift
    {
        echo "# Mapfile. Created by GNU ddrescue version 1.27"
        for c in "$@"; do echo "# $c"; done
        echo "# current_pos  current_status  current_pass"
        echo "0x00000000     ?               1"
        echo "#      pos        size  status"
        while read -r pos size st; do
            [[ -n $pos ]] || continue
            printf '0x%08X  0x%08X  %s\n' "$((pos))" "$((size))" "$st"
        done
    } >"$file" || fail "cannot write $file"
}

# expect_map_equals WHAT MAP REF: MAP has exactly the blocks of REF (same
# extent, same type at every byte), as ddrescuelog -p judges.
expect_map_equals() {
    local what=$1 map=$2 ref=$3 out
    if ! out=$(ddrescuelog -p "$ref" "$map" 2>&1); then
        echo "    expected blocks:" >&2
        grep -v '^#' "$ref" | sed 's/^/      /' >&2
        echo "    blocks of $map:" >&2
        grep -v '^#' "$map" | sed 's/^/      /' >&2
        fail "$what: $map is not the map expected ($out)"
    fi
}

# expect_no_temp_files MAP: no other file whose name starts with MAP's (a
# temporary file of an atomic rewrite, "MAP.kcopy-XXXXXX") is left next to it.
expect_no_temp_files() {
    local f left=()
    for f in "$1"?* "$(dirname -- "$1")/.$(basename -- "$1")"*; do
        [[ -e $f || -L $f ]] && left+=("$f")
    done
    ((${#left[@]} == 0)) || fail "files left next to the mapfile: ${left[*]}"
}

# expect_json_string EXPR STRING: EXPR is the JSON string STRING.
expect_json_string() {
    expect_json "$1" "$(jq -cn --arg s "$2" '$s')"
}

# --- devices ----------------------------------------------------------------------

# sectors_read DEV: the sectors read from block device DEV since it was set up
# (/sys/block/NAME/stat, field 3): what a command really read from it.
sectors_read() {
    local f
    read -ra f <"/sys/block/$(basename -- "$(realpath -- "$1")")/stat" || fail "cannot read the stats of $1"
    echo "${f[2]}"
}

# sectors_written DEV: the sectors written to block device DEV since it was set
# up (/sys/block/NAME/stat, field 7).
sectors_written() {
    local f
    read -ra f <"/sys/block/$(basename -- "$(realpath -- "$1")")/stat" || fail "cannot read the stats of $1"
    echo "${f[6]}"
}

# wait_not_held DEV: wait (up to 10 s) until block device DEV can be opened
# with O_EXCL again: after a SIGKILL the kernel releases a killed process's
# io_uring or AIO context, and the devices it holds, a little later.
wait_not_held() {
    python3 - "$1" <<'PY' || fail "$1 is still held open exclusively 10 s after kcopy was killed"
import os, sys, time
for _ in range(100):
    try:
        os.close(os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL))
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
}

# write_image_to_device IMAGE DEV: replace the contents of DEV by IMAGE (same
# size), through the device with O_DIRECT, and drop its page cache.
write_image_to_device() {
    dd if="$1" of="$2" bs=1M oflag=direct status=none || fail "cannot write $1 to $2"
    blockdev --flushbufs "$2" || fail "cannot flush buffers of $2"
}

# model_from_map OUT BASE OTHER MAP TYPES [SHIFT]: OUT := BASE (a file), with the
# sectors of OTHER where MAP lists a sector of one of TYPES.  SHIFT (sectors,
# default 0) is added to a map position to get the sector in OUT and OTHER
# (a destination at another offset than its source range).
model_from_map() {
    local out=$1 base=$2 other=$3 map=$4 types=$5 shift=${6:-0} s n
    cp --sparse=always -- "$base" "$out" || fail "cannot copy $base"
    while read -r s n; do
        dd if="$other" of="$out" bs=512 skip=$((s + shift)) seek=$((s + shift)) count="$n" conv=notrunc status=none ||
            fail "cannot build model $out"
    done < <(map_runs "$map" "$types")
}

# --- kcopy in the background, stopped by a signal ------------------------------

# start_kcopy ARGS...: run kcopy ARGS in the background with the default
# signal dispositions (a background job of a script would ignore SIGINT),
# stdout and stderr to $STDOUT_FILE and $STDERR_FILE; sets BG_PID.
start_kcopy() {
    printf '  $ %s &\n' "$(show_cmd "$KCOPY" "$@")"
    env --default-signal=INT,TERM,HUP "$KCOPY" "$@" >"$STDOUT_FILE" 2>"$STDERR_FILE" </dev/null &
    BG_PID=$!
    _CHILD_PID=$BG_PID
}

# bg_running: the background kcopy has not exited (a zombie counts as exited).
bg_running() {
    local stat
    stat=$(cat "/proc/$BG_PID/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# wait_map_finished MAP BYTES: wait (up to KCOPY_TEST_TIMEOUT) until the
# background kcopy's MAP lists at least BYTES finished bytes; prints them.
# Every version of MAP seen on the way must be a valid mapfile (it is only
# ever replaced whole); fails if kcopy exits first: the map was not
# rewritten during the copy.
wait_map_finished() {
    local map=$1 want=$2 have=0 out alive t0=$SECONDS
    while :; do
        # Alive before the map is read: a map read then was written during the copy.
        alive=0
        bg_running && alive=1
        if [[ -e $map ]]; then
            out=$(ddrescuelog -t -- "$map" 2>&1) ||
                fail "a mapfile read during the copy is not valid (not replaced whole?): $out"
            have=$(map_bytes "$map" +)
            ((have < want)) || break
        fi
        ((alive)) || break
        ((SECONDS - t0 <= KCOPY_TEST_TIMEOUT)) || fail "the mapfile did not reach $want finished bytes in ${KCOPY_TEST_TIMEOUT}s"
        sleep 0.05
    done
    ((alive)) || fail "kcopy exited before its mapfile showed $want finished bytes during the copy (it showed $have): was it rewritten during the copy?"
    printf '%s\n' "$have"
}

# finish_kcopy WANT: wait for the background kcopy and fail unless it exits WANT.
finish_kcopy() {
    local want=$1 rc=0 t0=$SECONDS
    while bg_running; do
        if ((SECONDS - t0 > KCOPY_TEST_TIMEOUT)); then
            kill -KILL "$BG_PID" 2>/dev/null || true
            wait "$BG_PID" 2>/dev/null || true
            _CHILD_PID=
            fail "kcopy still running ${KCOPY_TEST_TIMEOUT}s after it was told to stop (killed)"
        fi
        sleep 0.02
    done
    wait "$BG_PID" 2>/dev/null || rc=$? # (no "Killed" from bash)
    _CHILD_PID=
    LAST_STATUS=$rc
    if [[ -s $STDERR_FILE ]]; then sed 's/^/    stderr: /' "$STDERR_FILE"; fi
    ((rc == want)) || fail "exit status $rc, want $want"
}
