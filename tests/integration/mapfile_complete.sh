#!/usr/bin/env bash
# --mapfile on complete copies (loop devices, no faults):
# - a sector range to two destinations with a new mapfile: exit 0, both
#   destinations exact and untouched around their ranges; the mapfile is GNU
#   ddrescue's format, positions in bytes on the source: '?' before the range,
#   '+' over it, nothing past it (ddrescuelog -p against a map written by hand);
#   ddrescuelog -D says the range's domain is finished (and the whole map is
#   not: the bytes before the range were never tried); ddrescuelog -t gives the
#   rescued size; it names the source and both destinations in kcopy's comment
#   lines; no temporary file is left; the --json report has the "mapfile" object;
# - the same command again with that mapfile: exit 0, "bytes": 0, nothing
#   written to either destination (they were put back to their old contents
#   first: they still hold them), hardly anything read from the source, the
#   map unchanged;
# - a whole-device copy: ddrescuelog -D says finished;
# - a mapfile without kcopy's comments (as ddrescue writes one) that covers only
#   the first half of the range: accepted; only the second half is copied (the
#   first half of the destination keeps its old bytes), the map then covers the
#   whole range, finished; its own comment line is kept, ddrescue's header
#   lines are not.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/mapfile_lib.sh"
need_root
need_kcopy
need_python
need_mapfile

SS=2048     # source range: sectors 2048 + 40000 (bytes 1 MiB + 20480000)
COUNT=40000
POS=$((SS * 512))
SIZE=$((COUNT * 512))
D1S=100
D2S=5000
MAPS=$SCRATCH/maps
mkdir -p "$MAPS"

src_img=$(make_image src.img 32M)
d1_img=$(make_image d1.img 40M)
d2_img=$(make_image d2.img 40M)
src_orig=$(pristine_copy "$src_img")
d1_orig=$(pristine_copy "$d1_img")
d2_orig=$(pristine_copy "$d2_img")
src=$(attach "$src_img")
d1=$(attach "$d1_img")
d2=$(attach "$d2_img")

map=$MAPS/copy.map
cmd=(--json --mapfile "$map" --mapfile-interval 0.2 "$src:$SS:$COUNT" "$d1:$D1S" "$d2:$D2S")

check "a range to two destinations with a new mapfile: exit 0"
expect_status 0 "$KCOPY" "${cmd[@]}"
"$PYTHON" "$TESTS_DIR/check_report.py" "$STDOUT_FILE" 0 bytes="$SIZE" || fail "the --json report is wrong (above)"
expected1=$SCRATCH/expected1.img
expected2=$SCRATCH/expected2.img
cp "$d1_orig" "$expected1"
model_copy "$expected1" "$src_orig" "$SS" "$D1S" "$COUNT"
cp "$d2_orig" "$expected2"
model_copy "$expected2" "$src_orig" "$SS" "$D2S" "$COUNT"
expect_matches_model "destination 1: the range at $D1S, the rest untouched" "$d1" "$expected1"
expect_matches_model "destination 2: the range at $D2S, the rest untouched" "$d2" "$expected2"

check "the --json report's mapfile object: path, 0 finished bytes before, $SIZE after"
expect_json_string .mapfile.path "$map"
expect_json .mapfile.finished_bytes_before 0
expect_json .mapfile.finished_bytes "$SIZE"
expect_json .bytes "$SIZE"

check "the mapfile: '?' over source bytes [0, $POS), '+' over [$POS, $((POS + SIZE))), nothing past the range"
[[ -f $map ]] || fail "no mapfile $map"
expect_map_readable "the mapfile" "$map"
ref=$MAPS/ref.expected
write_map "$ref" <<EOF
0 $POS ?
$POS $SIZE +
EOF
expect_map_equals "the mapfile of the range" "$map" "$ref"
expect_no_temp_files "$map"

check "ddrescuelog -D: the range's domain is finished; the whole map is not (its first $POS bytes were never tried)"
ddrescuelog -D -i "$POS" -s "$SIZE" "$map" || fail "ddrescuelog -D -i $POS -s $SIZE says the copied range is not finished (exit $?)"
rc=0
ddrescuelog -D "$map" || rc=$?
((rc == 1)) || fail "ddrescuelog -D $map exits $rc, want 1: the bytes before the range are not finished"

check "ddrescuelog -t: rescued $SIZE bytes, non-tried $POS"
ddrescuelog -t "$map" | sed 's/^/    /'
want=$(ddrescuelog -t "$ref" | grep -E '^ *(rescued|non-tried|bad-sector):')
got=$(ddrescuelog -t "$map" | grep -E '^ *(rescued|non-tried|bad-sector):')
[[ $got == "$want" ]] || fail "ddrescuelog -t says
$got
want
$want"
[[ $(map_bytes "$map" +) == "$SIZE" ]] || fail "ddrescuelog lists $(map_bytes "$map" +) finished bytes, want $SIZE"

check "kcopy's comment lines name the source and both destinations"
sed -n '/^#/p' "$map" | sed 's/^/    /'
grep -qFx "# kcopy source: $src:$SS:$COUNT" "$map" || fail "no line '# kcopy source: $src:$SS:$COUNT' in $map"
grep -qE "^# kcopy destination 1: $d1:$D1S(:$COUNT)?\$" "$map" || fail "no line '# kcopy destination 1: $d1:$D1S' in $map"
grep -qE "^# kcopy destination 2: $d2:$D2S(:$COUNT)?\$" "$map" || fail "no line '# kcopy destination 2: $d2:$D2S' in $map"
! grep -qE '^# kcopy destination 3:' "$map" || fail "$map names a destination 3"

check "the same command again, with that mapfile: exit 0, nothing copied"
# Put the destinations back to their old contents: a write of any sector shows.
restore_device "$d1" "$d1_orig"
restore_device "$d2" "$d2_orig"
cp "$map" "$MAPS/saved.map"
r0=$(sectors_read "$src")
expect_status 0 "$KCOPY" "${cmd[@]}"
r1=$(sectors_read "$src")
expect_json .bytes 0
expect_json .mapfile.finished_bytes_before "$SIZE"
expect_json .mapfile.finished_bytes "$SIZE"
expect_matches_model "destination 1: nothing written by the second run" "$d1" "$d1_orig"
expect_matches_model "destination 2: nothing written by the second run" "$d2" "$d2_orig"
echo "    sectors read from the source by the second run: $((r1 - r0))"
((r1 - r0 <= 2048)) || fail "the second run read $((r1 - r0)) sectors of the source; there was nothing to copy"
expect_map_equals "the mapfile after the second run" "$map" "$ref"
expect_no_temp_files "$map"

check "a whole-device copy with a new mapfile: ddrescuelog -D says finished"
map0=$MAPS/whole.map
restore_device "$d1" "$d1_orig"
expect_status 0 "$KCOPY" --mapfile "$map0" "$src" "$d1"
cp "$d1_orig" "$expected1"
model_copy "$expected1" "$src_orig" 0 0 65536
expect_matches_model "destination 1" "$d1" "$expected1"
ddrescuelog -D "$map0" || fail "ddrescuelog -D $map0 exits $?, want 0 (finished)"
ref0=$MAPS/ref0.expected
write_map "$ref0" <<<"0 $((32 << 20)) +"
expect_map_equals "the mapfile of the whole device" "$map0" "$ref0"
got=$(ddrescuelog -t "$map0" | grep -E '^ *rescued:')
want=$(ddrescuelog -t "$ref0" | grep -E '^ *rescued:')
[[ $got == "$want" ]] || fail "ddrescuelog -t: '$got', want '$want'"

check "a mapfile without kcopy comments, finished over the first half of the range only: the second half is copied"
map1=$MAPS/half.map
write_map "$map1" "Command line: ddrescue -f /dev/sdb /dev/sdc half.map" "my note: the disk from shelf 3" <<<"0 $((2 << 20)) +" # 2 MiB finished; the range is 4 MiB
restore_device "$d2" "$d2_orig"
expect_status 0 "$KCOPY" --json --mapfile "$map1" "$src:0:8192" "$d2:$D2S"
expect_json .bytes $((2 << 20))
expect_json .mapfile.finished_bytes_before $((2 << 20))
expect_json .mapfile.finished_bytes $((4 << 20))
cp "$d2_orig" "$expected2"
model_copy "$expected2" "$src_orig" 4096 $((D2S + 4096)) 4096
expect_matches_model "destination 2: old bytes where the map said finished, the source's in the rest of the range" "$d2" "$expected2"
ref1=$MAPS/ref1.expected
write_map "$ref1" <<<"0 $((4 << 20)) +"
expect_map_equals "the mapfile after the copy" "$map1" "$ref1"
grep -qFx "# kcopy source: $src:0:8192" "$map1" || fail "no line '# kcopy source: $src:0:8192' in $map1"
grep -qFx "# my note: the disk from shelf 3" "$map1" || fail "the comment '# my note: the disk from shelf 3' of the map was not kept"
! grep -q "ddrescue" "$map1" || fail "ddrescue's header lines were kept: $(grep ddrescue "$map1")"

check "the source is unchanged"
cmp -s -- "$src_img" "$src_orig" || fail "the source image changed"
pass
