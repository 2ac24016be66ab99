#include "kcopy/nbd_program.hpp"

#include <unistd.h>

#include <climits>
#include <string_view>

#include "kcopy/nbd_uri.hpp"
#include "kcopy_version.h"

namespace kcopy {

std::vector<std::string> nbd_program_paths() {
  std::vector<std::string> paths;
  char self[PATH_MAX];
  if (const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1); n > 0) {
    std::string dir(self, static_cast<std::size_t>(n));
    dir.erase(dir.rfind('/') + 1);
    paths.push_back(dir + "kcopy-nbd");
  }
  paths.push_back(std::string(KCOPY_LIBEXECDIR) + "/kcopy-nbd");
  return paths;
}

void exec_nbd_program_if_needed([[maybe_unused]] int argc, [[maybe_unused]] char** argv) {
#ifndef KCOPY_HAVE_NBD
  bool uri = false;
  for (int i = 1; i < argc; ++i) uri |= is_nbd_uri(argv[i]);
  if (!uri) return;
  for (const std::string& path : nbd_program_paths()) ::execv(path.c_str(), argv);  // returns on failure only
#endif
}

}  // namespace kcopy
