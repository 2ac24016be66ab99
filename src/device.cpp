#include "kcopy/device.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "kcopy/error.hpp"
#include "kcopy/quote.hpp"
#include "kcopy/units.hpp"

namespace kcopy {
namespace {

constexpr decltype(statfs::f_type) fuse_super_magic = 0x65735546;  // FUSE_SUPER_MAGIC (linux/magic.h)

// `err`: the errno the failure stands for (what the library's callers get).
[[noreturn]] void fail(int err, const std::string& role, const std::string& path, const std::string& what) {
  throw Error(role + " " + quote(path) + ": " + what, err);
}

std::string open_error(int err, bool write, bool is_block) {
  switch (err) {
    case EBUSY:
      return "is in use (mounted, or held open exclusively by another program)";
    case EROFS:
      return is_block ? "is read-only (see blockdev --setro / --setrw)"
                      : "is on a read-only file system (mounted read-only; see mount -o remount,rw)";
    case EACCES:
    case EPERM:
      return write ? (is_block ? "cannot be opened for writing (read-only device, or permission denied)"
                               : "cannot be opened for writing: permission denied")
                   : "cannot be opened for reading: permission denied";
    default:
      return std::string("cannot be opened: ") + std::strerror(err);
  }
}

// The O_DIRECT alignment of a regular file: statx's STATX_DIOALIGN where the
// kernel and file system give it, else one sector.
std::uint32_t file_dio_alignment(int fd) {
#ifdef STATX_DIOALIGN
  struct statx stx {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
      stx.stx_dio_offset_align > 0)
    return stx.stx_dio_offset_align;
#else
  (void)fd;
#endif
  return 512;
}

DeviceIdentity identity_of(const struct stat& st) {
  const bool block = S_ISBLK(st.st_mode);
  return {block, block ? st.st_rdev : st.st_dev, block ? 0 : st.st_ino};
}

// /dev holds device nodes: a destination there that does not exist is a typo
// for a device, not a new image file to create. The directory is resolved
// (a bare name is in the working directory, which may be /dev).
bool under_dev(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  const std::string parent = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  char* dir = ::realpath(parent.c_str(), nullptr);
  if (!dir) return false;
  const std::string real(dir);
  std::free(dir);
  return real == "/dev" || real.rfind("/dev/", 0) == 0;
}

// The file a dangling symlink leads to (through further links; a relative
// target is read from the link's directory), as cp and dd create it; ""
// when `path` is not a symlink.
std::string symlink_target(const std::string& path) {
  std::string at = path;
  for (int hops = 0; hops < 40; ++hops) {  // 40: the kernel's own limit on links followed
    struct stat st {};
    if (::lstat(at.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return hops ? at : "";
    char target[PATH_MAX];
    const ssize_t n = ::readlink(at.c_str(), target, sizeof target);
    if (n <= 0 || static_cast<std::size_t>(n) == sizeof target) return "";
    const std::string next(target, static_cast<std::size_t>(n));
    const std::size_t slash = at.rfind('/');
    at = next[0] == '/' || slash == std::string::npos ? next : at.substr(0, slash + 1) + next;
  }
  return "";
}

// One line of a sysfs file, or "" when there is none.
std::string read_sysfs(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Follows a block device down to where its bytes are stored: a partition to
// its whole disk, a loop device to its backing file (or device), repeatedly.
Medium medium_of(const DeviceIdentity& id) {
  Medium m{id, 0};
  for (int depth = 0; depth < 8 && m.id.is_block; ++depth) {
    const std::string sys = "/sys/dev/block/" + std::to_string(major(m.id.dev)) + ":" + std::to_string(minor(m.id.dev));
    if (const std::string start = read_sysfs(sys + "/start"); !start.empty()) {
      // A partition: its whole disk is the parent directory in sysfs.
      unsigned disk_major = 0, disk_minor = 0;
      if (std::sscanf(read_sysfs(sys + "/../dev").c_str(), "%u:%u", &disk_major, &disk_minor) != 2) break;
      m.offset += std::stoull(start) * sector_size;
      m.id = {true, makedev(disk_major, disk_minor), 0};
      continue;
    }
    std::string backing = read_sysfs(sys + "/loop/backing_file");
    struct stat st {};
    if (backing.empty() || ::stat(backing.c_str(), &st) != 0) break;  // not a loop device, or its file is gone
    const std::string offset = read_sysfs(sys + "/loop/offset");
    m.offset += offset.empty() ? 0 : std::stoull(offset);
    m.id = identity_of(st);
  }
  return m;
}

// A dry run's file to be created: checks that its directory would take it
// (the errors an O_CREAT open would give: missing directory, permission, a
// read-only file system) and makes up its identity from the resolved path.
DeviceIdentity identity_to_create(const std::string& path, const std::string& role) {
  const std::size_t slash = path.rfind('/');
  const std::string parent = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  if (::faccessat(AT_FDCWD, parent.c_str(), W_OK | X_OK, AT_EACCESS) != 0)
    fail(errno, role, path, open_error(errno, true, false));
  struct stat st {};
  char* dir = ::realpath(parent.c_str(), nullptr);
  if (!dir || ::stat(dir, &st) != 0) {
    std::free(dir);
    fail(errno, role, path, open_error(errno, true, false));
  }
  const std::string resolved = std::string(dir) + "/" + path.substr(slash == std::string::npos ? 0 : slash + 1);
  std::free(dir);
  // Not a real inode number: high bit set, from the path, so that two regions
  // on one new file are one medium (as they are once the real run creates it).
  return {false, st.st_dev, static_cast<ino_t>(std::hash<std::string>{}(resolved) | (ino_t{1} << 63))};
}

// Whether block device `rdev` is held by something a wait would not end: a
// mount, a kernel holder (md, dm, bcache) or swap.
bool held_for_good(dev_t rdev) {
  const std::string number = std::to_string(major(rdev)) + ":" + std::to_string(minor(rdev));
  std::ifstream mounts("/proc/self/mountinfo");
  for (std::string line; std::getline(mounts, line);) {
    // "ID PARENT MAJ:MIN ROOT POINT OPTIONS... - TYPE SOURCE SUPER-OPTIONS"
    std::istringstream fields(line);
    std::string id, parent, dev, word;
    fields >> id >> parent >> dev;
    if (dev == number) return true;
    while (fields >> word && word != "-") {
    }
    std::string type, source;
    struct stat st {};
    if (fields >> type >> source && source.starts_with('/') && ::stat(source.c_str(), &st) == 0 &&
        S_ISBLK(st.st_mode) && st.st_rdev == rdev)
      return true;
  }
  std::error_code ec;
  if (!std::filesystem::is_empty("/sys/dev/block/" + number + "/holders", ec) && !ec) return true;
  std::ifstream swaps("/proc/swaps");
  for (std::string line; std::getline(swaps, line);) {
    struct stat st {};
    const std::string name = line.substr(0, line.find_first_of(" \t"));
    if (name.starts_with('/') && ::stat(name.c_str(), &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == rdev)
      return true;
  }
  return false;
}

// open(2) of `path`; with O_EXCL on block device `rdev`, an EBUSY is tried
// again for up to claim_wait while nothing holds the device for good: a kcopy
// killed a moment ago (kill -KILL, then the same copy at once) keeps its claim
// until the kernel has ended the I/O it had in flight (io_uring, unlike libaio,
// does not wait for it at exit). A mount or a kernel holder is refused at once.
int open_claiming(const std::string& path, int flags, bool is_block, dev_t rdev) {
  constexpr auto claim_wait = std::chrono::seconds(1);
  const auto deadline = std::chrono::steady_clock::now() + claim_wait;
  for (;;) {
    const int fd = ::open(path.c_str(), flags, 0666);
    if (fd >= 0 || errno != EBUSY || !is_block || !(flags & O_EXCL)) return fd;
    if (std::chrono::steady_clock::now() >= deadline || held_for_good(rdev)) {
      errno = EBUSY;
      return -1;
    }
    ::usleep(2000);
  }
}

}  // namespace

std::optional<DeviceIdentity> Device::identify(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return identity_of(st);
}

Device Device::open(const std::string& path, const std::string& role, const OpenOptions& options) {
  Device dev;
  dev.path_ = path;
  dev.role_ = role;

  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (!exists && (errno != ENOENT || !options.write)) fail(errno, role, path, std::strerror(errno));
  // A dangling symlink: its target is the file to create.
  const std::string target = exists ? "" : symlink_target(path);
  dev.created_path_ = target.empty() ? path : target;
  if (!exists && under_dev(dev.created_path_))
    fail(ENOENT, role, path, "no such device (kcopy creates image files, but not under /dev)");
  if (exists && S_ISDIR(st.st_mode)) fail(EISDIR, role, path, "is a directory, not a block device or file");
  if (exists && !S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
    fail(ENOTBLK, role, path, "is not a block device or regular file");
  const bool is_block = exists && S_ISBLK(st.st_mode);

  if (options.dry_run && options.write) {
    if (!exists) {
      dev.would_create_ = true;
      dev.identity_ = identity_to_create(dev.created_path_, role);
      dev.medium_ = {dev.identity_, 0};
      dev.direct_ = !options.buffered;
      return dev;
    }
    // What an open for writing would refuse: permission, a read-only file system.
    if (::faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) != 0)
      fail(errno, role, path, open_error(errno, true, is_block));
  }
  const bool writable = options.write && !options.dry_run;
  int flags = O_CLOEXEC | (!writable ? O_RDONLY : options.read ? O_RDWR : O_WRONLY);
  if (!exists) {
    flags |= O_CREAT | O_EXCL;  // O_EXCL: we know we created it
    dev.created_ = true;
  }
  if (options.write && is_block && options.exclusive) flags |= O_EXCL;
  const int direct = options.buffered ? 0 : O_DIRECT;

  const std::string& open_path = dev.created_path_;  // path, or where a dangling symlink leads
  int fd = open_claiming(open_path, flags | direct, is_block, st.st_rdev);
  if (fd < 0 && errno == EINVAL && direct) {
    // ramfs, tmpfs before Linux 6.6 and some FUSE file systems refuse O_DIRECT:
    // go through the page cache.
    // The failed open may already have created the file.
    dev.direct_refused_ = true;
    fd = open_claiming(open_path, dev.created_ ? flags & ~O_EXCL : flags, is_block, st.st_rdev);
  } else if (fd >= 0 && direct) {
    dev.direct_ = true;
  }
  if (fd < 0) fail(errno, role, path, open_error(errno, options.write, is_block));
  dev.direct_fd_ = FileDesc(fd);

  if (::fstat(fd, &st) != 0) fail(errno, role, path, std::string("cannot stat: ") + std::strerror(errno));
  dev.identity_ = identity_of(st);
  dev.medium_ = medium_of(dev.identity_);
  struct statfs fs {};
  dev.on_fuse_ = !dev.identity_.is_block && ::fstatfs(fd, &fs) == 0 && fs.f_type == fuse_super_magic;

  if (dev.identity_.is_block && options.write) {
    // Opening a read-only block device for writing succeeds on recent kernels;
    // only the writes fail. Refuse it here, before anything is written.
    int ro = 0;
    if (::ioctl(fd, BLKROGET, &ro) == 0 && ro) fail(EROFS, role, path, open_error(EROFS, true, true));
  }
  if (dev.identity_.is_block) {
    std::uint64_t bytes = 0;
    int lbs = 512;
    if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0 || ::ioctl(fd, BLKSSZGET, &lbs) != 0)
      fail(errno, role, path, std::string("cannot read the device size: ") + std::strerror(errno));
    dev.logical_block_size_ = static_cast<std::uint32_t>(lbs);
    dev.size_bytes_ = bytes / dev.logical_block_size_ * dev.logical_block_size_;
  } else {
    dev.size_bytes_ = static_cast<std::uint64_t>(st.st_size);
  }

  if (dev.direct_) dev.alignment_ = dev.identity_.is_block ? dev.logical_block_size_ : file_dio_alignment(fd);
  if (dev.alignment_ > sector_size) {
    // The page-cache descriptor for heads and tails that are not aligned to the
    // logical block size (with 512-byte blocks every sector range is aligned, so
    // none is needed). No O_EXCL: the direct descriptor already holds the device.
    const int bfd = ::open(path.c_str(), (flags & ~(O_EXCL | O_CREAT)), 0666);
    if (bfd < 0) fail(errno, role, path, open_error(errno, options.write, is_block));
    dev.buffered_fd_ = FileDesc(bfd);
    struct stat bst {};
    if (::fstat(bfd, &bst) != 0 || bst.st_dev != st.st_dev || bst.st_ino != st.st_ino)
      fail(EAGAIN, role, path, "changed while it was being opened");
  }
  return dev;
}

void Device::check_can_grow_to(std::uint64_t bytes) const {
  if (identity_.is_block || size_bytes_ >= bytes) return;
  const std::string what = "cannot be grown to " + std::to_string(bytes) + " bytes: ";
  rlimit limit{};
  if (::getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && bytes > limit.rlim_cur)
    fail(EFBIG, role_, path_,
         what + "larger than this process's file-size limit of " + std::to_string(limit.rlim_cur) +
             " bytes (ulimit -f)");
  if (direct_fd_ && ::lseek(direct_fd_.get(), static_cast<off_t>(bytes - 1), SEEK_SET) < 0)
    fail(EFBIG, role_, path_,
         what + (errno == EINVAL ? std::string("larger than its file system allows") : std::strerror(errno)));
}

void Device::grow_to(std::uint64_t bytes) {
  if (identity_.is_block || size_bytes_ >= bytes) return;
  if (::ftruncate(direct_fd_.get(), static_cast<off_t>(bytes)) != 0)
    fail(errno, role_, path_,
         std::string("cannot be grown to ") + std::to_string(bytes) + " bytes: " + std::strerror(errno));
  size_bytes_ = bytes;
}

int FdEndpoint::drop_cache(std::uint64_t offset, std::uint64_t length) const {
  const bool direct = alignment > 1 && offset % alignment == 0 && length % alignment == 0;
  if (direct || length == 0) return 0;
  const auto off = static_cast<off_t>(offset), len = static_cast<off_t>(length);
  if (::sync_file_range(buffered_fd, off, len,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0)
    return -errno;
  return -::posix_fadvise(buffered_fd, off, len, POSIX_FADV_DONTNEED);
}

std::uint64_t FdEndpoint::next_data(std::uint64_t offset) const {
  const off_t at = ::lseek(buffered_fd, static_cast<off_t>(offset), SEEK_DATA);
  if (at >= 0) return static_cast<std::uint64_t>(at);
  return errno == ENXIO ? UINT64_MAX : offset;  // ENXIO: a hole up to the end
}

}  // namespace kcopy
