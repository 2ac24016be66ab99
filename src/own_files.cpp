// kcopy's own files are never regions.

#include "kcopy/own_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "kcopy/error.hpp"
#include "kcopy/mapfile_lock.hpp"
#include "kcopy/quote.hpp"

namespace kcopy {
namespace {

std::optional<DeviceIdentity> identity_of_stat(const struct stat& st) {
  if (S_ISBLK(st.st_mode)) return DeviceIdentity{true, st.st_rdev, 0};
  if (S_ISREG(st.st_mode)) return DeviceIdentity{false, st.st_dev, st.st_ino};
  return std::nullopt;
}

// Whether region `r` is the file `id`, or is stored in it.
bool is_on(const RegionFile& r, const DeviceIdentity& id) {
  return (r.id && *r.id == id) || (r.medium && *r.medium == id);
}

}  // namespace

std::string resolved_path(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  char* real = ::realpath(dir.c_str(), nullptr);
  if (!real) return "";
  std::string out = real;
  std::free(real);
  if (out.back() != '/') out += '/';
  return out + (slash == std::string::npos ? path : path.substr(slash + 1));
}

std::optional<DeviceIdentity> identity_of_descriptor(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::nullopt;
  return identity_of_stat(st);
}

void refuse_standard_streams_as_regions(std::span<const RegionFile> regions) {
  struct Stream {
    int fd;
    const char* name;
    const char* what;
  };
  for (const Stream s : {Stream{STDOUT_FILENO, "standard output", "its own output"},
                         Stream{STDERR_FILENO, "standard error", "its messages"}}) {
    const std::optional<DeviceIdentity> id = identity_of_descriptor(s.fd);
    if (!id) continue;
    for (const RegionFile& r : regions) {
      if (!is_on(r, *id)) continue;
      // Nothing more of kcopy's goes there, this refusal included.
      const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
      if (null >= 0) {
        ::dup2(null, s.fd);
        ::close(null);
      }
      throw Error(r.role + " " + quote(r.name) + " is kcopy's " + s.name + ", where " + s.what + " go; send " + s.name +
                  " elsewhere");
    }
  }
}

void refuse_mapfile_as_region(const std::string& mapfile, std::span<const RegionFile> regions) {
  const std::string lock = MapfileLock::lock_path_of(mapfile);
  for (const bool is_lock : {false, true}) {
    const std::string& own = is_lock ? lock : mapfile;
    if (own.empty()) continue;
    struct stat st {};
    const bool exists = ::stat(own.c_str(), &st) == 0;
    const std::optional<DeviceIdentity> id = exists ? identity_of_stat(st) : std::nullopt;
    for (const RegionFile& r : regions) {
      const bool same =
          !r.create.empty() ? !exists && resolved_path(r.create) == resolved_path(own) : id && is_on(r, *id);
      if (!same) continue;
      throw Error((is_lock ? "the lock file " + quote(own) + " of --mapfile " : "--mapfile ") + quote(mapfile) +
                  " is " + r.role + " " + quote(r.name) +
                  " too: the copy and the map would overwrite each other; use another FILE");
    }
  }
}

}  // namespace kcopy
