// One run per mapfile: an flock on FILE.lock.

#include "kcopy/mapfile_lock.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "kcopy/error.hpp"
#include "kcopy/own_files.hpp"
#include "kcopy/quote.hpp"

namespace kcopy {
namespace {

bool same_file(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

Error in_use(const std::string& mapfile, const std::string& lock) {
  return Error("mapfile " + quote(mapfile) + " is in use by another kcopy run (it holds " + quote(lock) +
                   "); wait until it ends, or use another FILE",
               EWOULDBLOCK);
}

}  // namespace

std::string MapfileLock::lock_path_of(const std::string& mapfile) {
  const std::string resolved = resolved_path(mapfile);
  return resolved.empty() ? resolved : resolved + ".lock";
}

MapfileLock MapfileLock::acquire(const std::string& mapfile, bool dry_run) {
  MapfileLock lock;
  const std::string path = lock_path_of(mapfile);
  if (path.empty()) {
    if (dry_run) return lock;  // no directory: no lock file, and the dry run creates none
    throw Error("cannot lock mapfile " + quote(mapfile) + ": " + std::strerror(errno));
  }
  // A run that ends removes its lock file while holding it: the file locked here may have been
  // removed (or replaced by the next run's) in between. Then it is another file: try again.
  for (int attempt = 0; attempt < 100; ++attempt) {
    FileDesc fd(::open(path.c_str(), (dry_run ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC | O_NOFOLLOW, 0666));
    if (!fd) {
      if (dry_run && errno == ENOENT) return lock;
      throw Error("mapfile " + quote(mapfile) + ": cannot " + (dry_run ? "open" : "create") + " its lock file " +
                  quote(path) + ": " + std::strerror(errno));
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) throw in_use(mapfile, path);
      spdlog::warn("mapfile {}: cannot lock {} ({}): another run on it would not be stopped", quote(mapfile),
                   quote(path), std::strerror(errno));
      if (!dry_run) lock.path_ = path;  // removed at the end all the same
      lock.fd_ = std::move(fd);
      return lock;
    }
    struct stat held {
    }, now{};
    if (::fstat(fd.get(), &held) != 0) continue;
    if (::stat(path.c_str(), &now) != 0 || !same_file(held, now)) continue;
    if (dry_run) return lock;  // free: closing it lets it go at once
    lock.path_ = path;
    lock.fd_ = std::move(fd);
    return lock;
  }
  throw in_use(mapfile, path);
}

MapfileLock& MapfileLock::operator=(MapfileLock&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    other.path_.clear();
    fd_ = std::move(other.fd_);
  }
  return *this;
}

void MapfileLock::release() {
  if (!fd_) return;
  if (!path_.empty()) ::unlink(path_.c_str());  // still held: no other run has it meanwhile
  fd_ = FileDesc();
  path_.clear();
}

}  // namespace kcopy
