#!/usr/bin/env bash
# An NBD source with a 4 KiB unreadable area (nbdkit --filter=ddrescue: reads
# that touch a non-'+' area of its GNU ddrescue mapfile fail with EIO) is
# reported as on a local device, to the exact sectors:
#   - without --ignore-errors: exit exactly 64; stderr has exactly one
#     read-error line, "kcopy: source 'URI': read error at sectors
#     30001-30008 (8 sectors): Input/output error"; --json lists exactly
#     {"sector": 30001, "count": 8, "error": "EIO"}; each destination sector is
#     the source's or its old one, as many as kcopy says it wrote, and the bad
#     sectors are not written;
#   - with --ignore-errors: exit exactly 64, the same one line and report, and
#     the destinations (a loop device and an nbdkit file export) are exact
#     copies except exactly those 8 sectors, which are zeroes;
#   - a source range in the URI's fields: the sectors reported are the
#     export's; a range that avoids the area copies cleanly (exit 0).
# The area starts at sector 30001: not on a 4 KiB boundary, so a scan that
# stopped at 4 KiB blocks would report too much.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/nbd_lib.sh"
need_root
need_kcopy
need_nbdkit
need_python

SECTORS=65536 # 32 MiB source
BAD=30001     # the first unreadable sector
NBAD=8        # 4 KiB
LAST=$((BAD + NBAD - 1))

src_img=$(make_image src.img 32M)
src_orig=$(pristine_copy "$src_img")
d1_img=$(make_image d1.img 40M)
d1_orig=$(pristine_copy "$d1_img")
d1=$(attach "$d1_img")
d2_img=$(make_image d2.img 40M) # served by nbdkit file
d2_orig=$(pristine_copy "$d2_img")

# The mapfile (GNU ddrescue's format, positions and sizes in bytes): finished
# before and after the area, bad ('-') in it.
map=$SCRATCH/src.map
printf '# Mapfile. Created by GNU ddrescue version 1.27\n# current_pos  current_status  current_pass\n0x%X     +               1\n#      pos        size  status\n0x%08X  0x%08X  +\n0x%08X  0x%08X  -\n0x%08X  0x%08X  +\n' \
    0 0 $((BAD * 512)) $((BAD * 512)) $((NBAD * 512)) $(((BAD + NBAD) * 512)) $(((SECTORS - BAD - NBAD) * 512)) >"$map"
sed 's/^/    mapfile: /' "$map"

nbd_start src --filter=ddrescue file "$src_img" ddrescue-mapfile="$map"
u_src=$NBD_URI
nbd_start d2 file "$d2_img"
u_d2=$NBD_URI

# reads_ok OFFSET LENGTH: a read of the source export through qemu-io (not
# kcopy) works.
reads_ok() {
    qemu-io -r -f raw -c "read $1 $2" "$u_src" 2>&1 | grep -q "^read $2/$2 bytes"
}

check "the fixture: sectors $BAD-$LAST of $u_src fail, their neighbours read"
# (Not nbdcopy: it hangs up with requests in flight after the first error,
# which makes nbdkit 1.32 abort on an assertion, and the server is gone.)
command -v qemu-io >/dev/null || skip "qemu-io not installed (apt-get install qemu-utils)"
for s in $((BAD - 1)) $BAD $LAST $((LAST + 1)); do
    if reads_ok $((s * 512)) 512; then
        ((s < BAD || s > LAST)) || fail "fixture: sector $s reads, should fail"
    else
        ((s >= BAD && s <= LAST)) && continue
        fail "fixture: sector $s fails, should read"
    fi
done
reads_ok 0 $((BAD * 512)) || fail "fixture: the $BAD sectors before the area do not read in one request"
! reads_ok 0 $(((BAD + 1) * 512)) || fail "fixture: a read over the area's first sector works"

reset_all() {
    restore_device "$d1" "$d1_orig"
    restore_file "$d2_img" "$d2_orig"
}

# expect_one_read_error_line: stderr's read-error lines are exactly the one
# for sectors BAD-LAST of the source; no destination is said to have failed.
expect_one_read_error_line() {
    grep -F " read error" "$STDERR_FILE" >"$SCRATCH/got.txt" || true
    diff -u --label expected --label stderr <(bad_range_line source "$u_src" "$BAD" "$LAST") "$SCRATCH/got.txt" >&2 ||
        fail "the read errors reported are not exactly sectors $BAD-$LAST of the source (diff above)"
    ! error_line_about "destination [0-9]" || fail "stderr reports a destination error; only the source failed"
}

# expect_json_errors: the --json report lists exactly the bad area as the
# source's errors, and no destination errors.
expect_json_errors() {
    "$PYTHON" - "$STDOUT_FILE" "$BAD" "$NBAD" <<'PY' || fail "the report's source.errors are not exactly [$BAD, $NBAD sectors, EIO]"
import json, sys
r = json.load(open(sys.argv[1]))
errors = [{k: e[k] for k in ("sector", "count", "error")} for e in r["source"]["errors"]]
want = [{"sector": int(sys.argv[2]), "count": int(sys.argv[3]), "error": "EIO"}]
assert errors == want, f"source.errors {errors}, want {want}"
assert r["source"]["errors_not_listed"] is None, r["source"]["errors_not_listed"]
assert all(not d["errors"] for d in r["destinations"]), [d["errors"] for d in r["destinations"]]
PY
}

# expect_partial_copy N DEV DEV_ORIG DEV_SECTOR SRC_SECTOR COUNT: DEV is
# destination N of a copy that stopped: untouched outside the range; inside,
# each sector is the source's or its old one, the bad sectors are the old
# ones, and exactly as many hold the source's as kcopy says it wrote.
expect_partial_copy() {
    local n=$1 dev=$2 orig=$3 ds=$4 ss=$5 count=$6 copied written size re
    size=$(size_sectors "$dev")
    expect_same_sectors "destination $n: sectors before the range" "$dev" 0 "$orig" 0 "$ds"
    expect_same_sectors "destination $n: sectors after the range" "$dev" $((ds + count)) "$orig" $((ds + count)) \
        $((size - ds - count))
    copied=$(count_copied_sectors "destination $n" "$dev" "$ds" "$src_orig" "$ss" "$orig" "$count")
    expect_same_sectors "destination $n: the sectors of the unreadable area are unchanged" \
        "$dev" $((ds + BAD - ss)) "$orig" $((ds + BAD - ss)) "$NBAD"
    re="^kcopy: (warning: )?destination $n '[^']*': ([0-9]+) of $count sectors written"
    written=$(sed -nE "s|$re.*|\\2|p" "$STDERR_FILE")
    [[ -n $written ]] || fail "stderr does not say how many sectors destination $n got ('destination $n '...': W of $count sectors written')"
    ((written == copied)) || fail "kcopy says destination $n got $written sectors, but $copied hold the source's data"
    ((copied < count)) || fail "destination $n got all $count sectors, though $BAD-$LAST are unreadable"
}

# model_ignored ORIG SRC_SECTOR DST_SECTOR COUNT: the destination after an
# --ignore-errors copy: the source's sectors, the bad ones as zeroes.
model_ignored() {
    local m ss=$2 ds=$3 count=$4 a b
    m=$(mktemp "$SCRATCH/expected.XXXXXX")
    cp -- "$1" "$m" || fail "cannot copy $1"
    model_copy "$m" "$src_orig" "$ss" "$ds" "$count"
    a=$((BAD > ss ? BAD : ss))
    b=$((LAST + 1 < ss + count ? LAST + 1 : ss + count))
    ((a < b)) && model_zero "$m" $((ds + a - ss)) $((b - a))
    printf '%s\n' "$m"
}

stopping() {
    reset_all
    check "no --ignore-errors: kcopy --json $u_src $d1 $u_d2:1000 exits exactly 64"
    expect_status 64 "$KCOPY" --json "$u_src" "$d1" "$u_d2:1000"
    expect_one_read_error_line
    expect_report 64 read_err=true write_err=0 source.argument="$u_src"
    expect_json_errors
    expect_partial_copy 1 "$d1" "$d1_orig" 0 0 "$SECTORS"
    expect_partial_copy 2 "$d2_img" "$d2_orig" 1000 0 "$SECTORS"
}

ignoring() {
    reset_all
    check "--ignore-errors: kcopy --json --ignore-errors $u_src $d1 $u_d2:1000 exits exactly 64"
    expect_status 64 "$KCOPY" --json --ignore-errors "$u_src" "$d1" "$u_d2:1000"
    expect_one_read_error_line
    expect_report 64 read_err=true write_err=0 destinations.0.sectors_written="$SECTORS" \
        destinations.1.sectors_written="$SECTORS"
    expect_json_errors
    check "only sectors $BAD-$LAST are zero on the destinations, everything else is exact"
    expect_zero_sectors "destination 1: the unreadable area" "$d1" "$BAD" "$NBAD"
    expect_matches_model "destination 1 (loop)" "$d1" "$(model_ignored "$d1_orig" 0 0 "$SECTORS")"
    expect_zero_sectors "destination 2: the unreadable area" "$d2_img" $((1000 + BAD)) "$NBAD"
    expect_matches_model "destination 2 (NBD)" "$d2_img" "$(model_ignored "$d2_orig" 0 1000 "$SECTORS")"
}

source_range() {
    reset_all
    check "a source range in the URI: kcopy --ignore-errors --io-size 64K $u_src:20000:20000 $d1:7 exits exactly 64"
    expect_status 64 "$KCOPY" --ignore-errors --io-size 64K "$u_src:20000:20000" "$d1:7"
    expect_one_read_error_line
    expect_matches_model "destination 1 (loop, at 7)" "$d1" "$(model_ignored "$d1_orig" 20000 7 20000)"

    reset_all
    check "a range that ends just before the area copies cleanly: kcopy $u_src:0:$BAD $d1 exits exactly 0"
    kcopy_ok "$u_src:0:$BAD" "$d1"
    expect_matches_model "destination 1" "$d1" "$(model_ignored "$d1_orig" 0 0 "$BAD")"
    check "a range that starts just after the area copies cleanly: kcopy $u_src:$((LAST + 1)) $u_d2 exits exactly 0"
    kcopy_ok "$u_src:$((LAST + 1))" "$u_d2"
    expect_matches_model "destination 2" "$d2_img" "$(model_ignored "$d2_orig" $((LAST + 1)) 0 $((SECTORS - LAST - 1)))"
}

run_case "stopping at the read error" stopping
run_case "--ignore-errors" ignoring
run_case "a source range" source_range

check "the source is unchanged"
cmp -s -- "$src_img" "$src_orig" || fail "the source image changed"
((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
