#pragma once
// What kcopy prints on standard output (the help, the version, the dry-run plan, the --json
// report), written so that a failed write is said, never lost without a word.

#include <string_view>

namespace kcopy {

/// Writes `text` whole to descriptor 1 (after whatever stdio still buffers for it). On a
/// failed write (ENOSPC on /dev/full, EPIPE from a closed pipe, EIO...) prints one line on
/// stderr, "kcopy: cannot write WHAT to standard output: ERRNO TEXT", and returns false;
/// the caller decides the exit status (--help and --version: 1, as coreutils; a copy keeps
/// its own). `what` names the text: "the report", "the help"... Retries on EINTR.
bool write_standard_output(std::string_view text, std::string_view what);

}  // namespace kcopy
