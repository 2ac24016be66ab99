#!/usr/bin/env bash
# A mapfile's kcopy comments are compared by what they name, not by spelling (issue 19,
# row 8): a copy stopped with `--mapfile m.map ms.img md.img` resumes as $PWD/ms.img,
# ./ms.img, or through a symbolic link (and a loop device through a symbolic link to it),
# finishing an exact copy, the map keeping its comments; a real difference (another
# destination, another destination sector, one destination more) is refused (128, the
# destination and the map unchanged) quoting the map's line that differs, not the source's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/mapfile_lib.sh"
need_root
need_kcopy
need_python
need_mapfile

cd "$SCRATCH"
make_image ms.img 48M >/dev/null # 98304 sectors
make_image other.img 48M >/dev/null
other_orig=$(pristine_copy other.img)
ln -s ms.img link.img

# A stopped copy: ms.img -> md.img at 16 MiB/s, SIGINT once the first chunk (16 MiB) is
# finished.
truncate -s 48M md.img
start_kcopy --max-rate 16M --mapfile m.map --mapfile-interval 0.2 ms.img md.img
wait_map_finished m.map $((16 << 20)) >/dev/null
kill -INT "$BG_PID"
finish_kcopy 130
cp m.map stopped.map
cp md.img md.stopped
left=$(map_bytes stopped.map '?')
((left > 0)) || fail "the copy was not stopped before its end"
grep -qx '# kcopy source: ms.img:0:98304' stopped.map || fail "the map does not name ms.img: $(cat stopped.map)"

# resumes SPELLING...: from the stopped map, kcopy --mapfile m.map SPELLING... finishes the copy.
resumes() {
    cp stopped.map m.map
    cp md.stopped md.img
    expect_status 0 "$KCOPY" --json --mapfile m.map "$@"
    expect_json .mapfile.finished_bytes_before "$(map_bytes stopped.map +)"
    cmp -s md.img ms.img || fail "md.img is not an exact copy"
    ddrescuelog -D m.map || fail "the map is not finished"
    grep -qx '# kcopy source: ms.img:0:98304' m.map || fail "the map lost its source comment"
    grep -qx '# kcopy destination 1: md.img:0:98304' m.map || fail "the map lost its destination comment"
}
run_case "resumed as \$PWD/ms.img \$PWD/md.img" resumes "$PWD/ms.img" "$PWD/md.img"
run_case "resumed as ./ms.img ./md.img" resumes ./ms.img ./md.img
run_case "resumed through a symbolic link to ms.img" resumes link.img md.img
run_case "resumed as ../DIR/ms.img" resumes "../$(basename "$PWD")/ms.img" md.img

# differs LINE ARGS...: from the stopped map, kcopy --mapfile m.map ARGS is refused with one
# line quoting LINE (the map's line that differs) and not the source's; md.img, other.img and
# the map unchanged.
differs() {
    local line=$1
    shift
    cp stopped.map m.map
    cp md.stopped md.img
    expect_status 128 "$KCOPY" --mapfile m.map "$@"
    expect_one_error_line
    expect_stderr_has "mapfile 'm.map' was written for another copy ($line; this copy: " "--force"
    [[ $line == "kcopy source"* ]] || expect_stderr_lacks "kcopy source"
    cmp -s m.map stopped.map || fail "the map changed"
    cmp -s md.img md.stopped || fail "md.img changed"
    cmp -s other.img "$other_orig" || fail "other.img changed"
}
run_case "another destination: refused, quoting destination 1" \
    differs "kcopy destination 1: md.img:0:98304" ms.img other.img
run_case "destination 1 at another sector: refused, quoting destination 1" \
    differs "kcopy destination 1: md.img:0:98304" ms.img md.img:8
run_case "one more destination: refused, naming destination 2" \
    differs "no destination 2" ./ms.img ./md.img other.img
run_case "another source: refused, quoting the source" \
    differs "kcopy source: ms.img:0:98304" other.img md.img

loop_through_link() {
    local src dst
    src=$(attach "$SCRATCH/ms.img")
    dst=$(attach "$SCRATCH/other.img")
    ln -sf "$src" src-link
    kcopy_ok --mapfile loop.map "$src:0:8192" "$dst"
    sed -i 's/^0x00000000  0x00400000  +$/0x00000000  0x00400000  ?/' loop.map # copy it all again
    restore_device "$dst" "$other_orig"
    kcopy_ok --json --mapfile loop.map src-link:0:8192 "$dst"
    expect_json .bytes $((4 << 20))
    expect_same_sectors "the loop copy" "$dst" 0 "$SCRATCH/ms.img" 0 8192
    grep -qx "# kcopy source: $src:0:8192" loop.map || fail "the map lost its source comment"
}
run_case "a loop device resumed through a symbolic link to it" loop_through_link

if ((${#failed[@]})); then
    printf 'failed: %s\n' "${failed[@]}" >&2
    fail "${#failed[@]} case(s) failed"
fi
pass
