#!/usr/bin/env bash
# --mapfile with bad sectors (loop devices over a FUSE faulty disk):
# - a first pass without --ignore-errors: each run stops at a read error, exit
#   64; the map never says a good sector bad, nor finished a sector the
#   destination does not hold; reruns with the same map go past the known bad
#   areas until nothing is left to try: then the map's '-' sectors are exactly
#   the bad ones, and the destination is exact but at them (never written);
# - a source range with two bad areas, --ignore-errors --mapfile: exit 64; the
#   read errors reported exactly; the destination is the source, zeroes at the
#   bad sectors, untouched around the range; the map (ddrescuelog -p against
#   one written by hand) is '?' before the range, '-' over exactly the bad
#   sectors (ddrescuelog -l- -b512 lists exactly them), '+' over the rest of
#   the range;
# - the same command again: exit 64, only the bad areas are tried again
#   ("bytes" is their size, the destination, put back to its old contents
#   first, changed only at the bad sectors, which are zeroes again, and
#   little is read from the source), the map unchanged;
# - again without --ignore-errors: exit 64 (the source has known bad areas),
#   a message saying that --ignore-errors retries them (and none saying the
#   range is all copied, nothing to do), nothing written, "bytes" 0, the map's
#   blocks unchanged;
# - the disk "healed" (the same image looped without faults, a new path, so
#   --force): the bad areas are retried and copied: exit 0, "bytes" their size,
#   only those sectors written, the map finished over the range;
# - a destination whose writes fail at chosen sectors: without
#   --ignore-errors exit 1, the map says none of them finished, and every
#   sector it says finished holds the source's data on the destination; that
#   copy resumed with --ignore-errors: exit 1, the sectors of the range that
#   are not '+' in the map are exactly the failed ones (as source positions),
#   the destination exact but at them;
# - GNU ddrescue's maps of the faulty disk: one finished by ddrescue ('-' over
#   exactly the bad sectors): kcopy without --ignore-errors copies nothing and
#   exits 64, saying --ignore-errors retries them; one left by ddrescue -N -n
#   (non-trimmed '*' clusters around the bad sectors): kcopy --ignore-errors
#   copies exactly those clusters ("bytes"), finds exactly the bad sectors in
#   them ('-' in the map, ddrescuelog -l-) and leaves every other sector of the
#   destination as it was.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/mapfile_lib.sh"
need_root
need_kcopy
need_python
need_faulty_disk
need_mapfile
"$KCOPY" --help 2>&1 | grep -q -- --ignore-errors || fail "$KCOPY has no --ignore-errors option"

SECTORS=65536 # 32 MiB source
# Two bad areas (START:COUNT sectors): 8 sectors, and 100 across the 64 KiB
# boundary at 20096.
BAD_RANGES=(5000:8 20000:100)
BAD_SECTORS=108
SS=1000 # the copied range: source sectors 1000 + 60000, to destination sector 500
COUNT=60000
DS=500
POS=$((SS * 512))
SIZE=$((COUNT * 512))
MAPS=$SCRATCH/maps
mkdir -p "$MAPS"

src_img=$(make_image src.img 32M)
d_img=$(make_image d.img 40M)
src_orig=$(pristine_copy "$src_img")
d_orig=$(pristine_copy "$d_img")
args=()
for r in "${BAD_RANGES[@]}"; do args+=(--read-error "$r"); done
src=$(faulty_device "$src_img" "${args[@]}")
d=$(attach "$d_img")

# bad_list: the bad sectors, one a line (as ddrescuelog -l lists them).
bad_list() {
    local r
    for r in "${BAD_RANGES[@]}"; do seq "${r%:*}" $((${r%:*} + ${r#*:} - 1)); done
}

# expect_bad_sectors_listed WHAT MAP: ddrescuelog -l- -b512 MAP lists exactly the bad sectors.
expect_bad_sectors_listed() {
    diff -u --label expected --label "ddrescuelog -l- -b512" <(bad_list) <(map_sectors "$2" -) >&2 ||
        fail "$1: the '-' sectors of $2 are not exactly the bad sectors (diff above)"
}

# expect_no_false_claims: with known bad areas left uncopied, stderr does not
# say that the whole range is copied or that there is nothing to do.
expect_no_false_claims() {
    ! stderr_line_with 'nothing to do' || fail "stderr says 'nothing to do'; the known bad areas were left"
    ! stderr_line_with '(every|all) (byte|sector)s? .*(already )?copied' ||
        fail "stderr says the whole range is copied; the known bad areas are not"
}

# The map expected after a copy of the range: '?' before it, '-' at the bad
# sectors, '+' elsewhere in the range.
ref=$MAPS/ref.expected
write_map "$ref" <<EOF
0 $POS ?
$POS $(((5000 - SS) * 512)) +
$((5000 * 512)) $((8 * 512)) -
$((5008 * 512)) $(((20000 - 5008) * 512)) +
$((20000 * 512)) $((100 * 512)) -
$((20100 * 512)) $(((SS + COUNT - 20100) * 512)) +
EOF

check "a first pass without --ignore-errors: each run stops at a read error (exit 64), marks '-' only bad sectors and '+' only what the destination holds; reruns go past the known bad areas until nothing is left to try"
fmap=$MAPS/first-pass.map
runs=0
while :; do
    runs=$((runs + 1))
    ((runs <= 5)) || fail "5 runs without --ignore-errors did not get through the range"
    expect_status 64 "$KCOPY" --json --mapfile "$fmap" "$src:$SS:$COUNT" "$d:$DS"
    expect_map_readable "the map after run $runs" "$fmap"
    notbad=$(comm -23 <(map_sectors "$fmap" - | sort) <(bad_list | sort) | head -n 5)
    [[ -z $notbad ]] || fail "run $runs: the map says bad sectors that are not: $notbad ..."
    [[ $(map_bytes "$fmap" + 0 "$POS") == 0 ]] || fail "run $runs: the map says bytes before the range finished"
    while read -r a n; do
        expect_same_sectors "run $runs: destination sectors the map says finished (source $a+$n)" "$d" $((a - SS + DS)) "$src_orig" "$a" "$n"
    done < <(map_runs "$fmap" +)
    left=$(map_bytes "$fmap" '?*/' "$POS" "$SIZE")
    echo "    after run $runs: $(map_bytes "$fmap" +) bytes finished, $(map_bytes "$fmap" -) bad, $left left to try"
    ((left > 0)) || break
done
expect_bad_sectors_listed "the map after the first pass" "$fmap"
cp "$d_orig" "$SCRATCH/expected.img"
model_copy "$SCRATCH/expected.img" "$src_orig" "$SS" "$DS" "$COUNT"
for r in "${BAD_RANGES[@]}"; do
    dd if="$d_orig" of="$SCRATCH/expected.img" bs=512 skip=$((${r%:*} - SS + DS)) seek=$((${r%:*} - SS + DS)) \
        count="${r#*:}" conv=notrunc status=none
done
expect_matches_model "the destination after the first pass: the source but at the bad sectors, never written" "$d" "$SCRATCH/expected.img"
restore_device "$d" "$d_orig"

map=$MAPS/rescue.map
cmd=(--ignore-errors --json --mapfile "$map" "$src:$SS:$COUNT" "$d:$DS")

check "kcopy --ignore-errors --mapfile over two bad areas: exit 64"
expect_status 64 "$KCOPY" "${cmd[@]}"
"$PYTHON" "$TESTS_DIR/check_report.py" "$STDOUT_FILE" 64 || fail "the --json report is wrong (above)"
expect_error_report source "$src" "$SS" $((SS + COUNT - 1))
expected=$SCRATCH/expected.img
cp "$d_orig" "$expected"
model_copy "$expected" "$src_orig" "$SS" "$DS" "$COUNT"
model_zero "$expected" $((DS + 5000 - SS)) 8
model_zero "$expected" $((DS + 20000 - SS)) 100
expect_matches_model "destination: the source, zeroes at the bad sectors, the rest untouched" "$d" "$expected"
expect_map_readable "the mapfile" "$map"
expect_bad_sectors_listed "the mapfile" "$map"
expect_map_equals "the mapfile" "$map" "$ref"
expect_json .mapfile.finished_bytes_before 0
expect_json .mapfile.finished_bytes $((SIZE - BAD_SECTORS * 512))
expect_no_temp_files "$map"

check "the same command again: exit 64, only the bad areas are tried again"
restore_device "$d" "$d_orig"
r0=$(sectors_read "$src")
expect_status 64 "$KCOPY" "${cmd[@]}"
r1=$(sectors_read "$src")
expect_error_report source "$src" "$SS" $((SS + COUNT - 1))
expect_json .bytes $((BAD_SECTORS * 512))
expect_json .mapfile.finished_bytes_before $((SIZE - BAD_SECTORS * 512))
expect_json .mapfile.finished_bytes $((SIZE - BAD_SECTORS * 512))
cp "$d_orig" "$expected"
model_zero "$expected" $((DS + 5000 - SS)) 8
model_zero "$expected" $((DS + 20000 - SS)) 100
expect_matches_model "destination: its old contents, zeroes at the bad sectors only" "$d" "$expected"
echo "    sectors read from the source: $((r1 - r0)) (the bad areas: $BAD_SECTORS)"
((r1 - r0 <= 4096)) || fail "the second run read $((r1 - r0)) sectors of the source, for $BAD_SECTORS bad ones"
expect_map_equals "the mapfile after the second run" "$map" "$ref"

check "without --ignore-errors: exit 64, the known bad areas are not copied, and a message says --ignore-errors retries them"
before=$(device_sha "$d")
cp "$map" "$MAPS/saved.map"
expect_status 64 "$KCOPY" --json --mapfile "$map" "$src:$SS:$COUNT" "$d:$DS"
expect_stderr_has "--ignore-errors"
expect_no_false_claims
expect_json .bytes 0
[[ $(device_sha "$d") == "$before" ]] || fail "the destination changed"
expect_map_equals "the mapfile" "$map" "$ref"

check "the disk healed (the same image, looped without faults: another path, so --force): the bad areas are copied, exit 0"
healed=$(attach "$src_img")
expect_status 0 "$KCOPY" --ignore-errors --force --json --mapfile "$map" "$healed:$SS:$COUNT" "$d:$DS"
expect_json .bytes $((BAD_SECTORS * 512))
expect_json .mapfile.finished_bytes_before $((SIZE - BAD_SECTORS * 512))
expect_json .mapfile.finished_bytes "$SIZE"
cp "$d_orig" "$expected"
model_copy "$expected" "$src_orig" 5000 $((DS + 5000 - SS)) 8
model_copy "$expected" "$src_orig" 20000 $((DS + 20000 - SS)) 100
expect_matches_model "destination: its old contents, the source's at the once bad sectors" "$d" "$expected"
ddrescuelog -D -i "$POS" -s "$SIZE" "$map" || fail "ddrescuelog -D -i $POS -s $SIZE: the range is not finished"
[[ -z $(map_sectors "$map" -) ]] || fail "the map still has bad sectors"

w_img=$(make_image w.img 40M)
w_orig=$(pristine_copy "$w_img")
WBAD=(40000:50 50000:4) # destination sectors: past the first 16 MiB of the range
wargs=()
for r in "${WBAD[@]}"; do wargs+=(--write-error "$r"); done
w=$(faulty_device "$w_img" "${wargs[@]}")
wmap=$MAPS/write.map

check "a destination whose writes fail at chosen sectors, without --ignore-errors: exit 1; what the map says finished, the destination holds"
expect_status 1 "$KCOPY" --mapfile "$wmap" "$healed:$SS:$COUNT" "$w:$DS"
expect_map_readable "the mapfile" "$wmap"
wplus=$(map_bytes "$wmap" +)
echo "    the map says $wplus bytes finished"
((wplus < SIZE)) || fail "the map says the whole range finished; writes failed"
for r in "${WBAD[@]}"; do
    a=$((${r%:*} - DS + SS))
    [[ $(map_bytes "$wmap" + $((a * 512)) $((${r#*:} * 512))) == 0 ]] ||
        fail "the map says finished source sectors $a+${r#*:}, whose writes failed"
done
while read -r a n; do
    expect_same_sectors "destination sectors the map says finished (source $a+$n)" "$w" $((a - SS + DS)) "$src_orig" "$a" "$n"
done < <(map_runs "$wmap" +)

check "the same copy resumed with --ignore-errors: exit 1, exactly the failed sectors are not '+', the rest of the destination exact"
expect_status 1 "$KCOPY" --ignore-errors --json --mapfile "$wmap" "$healed:$SS:$COUNT" "$w:$DS"
expect_json .mapfile.finished_bytes_before "$wplus"
# "bytes": what reached the destination (kcopy(1)): the rest of the range but the failed sectors.
expect_json .bytes $((SIZE - wplus - (50 + 4) * 512))
want=$(for r in "${WBAD[@]}"; do seq $((${r%:*} - DS + SS)) $((${r%:*} + ${r#*:} - 1 - DS + SS)); done)
diff -u --label "expected (source sectors)" --label "not '+' in the map" <(echo "$want") \
    <(map_sectors "$wmap" '?*/-' "$POS" "$SIZE") >&2 ||
    fail "the sectors of the range that are not finished in $wmap are not exactly the failed writes (diff above)"
cp "$w_orig" "$expected"
model_copy "$expected" "$src_orig" "$SS" "$DS" "$COUNT"
for r in "${WBAD[@]}"; do
    dd if="$w_orig" of="$expected" bs=512 skip="${r%:*}" seek="${r%:*}" count="${r#*:}" conv=notrunc status=none
done
cmp -s "$w_img" "$expected" || fail "the destination's image is not the source's range with its old bytes at the failed sectors"

# --- GNU ddrescue's maps of the faulty disk ---------------------------------
check "a map of the whole faulty disk finished by ddrescue: '-' exactly at the bad sectors"
dmap=$MAPS/ddrescue.map
ddrescue -q -f -d "$src" "$d" "$dmap" || fail "ddrescue -f -d $src $d $dmap exits $?"
expect_bad_sectors_listed "ddrescue's map (the fixture)" "$dmap"
cp "$dmap" "$MAPS/ddrescue.saved"

check "kcopy --mapfile with ddrescue's finished map, without --ignore-errors: exit 64, nothing copied, says --ignore-errors retries"
restore_device "$d" "$d_orig"
expect_status 64 "$KCOPY" --json --mapfile "$dmap" "$src" "$d"
expect_stderr_has "--ignore-errors"
expect_no_false_claims
expect_json .bytes 0
expect_json .mapfile.finished_bytes_before $((SECTORS * 512 - BAD_SECTORS * 512))
expect_matches_model "destination: nothing written" "$d" "$d_orig"
expect_map_equals "the map" "$dmap" "$MAPS/ddrescue.saved"

check "a map left by ddrescue -N -n (non-trimmed '*' clusters): kcopy --ignore-errors copies just those, finds exactly the bad sectors"
nmap=$MAPS/ddrescue-N.map
ddrescue -q -f -d -N -n "$src" "$d" "$nmap" || fail "ddrescue -f -d -N -n $src $d $nmap exits $?"
grep -v '^#' "$nmap" | sed 's/^/    /'
star=$(map_bytes "$nmap" '*')
((star > BAD_SECTORS * 512)) || fail "the fixture: ddrescue -N -n left $star non-trimmed bytes"
[[ $(map_bytes "$nmap" '?/-') == 0 ]] || fail "the fixture: ddrescue -N -n left areas other than '+' and '*'"
restore_device "$d" "$d_orig"
# Expected: the old destination, the source in the '*' clusters, zeroes at the bad sectors.
model_from_map "$expected" "$d_orig" "$src_orig" "$nmap" '*'
model_zero "$expected" 5000 8
model_zero "$expected" 20000 100
expect_status 64 "$KCOPY" --ignore-errors --json --mapfile "$nmap" "$src" "$d"
expect_error_report source "$src" 0 $((SECTORS - 1))
expect_json .bytes "$star"
expect_matches_model "destination: only the non-trimmed clusters written" "$d" "$expected"
expect_bad_sectors_listed "the map after kcopy" "$nmap"
[[ $(map_bytes "$nmap" '?*/') == 0 ]] || fail "the map still has non-tried, non-trimmed or non-scraped areas"

check "the source is unchanged"
cmp -s -- "$src_img" "$src_orig" || fail "the source image changed"
pass
