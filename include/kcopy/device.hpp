#pragma once
// The device layer: one opened endpoint (block device or regular file) with its
// size, logical block size and identity. The `struct block_device` of a dm_io_region.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "kcopy/api.hpp"
#include "kcopy/file_desc.hpp"
#include "kcopy/io_backend.hpp"

namespace kcopy {

/// How to open a device.
struct OpenOptions {
  bool read = true;       ///< the source is on it
  bool write = false;     ///< a destination is on it (a missing file is created)
  bool buffered = false;  ///< --buffered: never use O_DIRECT
  bool exclusive = true;  ///< block-device destinations: O_EXCL (--force clears it)
  /// --dry-run: every check that `write` implies, without opening anything for
  /// writing or creating anything. Descriptors are read-only; the O_EXCL in-use
  /// check is a read-only exclusive open (Linux claims a block device opened
  /// O_RDONLY | O_EXCL as it would for writing: EBUSY when it is in use); write
  /// permission and read-only file systems are checked with faccessat(W_OK); a
  /// missing file is not created (would_create()), its directory is checked.
  bool dry_run = false;
};

/// What makes two devices the same: st_rdev for block devices,
/// st_dev + st_ino for regular files.
struct DeviceIdentity {
  bool is_block = false;
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const DeviceIdentity&) const = default;
};

/// Where a device's bytes are really stored: the device itself, or, for a
/// partition, its whole disk (at the partition's start), and for a loop device,
/// its backing file or device (at the loop's offset), followed as far as they go.
/// Two endpoints on one medium overlap where their byte ranges there do.
struct Medium {
  DeviceIdentity id;
  std::uint64_t offset = 0;  ///< bytes: where byte 0 of the device lies on the medium
  bool operator==(const Medium&) const = default;
};

/// The descriptors the file backends need of one Device (borrowed: the Device
/// must outlive every backend that holds its FdEndpoint).
struct FdEndpoint {
  int direct_fd = -1;           ///< for requests aligned to `alignment`
  int buffered_fd = -1;         ///< for the rest (same file, page cache)
  std::uint32_t alignment = 1;  ///< bytes; 1 when direct_fd is not O_DIRECT
  Placement placement;          ///< on which medium, at which offset (set by the caller)
  /// A regular file on FUSE: io_uring completes a partly failed direct request
  /// there with its full length (Linux 6.18), so it is never served by io_uring
  /// (make_backend gives it libaio).
  bool on_fuse = false;

  /// The descriptor for a transfer of `buffer` at byte `offset`: direct I/O needs
  /// offset, length and memory aligned to the logical block size, so the
  /// unaligned head or tail of a range goes through the page cache.
  int fd_for(std::uint64_t offset, std::span<const std::byte> buffer) const {
    const bool aligned = offset % alignment == 0 && buffer.size() % alignment == 0 &&
                         reinterpret_cast<std::uintptr_t>(buffer.data()) % alignment == 0;
    return aligned ? direct_fd : buffered_fd;
  }

  /// Writes back and drops the page-cache pages of bytes [offset, offset +
  /// length) where reads of them go through the page cache (no O_DIRECT, or
  /// an unaligned head or tail), so that the next read comes from the device:
  /// sync_file_range then posix_fadvise(POSIX_FADV_DONTNEED). 0 or -errno.
  KCOPY_API int drop_cache(std::uint64_t offset, std::uint64_t length) const;

  /// The byte offset of the first data at or after `offset` (lseek SEEK_DATA):
  /// where a file's hole ends; `offset` itself where the file system does not
  /// know holes (block devices: all data); UINT64_MAX when only a hole follows.
  KCOPY_API std::uint64_t next_data(std::uint64_t offset) const;
};

/// One opened block device or regular file. Move-only; owns its descriptors.
///
/// Two descriptors: `direct_fd()` (O_DIRECT unless refused or --buffered) for
/// requests aligned to `alignment()`, and `buffered_fd()` (the page cache) for the
/// unaligned head or tail of a range. Both name the same file.
class Device {
 public:
  /// Opens `path` as `options` says: O_RDONLY, O_WRONLY or O_RDWR (a device that
  /// holds the source and a destination), plus O_EXCL for written block devices
  /// unless !exclusive; a missing file is created,
  /// and created() says so, so that a later setup error can remove it).
  /// Where O_DIRECT is refused (ramfs, older tmpfs: EINVAL), falls back to buffered I/O and
  /// sets `direct_refused()` so the caller can print a one-line notice.
  /// Throws kcopy::Error naming `role` and `path`: missing, a directory, a
  /// character device or other non-block non-regular file, permission denied,
  /// read-only, in use (EBUSY, with a hint about --force; a block device that
  /// is neither mounted nor held by the kernel is tried again for up to a
  /// second first: a process killed a moment ago holds its O_EXCL claim until
  /// the kernel has ended its I/O in flight). With
  /// options.dry_run, the same errors with the same messages, and nothing
  /// opened for writing or created (see OpenOptions::dry_run).
  KCOPY_API static Device open(const std::string& path, const std::string& role, const OpenOptions& options);

  /// The identity of the file at `path` (stat), or nothing when there is none.
  KCOPY_API static std::optional<DeviceIdentity> identify(const std::string& path);

  const std::string& path() const { return path_; }
  /// Size in bytes: st_size for files; for block devices BLKGETSIZE64 rounded
  /// down to whole logical blocks (a 4Kn device over a file of 1 MiB + 1536
  /// bytes reports the partial block, but cannot read or write it).
  std::uint64_t size_bytes() const { return size_bytes_; }
  /// Logical block size in bytes (BLKSSZGET; for files, statx STATX_DIOALIGN's
  /// offset alignment, or 512); the O_DIRECT alignment of offsets and lengths.
  /// 1 when the device is opened without O_DIRECT.
  std::uint32_t alignment() const { return alignment_; }
  /// The logical block size (BLKSSZGET, or 512 for files), whatever the mode.
  std::uint32_t logical_block_size() const { return logical_block_size_; }
  bool is_block() const { return identity_.is_block; }
  /// A regular file on a FUSE file system (fstatfs: FUSE_SUPER_MAGIC); see FdEndpoint::on_fuse.
  bool on_fuse() const { return on_fuse_; }
  bool is_direct() const { return direct_; }
  bool direct_refused() const { return direct_refused_; }
  /// A regular-file destination that did not exist and was created by open().
  bool created() const { return created_; }
  /// The file open() created, or a dry run would create: path(), or the file
  /// a dangling symlink at path() leads to (created as cp and dd do).
  const std::string& created_path() const { return created_path_; }
  /// A dry run's missing regular-file destination: nothing is open (no
  /// descriptors), the size is 0, and the identity is made up from the path
  /// (the same path gives the same identity), so that overlap is still judged.
  bool would_create() const { return would_create_; }
  const DeviceIdentity& identity() const { return identity_; }
  /// Where the device's bytes are stored (see Medium): found through sysfs for
  /// partitions (/sys/dev/block/M:m/start) and loop devices (loop/backing_file,
  /// loop/offset); the device itself otherwise.
  const Medium& medium() const { return medium_; }

  int direct_fd() const { return direct_fd_.get(); }
  /// The page-cache descriptor; the direct one when the device is not O_DIRECT.
  int buffered_fd() const { return buffered_fd_ ? buffered_fd_.get() : direct_fd_.get(); }
  FdEndpoint endpoint() const { return {direct_fd(), buffered_fd(), alignment_, {}, on_fuse_}; }

  /// Checks, without changing anything, that a regular file can be grown to
  /// `bytes`: within the file-size limit (RLIMIT_FSIZE, `ulimit -f`) and the
  /// largest file its file system allows (lseek to the last byte is refused
  /// past it; not for a file a dry run would create, which has no descriptor).
  /// No-op for block devices and files already that large.
  /// Throws kcopy::Error naming the limit.
  KCOPY_API void check_can_grow_to(std::uint64_t bytes) const;
  /// Grows a regular file to at least `bytes` (ftruncate); no-op for block
  /// devices and for files already that large. Throws kcopy::Error.
  KCOPY_API void grow_to(std::uint64_t bytes);

 private:
  std::string path_;
  std::string role_;
  std::string created_path_;
  FileDesc direct_fd_;
  FileDesc buffered_fd_;
  std::uint64_t size_bytes_ = 0;
  std::uint32_t alignment_ = 1;
  std::uint32_t logical_block_size_ = 512;
  bool direct_ = false;
  bool direct_refused_ = false;
  bool created_ = false;
  bool would_create_ = false;
  bool on_fuse_ = false;
  DeviceIdentity identity_;
  Medium medium_;
};

}  // namespace kcopy
