#pragma once
// The whole `kcopy SOURCE DEST...` run: open, plan, copy, report.

#include "kcopy/cli.hpp"

namespace kcopy {

/// Opens the devices, checks the plan, runs the copy on a KcopydClient, waits for
/// it (SIGINT/SIGTERM stop it: the I/O in flight drains first), reports on stderr
/// and returns the exit status of the contract. Throws kcopy::Error for setup
/// errors, after removing any destination file it created; nothing was written then.
int run_copy_command(const Options& options);

}  // namespace kcopy
