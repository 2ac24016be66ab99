#pragma once
// libnbd, loaded when a copy has an NBD endpoint (dlopen), not at start-up: linking
// it would load about twenty libraries (GnuTLS, libxml2, ICU...) into every run of
// kcopy, about 3.5 ms each time, more than a whole 4 KiB copy takes.
//
// The command links src/libnbd_loader.cpp in place of libnbd: it defines each libnbd
// function kcopy calls (with libnbd.h's own prototype) as a call through a pointer
// that require_libnbd() resolves. The unit tests link libnbd itself.

namespace kcopy {

/// Loads libnbd.so.0 and resolves every function kcopy calls, once (later calls
/// return at once). Call before the first libnbd call. Throws kcopy::Error (errno
/// ENOSYS) naming the library and the package to install when it cannot be
/// loaded or lacks a function. Not thread-safe: call it from setup.
void require_libnbd();

}  // namespace kcopy
