// Standard output, written with a word when it fails.

#include "kcopy/standard_output.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

namespace kcopy {

bool write_standard_output(std::string_view text, std::string_view what) {
  std::cout.flush();  // std::cout is synced with stdout: both end up in stdout's buffer
  errno = 0;
  int error = std::fflush(stdout) != 0 || std::ferror(stdout) ? (errno ? errno : EIO) : 0;
  while (error == 0 && !text.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) error = errno;
    if (n > 0) text.remove_prefix(static_cast<std::size_t>(n));
  }
  if (error == 0) return true;
  const std::string line =
      "kcopy: cannot write " + std::string(what) + " to standard output: " + std::strerror(error) + "\n";
  [[maybe_unused]] const ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  return false;
}

}  // namespace kcopy
