#pragma once
// The files kcopy itself writes: its standard output and standard error, the mapfile and the
// mapfile's lock. None of them may also be a region: the copy would go into kcopy's own text,
// or kcopy's text into the copy. Judged by file identity (device and inode; st_rdev for a
// block device), so that a hard link, a symbolic link, a /proc/self/fd path or any other
// spelling is caught; and on the region's medium too (a loop device over the file).

#include <optional>
#include <span>
#include <string>

#include "kcopy/device.hpp"

namespace kcopy {

/// A region as these checks see it.
struct RegionFile {
  std::string role;  ///< "source", "destination 2": for messages
  std::string name;  ///< the path as typed (an NBD URI redacted)
  /// The file or block device it is on, and the one its bytes are stored in (Medium); none
  /// for an NBD export, or for a dry run's file to be created (then `create` is its path).
  std::optional<DeviceIdentity> id;
  std::optional<DeviceIdentity> medium;
  std::string create;
};

/// `path` with its directory resolved (realpath of the directory, then the last name as it
/// is): how a path that may not exist yet is compared with another. "" when the directory
/// cannot be resolved (it does not exist).
std::string resolved_path(const std::string& path);

/// The identity of what descriptor `fd` is open on, for a regular file or a block device
/// (fstat); none for anything else (a pipe, a terminal, /dev/null) or a closed descriptor.
std::optional<DeviceIdentity> identity_of_descriptor(int fd);

/// Refuses (kcopy::Error, for exit status 128) a region that is kcopy's standard output or
/// standard error: "destination 1 '/dev/stdout' is kcopy's standard output ...". Before it
/// throws, that descriptor is pointed at /dev/null, so that nothing kcopy writes afterwards
/// (the message itself, the --json report) reaches the region: with standard error a region,
/// the message is seen only in the --json report.
void refuse_standard_streams_as_regions(std::span<const RegionFile> regions);

/// Refuses (kcopy::Error) a region that is the mapfile `mapfile` or its lock file (see
/// MapfileLock): the same file, or a block device whose bytes are stored in it (a loop device
/// over it); for a dry run's region to be created, the same resolved path. The message names
/// the mapfile and the region.
void refuse_mapfile_as_region(const std::string& mapfile, std::span<const RegionFile> regions);

}  // namespace kcopy
