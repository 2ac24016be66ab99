#pragma once
// The one exception type of kcopy: a setup error with a message for the user.

#include <stdexcept>
#include <string>

#include "kcopy/api.hpp"

namespace kcopy {

/// A setup error (bad argument, unopenable or too small device, bad overlap).
/// Thrown only before any I/O starts; main() prints what() as one line on
/// stderr and exits 128. The I/O loop never throws. `error_number` is the
/// errno the failure stands for where there is one (the C library returns its
/// negative), else 0.
class KCOPY_API Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, int error_number = 0)
      : std::runtime_error(message), error_number_(error_number) {}
  int error_number() const { return error_number_; }

 private:
  int error_number_;
};

}  // namespace kcopy
