#pragma once
// The one exception type of kcopy: a setup error with a message for the user.

#include <stdexcept>
#include <string>

namespace kcopy {

/// A setup error (bad argument, unopenable or too small device, bad overlap).
/// Thrown only before any I/O starts; main() prints what() as one line on
/// stderr and exits 128. The I/O loop never throws.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace kcopy
