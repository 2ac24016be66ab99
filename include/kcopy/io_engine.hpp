#pragma once
// The --io-engine choice: which IoBackend serves local devices.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kcopy/api.hpp"
#include "kcopy/device.hpp"
#include "kcopy/io_backend.hpp"

namespace kcopy {

/// --io-engine: `automatic` (the default) picks the fastest that works here.
enum class IoEngine { automatic, io_uring, libaio, sync };

/// "io_uring", "libaio", "sync" (and "auto"). Throws kcopy::Error naming the
/// valid values for anything else.
KCOPY_API IoEngine parse_io_engine(std::string_view text);
KCOPY_API const char* io_engine_name(IoEngine engine);

/// A backend and why it was chosen (for -v).
struct ChosenBackend {
  std::unique_ptr<IoBackend> backend;
  IoEngine engine = IoEngine::automatic;
  std::string reason;
  std::vector<IoEngine> methods = {};  ///< the method of each endpoint, in order (FUSE files: never io_uring)
};

/// Builds the backend for `endpoints`, sized for `max_requests` in flight.
/// An explicit engine is used as asked (a failure to set it up throws
/// kcopy::Error). `automatic`: pread/pwrite for a copy of one sub-job or less
/// (`copy_bytes` <= `io_size`: a ring or AIO context would cost more than it
/// saves), else io_uring, else libaio where io_uring is missing or refused
/// (kernel.io_uring_disabled, seccomp, kernels before 5.6), the reason kept.
/// Whatever the engine, a FUSE file (FdEndpoint::on_fuse) is never served by
/// io_uring: where the others get io_uring, FUSE files get libaio, both
/// behind one MultiplexBackend; `engine` is then the others' method.
KCOPY_API ChosenBackend make_backend(IoEngine engine, std::vector<FdEndpoint> endpoints, std::size_t max_requests,
                                     std::uint64_t copy_bytes, std::uint64_t io_size);

}  // namespace kcopy
