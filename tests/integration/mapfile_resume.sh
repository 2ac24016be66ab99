#!/usr/bin/env bash
# A 512 MiB copy with --mapfile, stopped, then resumed with the same command
# (images on a tmpfs; --max-rate 100M makes the copy take about 5 s, so that it
# is stopped mid-copy for sure: the signal is sent once the mapfile, rewritten
# every 0.5 s, shows 64 MiB finished).
# - SIGTERM: exit 143; every version of the mapfile seen during the copy was a
#   valid map (ddrescuelog reads it); after the stop the map is '+' over
#   exactly the sectors that hold the source's data on the destination (every
#   other sector of it kept its old bytes), as many as kcopy says it wrote,
#   '?' over the rest; the --json report's finished_bytes is that. The rerun
#   (no --max-rate) copies only the rest: "bytes" + the finished bytes of the
#   first map == the size of the range, and the source device was read for
#   no more than that; the result is byte-exact, the map finished.
# - SIGKILL, after the mapfile has been rewritten at least twice: the map left
#   is the one of the last interval: every sector it says finished holds the
#   source's data; the rerun copies exactly what it does not say finished and
#   the result is byte-exact.
# - SIGINT and SIGHUP: exit 130 and 129, the map written at the stop as after
#   SIGTERM (finished exactly where the destination holds the source's data).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/mapfile_lib.sh"
need_root
need_kcopy
need_python
need_mapfile
env --default-signal=INT true 2>/dev/null || skip "env --default-signal not supported (coreutils < 8.31)"

SS=16384      # the source range: 512 MiB from byte 8 MiB of a 520 MiB source
COUNT=1048576
DS=8192       # to byte 4 MiB of a 520 MiB destination
POS=$((SS * 512))
SIZE=$((COUNT * 512))
IMG_SIZE=$((520 << 20))

tmp=$(mount_tmpfs 1700M)
MAPS=$SCRATCH/maps
mkdir -p "$MAPS"
src_img=$tmp/src.img
head -c "$IMG_SIZE" /dev/urandom >"$src_img" || fail "cannot create $src_img"
src_sum=$(reference digest "$src_img")
src=$(attach "$src_img")

# new_destination NAME: a 520 MiB image on the tmpfs: random in its first
# 4 MiB and its last 4 MiB, zeroes (sparse) elsewhere; prints its path.  Its
# pristine copy (outside the range: the rest is zeroes) is NAME.orig.
new_destination() {
    local path=$tmp/$1.img
    truncate -s "$IMG_SIZE" "$path"
    head -c 4M /dev/urandom | dd of="$path" conv=notrunc status=none
    head -c 4M /dev/urandom | dd of="$path" bs=1M seek=516 conv=notrunc status=none
    cp --sparse=always "$path" "$path.orig"
    printf '%s\n' "$path"
}

# map_vs_destination MODE MAP DEST_IMG: compare, sector by sector over the
# range, what MAP says with what the destination's image holds: a sector MAP
# says finished must hold the source's data; with MODE "exact", every other
# sector must hold its old bytes; with "subset", the source's or the old.
# Outside the range the image must be its old self.  Prints the number of
# sectors holding the source's data.
map_vs_destination() {
    local mode=$1 map=$2 dimg=$3
    map_runs "$map" + >"$SCRATCH/plus.runs"
    "$PYTHON" - "$mode" "$SCRATCH/plus.runs" "$src_img" "$SS" "$COUNT" "$dimg" "$dimg.orig" "$DS" <<'PY'
import sys
mode, runs, src, ss, count, dst, old, ds = sys.argv[1:]
ss, count, ds = int(ss), int(count), int(ds)
S = 512
def die(msg):
    print(msg)  # captured by the caller, which fails with it
    sys.exit(1)
plus = [tuple(map(int, l.split())) for l in open(runs) if l.strip()]
for a, n in plus:
    if a < ss or a + n > ss + count:
        die(f"the map says sectors {a}+{n} finished: outside the range {ss}+{count}")
inplus = bytearray(count)
for a, n in plus:
    inplus[a - ss:a - ss + n] = b"\1" * n
fs, fd, fo = open(src, "rb"), open(dst, "rb"), open(old, "rb")
def same(f1, o1, f2, o2, n):
    f1.seek(o1); f2.seek(o2)
    return f1.read(n) == f2.read(n)
if not same(fd, 0, fo, 0, ds * S):
    die("the destination changed before its range")
end = (ds + count) * S
fd.seek(end); fo.seek(end)
if fd.read() != fo.read():
    die("the destination changed after its range")
held = 0
CH = 2048  # sectors per chunk
fs.seek(ss * S); fd.seek(ds * S); fo.seek(ds * S)
for c in range(0, count, CH):
    n = min(CH, count - c)
    s, d, o = fs.read(n * S), fd.read(n * S), fo.read(n * S)
    marks = inplus[c:c + n]
    if d == s and (mode != "exact" or marks.count(0) == 0):
        held += n  # the fast paths: a chunk all copied, or all old and not finished
        continue
    if d == o and marks.count(1) == 0:
        continue
    for i in range(n):
        k = slice(i * S, (i + 1) * S)
        has_src = d[k] == s[k]
        held += has_src
        if inplus[c + i] and not has_src:
            die(f"source sector {ss + c + i} is finished in the map, but destination sector "
                     f"{ds + c + i} does not hold its data")
        if not inplus[c + i] and not has_src and d[k] != o[k]:
            die(f"destination sector {ds + c + i} holds neither the source's data nor its old bytes")
        if mode == "exact" and not inplus[c + i] and has_src:
            die(f"destination sector {ds + c + i} holds the source's data, but the map does not say "
                     f"source sector {ss + c + i} is finished")
print(held)
PY
}

# expect_exact WHAT DEST_IMG: the destination is the source's range at DS, the
# rest its old bytes.
expect_exact() {
    local held
    held=$(map_vs_destination subset "$ref" "$2") || fail "$1: $held"
    ((held == COUNT)) || fail "$1: only $held of $COUNT sectors hold the source's data"
}

ref=$MAPS/ref.expected
write_map "$ref" <<EOF
0 $POS ?
$POS $SIZE +
EOF

# stopped LABEL SIGNAL WANT MAP DEST: start the copy slowly, send SIGNAL once
# MAP shows 64 MiB finished (for KILL: once it has been rewritten again after
# that), and check the exit status.  Sets PLUS: the finished bytes of the map
# after the stop.
stopped() {
    local label=$1 sig=$2 want=$3 map=$4 dev=$5 seen
    check "$label: the copy with --max-rate 100M --mapfile-interval 0.5, then SIG$sig once the map shows 64 MiB finished"
    start_kcopy --json --max-rate 100M --mapfile "$map" --mapfile-interval 0.5 "$src:$SS:$COUNT" "$dev:$DS"
    seen=$(wait_map_finished "$map" $((64 << 20)))
    if [[ $sig == KILL ]]; then
        # One more rewrite: the map is rewritten periodically, not just once.
        seen=$(wait_map_finished "$map" $((seen + 1)))
    fi
    echo "    the map showed $seen finished bytes; SIG$sig"
    kill -s "$sig" "$BG_PID" 2>/dev/null || fail "$label: kcopy ended before SIG$sig could be sent"
    finish_kcopy "$want"
    expect_map_readable "$label: the mapfile after the stop" "$map"
    PLUS=$(map_bytes "$map" +)
    echo "    the map after the stop: $PLUS bytes finished"
    ((PLUS > 0 && PLUS < SIZE)) || fail "$label: the map says $PLUS bytes finished, want some, not all of $SIZE"
    [[ $(map_bytes "$map" '*/-') == 0 ]] || fail "$label: the map has failed areas; the source has none"
    [[ $(map_bytes "$map" + 0 "$POS") == 0 ]] || fail "$label: the map says bytes before the range finished"
    return 0
}

# written_said DEV: the N of kcopy's line "... 'DEV' ...: N of COUNT sectors written".
written_said() {
    local n
    n=$(grep -F "'$1'" "$STDERR_FILE" | sed -n "s/.* \([0-9][0-9]*\) of $COUNT sectors written.*/\1/p" | head -n 1)
    [[ -n $n ]] || fail "no line naming '$1' with 'N of $COUNT sectors written'"
    printf '%s\n' "$n"
}

# resumed LABEL MAP DEST_IMG DEST PLUS: the same command again, without
# --max-rate: exit 0, copies exactly the SIZE - PLUS bytes left, exact result.
resumed() {
    local label=$1 map=$2 dimg=$3 dev=$4 plus=$5 r0 r1
    check "$label: the rerun copies only what the map does not say finished: $((SIZE - plus)) bytes"
    r0=$(sectors_read "$src")
    expect_status 0 "$KCOPY" --json --mapfile "$map" "$src:$SS:$COUNT" "$dev:$DS"
    r1=$(sectors_read "$src")
    expect_json .mapfile.finished_bytes_before "$plus"
    expect_json .mapfile.finished_bytes "$SIZE"
    expect_json .bytes $((SIZE - plus))
    # The whole report of a resumed run is consistent (each destination 'ok' with
    # what the map left to copy written).
    "$PYTHON" "$TESTS_DIR/check_report.py" "$STDOUT_FILE" 0 || fail "the --json report of the rerun is wrong (above)"
    expect_json '.destinations[0].sectors_written' $(((SIZE - plus) / 512))
    echo "    read from the source: $(((r1 - r0) * 512)) bytes; left to copy: $((SIZE - plus))"
    (((r1 - r0) * 512 <= SIZE - plus + (1 << 20))) ||
        fail "$label: the rerun read $(((r1 - r0) * 512)) bytes of the source, only $((SIZE - plus)) were left"
    expect_exact "$label: the destination after the rerun" "$dimg"
    expect_map_equals "$label: the map after the rerun" "$map" "$ref"
}

# --- SIGTERM -------------------------------------------------------------------
dimg=$(new_destination term)
dev=$(attach "$dimg")
map=$MAPS/term.map
stopped SIGTERM TERM 143 "$map" "$dev"
plus=$PLUS
expect_json .interrupted_by '"SIGTERM"'
expect_json .mapfile.finished_bytes "$plus"
expect_json .mapfile.finished_bytes_before 0
n=$(written_said "$dev")
check "SIGTERM: the map says finished exactly the sectors holding the source's data, as many as kcopy says it wrote ($n)"
held=$(map_vs_destination exact "$map" "$dimg") || fail "SIGTERM: $held"
((plus == held * 512)) || fail "SIGTERM: the map says $plus bytes finished, $((held * 512)) hold the source's data"
((plus == n * 512)) || fail "SIGTERM: the map says $plus bytes finished, kcopy says it wrote $n sectors"
resumed SIGTERM "$map" "$dimg" "$dev" "$plus"
_detach "$dev" "$(realpath -- "$dimg")"
rm -f "$dimg" "$dimg.orig"

# --- SIGKILL -------------------------------------------------------------------
dimg=$(new_destination kill)
dev=$(attach "$dimg")
map=$MAPS/kill.map
stopped SIGKILL KILL 137 "$map" "$dev"
plus=$PLUS
wait_not_held "$dev"
check "SIGKILL: every sector the map left says finished holds the source's data"
held=$(map_vs_destination subset "$map" "$dimg") || fail "SIGKILL: $held"
echo "    the map says $plus bytes finished; $((held * 512)) bytes hold the source's data"
resumed SIGKILL "$map" "$dimg" "$dev" "$plus"
_detach "$dev" "$(realpath -- "$dimg")"
rm -f "$dimg" "$dimg.orig"

# --- SIGINT and SIGHUP ---------------------------------------------------------
for case in "INT 130" "HUP 129"; do
    sig=${case% *}
    dimg=$(new_destination "$sig")
    dev=$(attach "$dimg")
    map=$MAPS/$sig.map
    stopped "SIG$sig" "$sig" "${case#* }" "$map" "$dev"
    plus=$PLUS
    expect_json .interrupted_by "\"SIG$sig\""
    expect_json .mapfile.finished_bytes "$plus"
    check "SIG$sig: the map says finished exactly the sectors holding the source's data"
    held=$(map_vs_destination exact "$map" "$dimg") || fail "SIG$sig: $held"
    ((plus == held * 512)) || fail "SIG$sig: the map says $plus bytes finished, $((held * 512)) hold the source's data"
    _detach "$dev" "$(realpath -- "$dimg")"
    rm -f "$dimg" "$dimg.orig"
done

check "the source is unchanged"
[[ $(direct_sha "$src") == "$src_sum" ]] || fail "the source changed"
pass
