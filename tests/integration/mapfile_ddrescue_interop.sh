#!/usr/bin/env bash
# GNU ddrescue continues a copy kcopy started, and kcopy one ddrescue started,
# through the same mapfile (64 MiB loop devices, whole devices, one destination).
# How we know who copied what: between the two runs the whole source is
# replaced by other random data (S1, then S2).  A sector the first tool copied
# and marked finished ('+') must then still hold S1 on the destination (the
# second tool did not copy it again); every other sector must hold S2 (the
# second tool copied it).  So the destination must be exactly "S1 where the
# first map says finished, S2 elsewhere" - which also proves that the first
# map's '+' sectors were really on the destination.
# (a) kcopy --mapfile (--max-rate 16M) stopped by SIGTERM once its map shows
#     8 MiB finished (exit 143), then ddrescue -f -d SRC DEST MAP: ddrescue
#     exits 0, its map is finished (ddrescuelog -D), the destination is exact
#     as above.
# (b) ddrescue with -i/-s over two parts of the source (4 MiB + 6 MiB and
#     20 MiB + 3 MiB), then kcopy --json --mapfile MAP SRC DEST: exit 0,
#     "bytes" == the size ddrescue had not finished, finished_bytes_before ==
#     what it had, the destination exact as above, the map finished and now
#     with kcopy's comment lines.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/mapfile_lib.sh"
need_root
need_kcopy
need_python
need_mapfile
env --default-signal=INT true 2>/dev/null || skip "env --default-signal not supported (coreutils < 8.31)"

TOTAL=$((64 << 20))
SECTORS=$((TOTAL / 512))
MAPS=$SCRATCH/maps
mkdir -p "$MAPS"

s1=$(make_image s1.img 64M) # the source's data in the first run
s2=$(make_image s2.img 64M) # ... and in the second
src_img=$(pristine_copy "$s1" "$SCRATCH/src.img")
d_img=$(make_image d.img 64M)
d_orig=$(pristine_copy "$d_img")
src=$(attach "$src_img")
d=$(attach "$d_img")

# run_ddrescue ARGS...: ddrescue -q -f -d ARGS (without -d should O_DIRECT be refused).
run_ddrescue() {
    local rc=0
    printf '  $ ddrescue -q -f -d %s\n' "$*"
    ddrescue -q -f -d "$@" >"$SCRATCH/ddrescue.out" 2>&1 || rc=$?
    if ((rc != 0)) && grep -qi 'direct' "$SCRATCH/ddrescue.out"; then
        echo "    ddrescue -d refused here; without -d"
        rc=0
        ddrescue -q -f "$@" >"$SCRATCH/ddrescue.out" 2>&1 || rc=$?
    fi
    sed 's/^/    ddrescue: /' "$SCRATCH/ddrescue.out"
    ((rc == 0)) || fail "ddrescue $* exits $rc"
}

# expect_s1_where_finished WHAT MAP: the destination is S1 where MAP (the
# first tool's map, saved before the second run) says finished, S2 elsewhere.
expect_s1_where_finished() {
    local expected=$SCRATCH/expected.img
    model_from_map "$expected" "$s2" "$s1" "$2" +
    expect_matches_model "$1" "$d" "$expected"
}

# --- (a) kcopy first, then ddrescue ----------------------------------------------
check "(a) kcopy --mapfile stopped by SIGTERM, then ddrescue finishes the copy with the same map"
map=$MAPS/a.map
start_kcopy --max-rate 16M --mapfile-interval 0.2 --mapfile "$map" "$src" "$d"
seen=$(wait_map_finished "$map" $((8 << 20)))
echo "    the map showed $seen finished bytes; SIGTERM"
kill -TERM "$BG_PID" 2>/dev/null || fail "(a) kcopy ended before SIGTERM could be sent"
finish_kcopy 143
expect_map_readable "kcopy's map after SIGTERM" "$map"
cp "$map" "$MAPS/a.kcopy"
plus=$(map_bytes "$map" +)
echo "    kcopy's map: $plus bytes finished of $TOTAL"
((plus > 0 && plus < TOTAL)) || fail "kcopy's map says $plus bytes finished, want some but not all"
[[ $(map_bytes "$map" '*/-') == 0 ]] || fail "kcopy's map has failed areas; the source has none"
grep -v '^#' "$map" | sed 's/^/    /'

write_image_to_device "$s2" "$src"
run_ddrescue "$src" "$d" "$map"
ddrescuelog -D "$map" || fail "ddrescuelog -D: ddrescue's map is not finished (exit $?)"
expect_s1_where_finished "(a) the destination: S1 where kcopy's map said finished (ddrescue did not copy it again), S2 elsewhere (ddrescue copied it)" "$MAPS/a.kcopy"

# --- (b) ddrescue first, then kcopy ----------------------------------------------
check "(b) ddrescue over two parts of the source, then kcopy --mapfile finishes the copy"
write_image_to_device "$s1" "$src"
restore_device "$d" "$d_orig"
map=$MAPS/b.map
run_ddrescue -i 4Mi -s 6Mi "$src" "$d" "$map"
run_ddrescue -i 20Mi -s 3Mi "$src" "$d" "$map"
grep -v '^#' "$map" | sed 's/^/    /'
cp "$map" "$MAPS/b.ddrescue"
plus=$(map_bytes "$map" +)
((plus == 9 << 20)) || fail "the fixture: ddrescue's map says $plus bytes finished, want $((9 << 20))"
! grep -q '^# kcopy' "$map" || fail "the fixture: ddrescue's map has kcopy comments"

write_image_to_device "$s2" "$src"
expect_status 0 "$KCOPY" --json --mapfile "$map" "$src" "$d"
expect_json .bytes $((TOTAL - plus))
expect_json .mapfile.finished_bytes_before "$plus"
expect_json .mapfile.finished_bytes "$TOTAL"
expect_s1_where_finished "(b) the destination: S1 where ddrescue's map said finished (kcopy did not copy it again), S2 elsewhere (kcopy copied it)" "$MAPS/b.ddrescue"
ddrescuelog -D "$map" || fail "ddrescuelog -D: the map is not finished after kcopy (exit $?)"
grep -qFx "# kcopy source: $src:0:$SECTORS" "$map" || fail "no line '# kcopy source: $src:0:$SECTORS' in the map kcopy rewrote"
grep -qE "^# kcopy destination 1: $d:0(:$SECTORS)?\$" "$map" || fail "no line '# kcopy destination 1: $d:0' in the map kcopy rewrote"

check "(b) ddrescue reads kcopy's finished map: nothing left to do"
write_image_to_device "$s1" "$src"
before=$(device_sha "$d")
run_ddrescue "$src" "$d" "$map"
[[ $(device_sha "$d") == "$before" ]] || fail "ddrescue wrote to the destination: kcopy's map did not say all finished"
pass
