#!/usr/bin/env bash
# Mapfiles kcopy refuses (exit 128, before anything is written: the
# destinations and the mapfile byte for byte unchanged, no temporary file left
# next to it, one "kcopy: " line on stderr), and those it takes:
# - a map kcopy wrote for SRC -> D1 (its comments name them), given with another
#   source, another destination, or one more destination: refused, the message
#   mentions --force; with --force it is taken: only what it does not say
#   finished is copied;
# - corrupt maps: refused, the message says "mapfile 'MAP' line N:" with the
#   line of the fault (comment lines count);
# - a map with finished ('+') bytes past the end of the source range (also
#   with a range that starts past 0): refused (ddrescue's own rule); a map
#   whose part past the end is only non-tried is taken;
# - --zero with --mapfile: refused; --dry-run checks the map as the copy would
#   (a corrupt one refused with its line) but creates and changes nothing;
# - a FILE in a directory that does not exist, a directory, the destination
#   device itself: refused, nothing written or created;
# - --mapfile-interval that is not a positive number: refused (no map created)
#   with a short clear line naming the option and the value; 0.2 is taken.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/mapfile_lib.sh"
need_root
need_kcopy
need_python
need_mapfile

MAPS=$SCRATCH/maps
mkdir -p "$MAPS"
src_img=$(make_image src.img 16M)
other_img=$(make_image other.img 16M)
d1_img=$(make_image d1.img 16M)
d2_img=$(make_image d2.img 16M)
src_orig=$(pristine_copy "$src_img")
other_orig=$(pristine_copy "$other_img")
d1_orig=$(pristine_copy "$d1_img")
d2_orig=$(pristine_copy "$d2_img")
src=$(attach "$src_img")
other=$(attach "$other_img")
d1=$(attach "$d1_img")
d2=$(attach "$d2_img")

# refused MAP WANT_TEXT... -- KCOPY ARGS...: kcopy ARGS exits 128 with one line
# on stderr holding every WANT_TEXT; d1, d2 and MAP are unchanged (MAP absent
# if it was), no temporary file is left next to MAP.
refused() {
    local map=$1 texts=() had=0 s1 s2
    shift
    while [[ $1 != -- ]]; do texts+=("$1"); shift; done
    shift
    local stamp=
    [[ -e $map ]] && { had=1; cp "$map" "$SCRATCH/map.before"; stamp=$(stat -c '%i %y' "$map"); }
    s1=$(device_sha "$d1")
    s2=$(device_sha "$d2")
    expect_status 128 "$KCOPY" --json "$@"
    expect_one_error_line
    expect_stderr_has "${texts[@]}"
    "$PYTHON" "$TESTS_DIR/check_report.py" "$STDOUT_FILE" 128 || fail "the --json report is wrong (above)"
    [[ $(device_sha "$d1") == "$s1" ]] || fail "destination $d1 changed"
    [[ $(device_sha "$d2") == "$s2" ]] || fail "destination $d2 changed"
    if ((had)); then
        cmp -s "$map" "$SCRATCH/map.before" || fail "the mapfile $map changed"
        [[ $(stat -c '%i %y' "$map") == "$stamp" ]] || fail "the mapfile $map was rewritten (same bytes, new inode or time)"
    else
        [[ ! -e $map ]] || fail "the mapfile $map was created"
    fi
    expect_no_temp_files "$map"
}

# --- a map of other devices ------------------------------------------------------
check "a map kcopy wrote for $src:0:4096 -> $d1"
map=$MAPS/mine.map
kcopy_ok --mapfile "$map" "$src:0:4096" "$d1"
cp "$map" "$MAPS/saved.mine"

run_case "the map with another source: refused" \
    refused "$map" "--force" -- --mapfile "$map" "$other:0:4096" "$d1"
run_case "the map with another destination: refused" \
    refused "$map" "--force" -- --mapfile "$map" "$src:0:4096" "$d2"
run_case "the map with one more destination: refused" \
    refused "$map" "--force" -- --mapfile "$map" "$src:0:4096" "$d1" "$d2"

with_force() {
    # The map says source bytes [0, 2 MiB) finished: with --force, only
    # [2 MiB, 4 MiB) of the other source's range is copied.
    restore_device "$d2" "$d2_orig"
    expect_status 0 "$KCOPY" --force --json --mapfile "$map" "$other:0:8192" "$d2"
    expect_json .bytes $((2 << 20))
    expect_json .mapfile.finished_bytes_before $((2 << 20))
    expect_json .mapfile.finished_bytes $((4 << 20))
    local expected=$SCRATCH/expected.img
    cp "$d2_orig" "$expected"
    model_copy "$expected" "$other_orig" 4096 4096 4096
    expect_matches_model "destination 2: old bytes where the map said finished, the other source's after" "$d2" "$expected"
    ddrescuelog -D -s $((4 << 20)) "$map" || fail "the map is not finished over [0, 4 MiB)"
}
run_case "the same map with --force, another source and destination and a larger range: taken" with_force

# --- corrupt maps ----------------------------------------------------------------
# corrupt NAME LINE: a map whose line LINE is wrong (built from stdin as is).
corrupt() {
    local name=$1 line=$2 map=$MAPS/$1.map
    cat >"$map"
    sed -n "${line}p" "$map" | sed "s/^/    line $line: /"
    run_case "a corrupt map ($name): refused, the message names line $line" \
        refused "$map" "mapfile '$map' line $line:" -- --mapfile "$map" "$src:0:4096" "$d1"
    # ddrescue agrees that it is corrupt (exit 2).
    local rc=0
    ddrescuelog -t "$map" >/dev/null 2>&1 || rc=$?
    ((rc == 2)) || failed+=("the fixture: ddrescuelog -t on the $name map exits $rc, not 2")
}
corrupt bad-status 7 <<'EOF'
# Mapfile. Created by GNU ddrescue version 1.27
# Command line: ddrescue -f /dev/loop0 /dev/loop1 map
# current_pos  current_status  current_pass
0x00000000     ?               1
#      pos        size  status
0x00000000  0x00100000  +
0x00100000  0x00100000  x
0x00200000  0x00100000  ?
EOF
corrupt gap 8 <<'EOF'
# Mapfile. Created by GNU ddrescue version 1.27
# current_pos  current_status  current_pass
0x00000000     ?               1
#      pos        size  status
0x00000000  0x00100000  +

# a comment and a blank line count as lines too
0x00180000  0x00100000  ?
EOF
corrupt not-a-number 5 <<'EOF'
# current_pos  current_status  current_pass
0x00000000     ?               1
#      pos        size  status
0x00000000  0x00100000  +
0x00100000  0x001zz000  ?
EOF
corrupt bad-status-line 2 <<'EOF'
# current_pos  current_status  current_pass
0x00000000     Z               1
0x00000000  0x00100000  +
EOF
corrupt empty-block 4 <<'EOF'
# Mapfile. Created by GNU ddrescue version 1.27
0x00000000     ?               1
0x00000000  0x00100000  +
0x00100000  0x00000000  ?
EOF

# --- finished bytes past the end of the range ------------------------------------
past=$MAPS/past.map
write_map "$past" <<'EOF'
0 0x200000 +
0x200000 0x200000 ?
0x400000 0x100000 +
EOF
run_case "a map with '+' bytes past the end of the range (bytes [4 MiB, 5 MiB) of a 4 MiB range): refused" \
    refused "$past" "$past" "has finished areas past the end of the source range" -- --mapfile "$past" "$src:0:8192" "$d1"
past2=$MAPS/past2.map
write_map "$past2" <<'EOF'
0 0x100000 ?
0x100000 0x180000 +
EOF
run_case "a map finished over [1 MiB, 2.5 MiB), the range [1 MiB, 2 MiB): refused" \
    refused "$past2" "$past2" "has finished areas past the end of the source range" -- --mapfile "$past2" "$src:2048:2048" "$d1"

beyond() {
    # Finished over [0, 1 MiB), non-tried from there to 8 MiB; the range is [0, 4 MiB).
    local map=$MAPS/beyond.map expected=$SCRATCH/expected.img
    write_map "$map" <<'EOF'
0 0x100000 +
0x100000 0x700000 ?
EOF
    restore_device "$d1" "$d1_orig"
    expect_status 0 "$KCOPY" --json --mapfile "$map" "$src:0:8192" "$d1"
    expect_json .bytes $((3 << 20))
    cp "$d1_orig" "$expected"
    model_copy "$expected" "$src_orig" 2048 2048 6144
    expect_matches_model "destination 1: old bytes where the map said finished, the source's in the rest of the range" "$d1" "$expected"
    ddrescuelog -D -s $((4 << 20)) "$map" || fail "the map is not finished over the range"
}
run_case "a map non-tried past the end of the range: taken" beyond

# --- a FILE that cannot be a mapfile ----------------------------------------------
# not_a_mapfile WHAT FILE: kcopy --mapfile FILE exits 128, one line naming FILE,
# the destinations unchanged, nothing created.
not_a_mapfile() {
    local file=$2 s1 before
    s1=$(device_sha "$d1")
    before=$(ls -A "$MAPS")
    expect_status 128 "$KCOPY" --mapfile "$file" "$src:0:4096" "$d1"
    expect_one_error_line
    expect_stderr_has "'$file'"
    [[ $(device_sha "$d1") == "$s1" ]] || fail "destination $d1 changed"
    [[ $(ls -A "$MAPS") == "$before" ]] || fail "something was created in $MAPS"
    [[ ! -e $file || -d $file || -b $file ]] || fail "$file was created"
}
run_case "--mapfile in a directory that does not exist: refused" not_a_mapfile dir "$MAPS/no-such-dir/x.map"
run_case "--mapfile naming a directory: refused" not_a_mapfile dir "$MAPS"
run_case "--mapfile naming the destination device: refused, the device unchanged" not_a_mapfile dev "$d1"

# --- --zero and --dry-run ----------------------------------------------------------
run_case "--zero with --mapfile (no source to map): refused" \
    refused "$MAPS/zero.map" "--mapfile records a copy from a source; --zero has none" -- --zero --mapfile "$MAPS/zero.map" "$d1:0:4096"
dry_run_new() {
    local s1
    s1=$(device_sha "$d1")
    kcopy_ok --dry-run --mapfile "$MAPS/dry.map" "$src:0:4096" "$d1"
    [[ ! -e $MAPS/dry.map ]] || fail "--dry-run created the mapfile"
    [[ $(device_sha "$d1") == "$s1" ]] || fail "--dry-run wrote to $d1"
}
run_case "--dry-run with a new mapfile: exit 0, the mapfile not created" dry_run_new
run_case "--dry-run with a corrupt mapfile: refused, the message names the line" \
    refused "$MAPS/gap.map" "mapfile '$MAPS/gap.map' line 8:" -- --dry-run --mapfile "$MAPS/gap.map" "$src:0:4096" "$d1"
dry_run_mine() {
    local m=$MAPS/fresh.map stamp
    kcopy_ok --mapfile "$m" "$src:0:4096" "$d1"
    cp "$m" "$MAPS/saved.fresh"
    stamp=$(stat -c '%i %y' "$m")
    kcopy_ok --dry-run --mapfile "$m" "$src:0:4096" "$d1"
    [[ $(stat -c '%i %y' "$m") == "$stamp" ]] || fail "--dry-run rewrote the mapfile"
    cmp -s "$m" "$MAPS/saved.fresh" || fail "--dry-run changed the mapfile"
}
run_case "--dry-run with the map of a finished copy: exit 0, the map untouched" dry_run_mine

# --- --mapfile-interval ----------------------------------------------------------
# bad_interval VALUE: refused, the one line names the option and the value,
# and is short enough to read (a clear line, not a dump of DBL_MAX).
bad_interval() {
    refused "$MAPS/interval.map" "--mapfile-interval" "$1" -- --mapfile "$MAPS/interval.map" --mapfile-interval "$1" "$src:0:4096" "$d1"
    local len
    len=$(head -n 1 "$STDERR_FILE" | wc -c)
    ((len <= 160)) || fail "the message is $len characters long: not one clear line"
}
for v in 0 -1 abc 0x; do
    run_case "--mapfile-interval $v: refused" bad_interval "$v"
done
interval_ok() {
    restore_device "$d1" "$d1_orig"
    kcopy_ok --mapfile "$MAPS/interval.map" --mapfile-interval 0.2 "$src:0:4096" "$d1"
    ddrescuelog -D "$MAPS/interval.map" || fail "the map is not finished"
}
run_case "--mapfile-interval 0.2: taken" interval_ok

check "the sources are unchanged"
cmp -s "$src_img" "$src_orig" || failed+=("source changed")
cmp -s "$other_img" "$other_orig" || failed+=("other source changed")
if ((${#failed[@]})); then
    printf 'failed: %s\n' "${failed[@]}" >&2
    fail "${#failed[@]} case(s) failed"
fi
pass
