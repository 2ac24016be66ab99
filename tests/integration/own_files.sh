#!/usr/bin/env bash
# Nothing of kcopy's own lands in a copy, and nothing of a copy in kcopy's own files
# (issue 19, rows 1-3):
#   row 1  the mapfile is also the source or a destination - the same path, a hard link, a
#          /proc/self/fd path, another spelling, the loop device over it, a dry run's file to
#          be created: exit 128, one line naming the map and the region, the destinations and
#          the map unchanged;
#   row 2  a source or destination that is kcopy's standard output or standard error
#          (/dev/stdout, the file itself, a loop device opened as stdout): exit 128, the
#          region unchanged (nothing of kcopy's written there, the refusal included), the
#          reason on stderr (or, when stderr is the region, in the --json report);
#   row 3  standard output that cannot be written (/dev/full): one line on stderr saying so;
#          --help and --version exit 1, a copy and a dry run keep their own status.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_python
command -v jq >/dev/null || skip "jq not installed"

cd "$SCRATCH"
s_img=$(make_image s.img 4M)
s_orig=$(pristine_copy "$s_img")
d_img=$(make_image d.img 4M)
d_orig=$(pristine_copy "$d_img")
src=$(attach "$s_img")
dst_img=$(make_image dst.img 4M)
dst=$(attach "$dst_img")

# sum FILE: the sha256 of a whole file, or of a block device as it holds it (O_DIRECT).
sum() {
    if [[ -b $1 ]]; then device_sha "$1"; else sha256sum <"$1" | cut -c1-64; fi
}

# unchanged_by WANT FILE... -- CMD...: run CMD (expect_status WANT); every FILE has the
# same sha256 and size after it as before.
unchanged_by() {
    local want=$1 files=() sums=() i
    shift
    while [[ $1 != -- ]]; do files+=("$1"); shift; done
    shift
    for i in "${!files[@]}"; do sums[i]=$(sum "${files[i]}"); done
    expect_status "$want" "$@"
    for i in "${!files[@]}"; do
        [[ $(sum "${files[i]}") == "${sums[i]}" ]] || fail "${files[i]} changed"
    done
}

# --- row 1: the mapfile is a region ----------------------------------------------------
# map_refused REGION_ROLE KCOPY ARGS...: exit 128, one line "... is ROLE ... too", the map,
# the source and the destinations unchanged, no file left beside the map. RUN (an array)
# goes before kcopy.
RUN=()
map_refused() {
    local role=$1
    shift
    unchanged_by 128 x.map s.img d.img "$dst" -- "${RUN[@]}" "$KCOPY" "$@"
    expect_one_error_line
    expect_stderr_has "--mapfile" "is $role" "the copy and the map would overwrite each other"
    [[ ! -e x.map.lock ]] || fail "the lock file x.map.lock was left behind"
    ls x.map.kcopy-* >/dev/null 2>&1 && fail "a temporary file of the map was left behind"
    return 0
}
printf '0x0 ? 1\n0x0 0x2000 ?\n' >x.map
ln x.map hard.map
ln -s x.map sym.map
run_case "row 1: the mapfile as the destination (the issue's command)" \
    map_refused "destination 1 'x.map'" --json --mapfile x.map s.img x.map
run_case "row 1: the mapfile as the source" \
    map_refused "source 'x.map'" --mapfile x.map x.map d.img
run_case "row 1: a hard link of the mapfile as destination 2" \
    map_refused "destination 2 'hard.map'" --mapfile x.map s.img d.img hard.map
run_case "row 1: the mapfile through a symbolic link" \
    map_refused "destination 1 'x.map'" --mapfile sym.map s.img x.map
proc_fd() {
    RUN=(bash -c 'exec 7<x.map; exec "$@"' _)
    map_refused "destination 1 '/proc/self/fd/7'" --mapfile "$SCRATCH/x.map" s.img /proc/self/fd/7
}
run_case "row 1: the mapfile as /proc/self/fd/N" proc_fd
run_case "row 1: the mapfile as ./x.map, with a dry run" \
    map_refused "destination 1 './x.map'" --dry-run --mapfile "$SCRATCH/x.map" "$src" ./x.map
loop_over_map() {
    local map_dev
    head -c 1M /dev/zero >>x.map # a loop device needs a size
    map_dev=$(attach "$SCRATCH/x.map")
    map_refused "destination 1 '$map_dev'" --mapfile x.map "$src:0:8" "$map_dev"
}
run_case "row 1: a loop device over the mapfile" loop_over_map
new_map_new_dest() {
    map_refused "destination 1 'new.map'" --dry-run --mapfile new.map s.img new.map
    [[ ! -e new.map ]] || fail "the dry run created new.map"
    expect_status 128 "$KCOPY" --mapfile new.map s.img ./new.map
    expect_stderr_has "is destination 1 './new.map' too"
    [[ ! -e new.map ]] || fail "the refused run left new.map behind"
}
run_case "row 1: a new mapfile that is also a new destination (dry run and run)" new_map_new_dest
run_case "row 1: the mapfile's lock file as the destination" \
    map_refused "destination 1 'x.map.lock'" --mapfile x.map s.img x.map.lock
rm -f x.map.lock

# --- row 2: standard output or error is a region -----------------------------------------
# std_refused FD ROLE PATH REDIRECT KCOPY ARGS...: kcopy ARGS with descriptor FD redirected
# (bash's REDIRECT, e.g. '>>o.img') exits 128 and leaves the file of the redirection unchanged;
# the reason names ROLE 'PATH' and the stream.
std_refused() {
    local fd=$1 role=$2 path=$3 redirect=$4 file stream
    shift 4
    file=${redirect#*[<>]}
    file=${file#>}
    stream=$([[ $fd == 1 ]] && echo "standard output" || echo "standard error")
    unchanged_by 128 "$file" s.img "$dst" -- bash -c "exec $redirect"' "$@"' _ "$KCOPY" "$@"
    if [[ $fd == 1 ]]; then
        expect_one_error_line
        expect_stderr_has "$role '$path' is kcopy's $stream"
    else
        [[ ! -s $STDERR_FILE ]] || fail "something reached the old stderr"
        jq -r .error "$STDOUT_FILE" | grep -qF "$role '$path' is kcopy's $stream" ||
            fail "the report's error does not say it: $(cat "$STDOUT_FILE")"
    fi
}
cp d.img o.img
run_case "row 2: --json s.img /dev/stdout >>o.img" std_refused 1 "destination 1" /dev/stdout '1>>o.img' --json s.img /dev/stdout
run_case "row 2: s.img o.img >>o.img (the file itself)" std_refused 1 "destination 1" o.img '1>>o.img' s.img o.img
run_case "row 2: the source is standard output" std_refused 1 source o.img '1>>o.img' o.img d.img
run_case "row 2: a loop device opened read-write as standard output" \
    std_refused 1 "destination 1" "$dst" "1<>$dst" --json "$src" "$dst"
run_case "row 2: -v --json s.img /dev/stderr 2>>o.img: the reason in the report" \
    std_refused 2 "destination 1" /dev/stderr '2>>o.img' -v --json s.img /dev/stderr
run_case "row 2: a loop device as standard error" \
    std_refused 2 "destination 1" "$dst" "2<>$dst" --json "$src" "$dst"

# --- row 3: standard output is full ----------------------------------------------------
# full WANT WHAT ARGS...: kcopy ARGS >/dev/full exits WANT, with the line about WHAT last on stderr.
full() {
    local want=$1 what=$2
    shift 2
    expect_status "$want" bash -c 'exec >/dev/full; "$@"' _ "$KCOPY" "$@"
    [[ $(tail -n 1 "$STDERR_FILE") == "kcopy: cannot write $what to standard output: No space left on device" ]] ||
        fail "the last line on stderr does not say that $what was lost"
}
full_copy() {
    cp "$d_orig" d.img
    full 0 "the report" --json s.img d.img
    expect_one_error_line
    cmp -s d.img s.img || fail "the copy is not complete"
}
run_case "row 3: --json copy >/dev/full: exit 0, one line" full_copy
run_case "row 3: --dry-run >/dev/full: exit 0, one line" full 0 "the plan" --dry-run s.img d.img
run_case "row 3: --json --dry-run >/dev/full: exit 0" full 0 "the report" --json --dry-run s.img d.img
run_case "row 3: --help >/dev/full: exit 1" full 1 "the help" --help
run_case "row 3: --version >/dev/full: exit 1" full 1 "the version" --version
run_case "row 3: a refused --json copy >/dev/full keeps 128" full 128 "the report" --json s.img "$dst:0:1:2"
run_case "row 3: --json with a bad option >/dev/full keeps 128" full 128 "the report" --json --bogus s.img d.img

check "the source is unchanged"
cmp -s "$s_img" "$s_orig" || failed+=("source changed")
if ((${#failed[@]})); then
    printf 'failed: %s\n' "${failed[@]}" >&2
    fail "${#failed[@]} case(s) failed"
fi
pass
