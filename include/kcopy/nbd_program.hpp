#pragma once
// NBD copies run in kcopy-nbd, the same program linked with libnbd. kcopy itself
// is linked statically, for start-up time: scripts run it once per small copy,
// and libnbd would bring about twenty shared libraries (GnuTLS, libxml2, ICU...)
// into every run, about 3.5 ms each time, more than a whole 4 KiB copy takes; a
// static program cannot load libnbd later (dlopen). So kcopy execs kcopy-nbd.

#include <string>
#include <vector>

namespace kcopy {

/// Where kcopy-nbd is looked for, in order: beside this program (a build tree),
/// then the installed libexec directory (KCOPY_LIBEXECDIR).
std::vector<std::string> nbd_program_paths();

/// When an argument is an NBD URI (is_nbd_uri) and this program has no NBD
/// support, replaces this process with kcopy-nbd and the same arguments (the
/// same PID, signals and descriptors). Call first in main, after
/// block_stop_signals() (the blocked mask survives the exec: kcopy-nbd unblocks
/// the signals once its own handlers are in place) and before any handler or
/// descriptor is set up. Returns when there is nothing to do, or when no
/// kcopy-nbd could be executed (the copy then fails at setup, saying so).
void exec_nbd_program_if_needed(int argc, char** argv);

}  // namespace kcopy
