#pragma once
// --mapfile FILE is one run's: the run holds a lock on it from before it reads FILE until it
// ends, and a second run on the same FILE is refused.
//
// The lock is an flock(2) LOCK_EX on a sibling file, "FILE.lock", not on FILE itself: every
// rewrite of FILE replaces its inode (write_file_atomically renames a new file over it), so
// a lock on FILE's inode would be lost at the first rewrite. The sibling is named from FILE's
// directory resolved (realpath), so that "m.map", "./m.map" and "$PWD/m.map" lock one file.
// The holder removes it when it ends (while still holding it); an acquirer checks that the
// file it locked is still the one at the path, so that a run ending at that moment cannot
// leave two runs each holding a lock. A lock file left by a killed run holds no lock: the
// next run takes it.

#include <string>

#include "kcopy/file_desc.hpp"

namespace kcopy {

class MapfileLock {
 public:
  /// No lock (held() is false).
  MapfileLock() = default;
  /// Takes the lock of the mapfile at `mapfile`: creates "FILE.lock" beside it if needed,
  /// flock(LOCK_EX | LOCK_NB). Throws kcopy::Error naming the mapfile: "mapfile 'FILE' is in
  /// use by another kcopy run ..." when another process holds it, or the lock file cannot be
  /// created (its directory does not exist, permission...). A file system without flock
  /// (ENOLCK, EOPNOTSUPP) gives a warning, and the run goes on unlocked.
  ///
  /// With `dry_run`, creates nothing and holds nothing: only refuses, as the run would, when
  /// an existing lock file is held by another process.
  static MapfileLock acquire(const std::string& mapfile, bool dry_run);

  MapfileLock(MapfileLock&&) noexcept = default;
  MapfileLock& operator=(MapfileLock&& other) noexcept;
  MapfileLock(const MapfileLock&) = delete;
  MapfileLock& operator=(const MapfileLock&) = delete;
  /// Removes the lock file, then releases the lock (closes it).
  ~MapfileLock() { release(); }

  bool held() const { return static_cast<bool>(fd_); }
  /// The lock file's path ("" when none was found or made): a region may not be it either.
  const std::string& path() const { return path_; }

  /// The lock file of the mapfile at `mapfile`: its directory resolved, plus the name, plus
  /// ".lock". "" when the directory cannot be resolved (does not exist).
  static std::string lock_path_of(const std::string& mapfile);

 private:
  void release();
  std::string path_;
  FileDesc fd_;
};

}  // namespace kcopy
