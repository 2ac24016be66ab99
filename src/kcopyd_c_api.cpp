// The C API of <kcopy/kcopyd.h> over KcopydClient and Device: handles, the
// mapping of devices to the client's endpoints, and errors as negative errno.
// No exception leaves this file.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "kcopy/device.hpp"
#include "kcopy/error.hpp"
#include "kcopy/io_engine.hpp"
#include "kcopy/kcopyd.h"
#include "kcopy/kcopyd.hpp"
#include "kcopy/quote.hpp"

struct kcopyd_bdev {
  kcopy::Device device;
  bool writable;
};

// One device a client's jobs have used, as the backend knows it. Equal
// contents are one endpoint: a device closed and opened again on the same
// descriptors (the usual case) does not take another of the 256.
struct AttachedEndpoint {
  int direct_fd;
  int buffered_fd;
  std::uint32_t alignment;
  kcopy::Medium medium;
  unsigned index;
};

struct kcopyd_client {
  std::mutex mutex;  // orders add_endpoint calls; guards what follows
  std::vector<AttachedEndpoint> endpoints;
  std::vector<kcopy::DeviceIdentity> media;     // placement medium i is media[i]
  std::unique_ptr<kcopy::KcopydClient> client;  // last: destroyed first, waiting for every job
};

namespace {

thread_local std::string last_error;

int fail(int err, std::string message) {
  last_error = std::move(message);
  return -err;
}

// Runs `body` (which returns 0 or -errno), turning exceptions into -errno.
template <typename Body>
int guarded(Body&& body) {
  try {
    last_error.clear();
    return body();
  } catch (const kcopy::Error& e) {
    return fail(e.error_number() > 0 ? e.error_number() : EINVAL, e.what());
  } catch (const std::bad_alloc&) {
    return fail(ENOMEM, "out of memory");
  } catch (const std::exception& e) {
    return fail(EIO, e.what());
  }
}

// The client's endpoint index for `bdev`, attaching it to the backend first
// if the client has not used it yet. Called with kc.mutex held.
int endpoint_of(kcopyd_client& kc, const kcopyd_bdev& bdev) {
  const kcopy::Device& dev = bdev.device;
  for (const AttachedEndpoint& e : kc.endpoints)
    if (e.direct_fd == dev.direct_fd() && e.buffered_fd == dev.buffered_fd() && e.alignment == dev.alignment() &&
        e.medium == dev.medium())
      return static_cast<int>(e.index);
  auto medium = std::find(kc.media.begin(), kc.media.end(), dev.medium().id);
  if (medium == kc.media.end()) medium = kc.media.insert(medium, dev.medium().id);
  kcopy::FdEndpoint fds = dev.endpoint();
  fds.placement = {static_cast<unsigned>(medium - kc.media.begin()), dev.medium().offset};
  const int index = kc.client->add_endpoint(fds);
  if (index == -ENOTSUP)
    return fail(ENOTSUP, kcopy::quote(dev.path()) +
                             " is a file on FUSE, which this client's io_uring cannot serve (it reports failed "
                             "requests there as done): use it through a loop device (losetup)");
  if (index < 0)
    return fail(-index, "the client has used " + std::to_string(kc.endpoints.size()) + " devices, the most it can");
  kc.endpoints.push_back(
      {dev.direct_fd(), dev.buffered_fd(), dev.alignment(), dev.medium(), static_cast<unsigned>(index)});
  return index;
}

// Checks a region against its device: within it, or (a destination that is
// a regular file) anywhere it can grow to.
int check_region(const io_region& r, bool destination, const char* role) {
  if (!r.bdev) return fail(EINVAL, std::string(role) + " has no device");
  const kcopy::Device& dev = r.bdev->device;
  if (destination && !r.bdev->writable)
    return fail(EBADF, std::string(role) + " " + kcopy::quote(dev.path()) + " was not opened with KCOPYD_BDEV_WRITE");
  const std::uint64_t sectors = kcopy::bytes_to_sectors(dev.size_bytes());
  const bool grows = destination && !dev.is_block();
  if (!kcopy::ends_within_bytes(r.sector, r.count) || (!grows && (r.sector > sectors || r.count > sectors - r.sector)))
    return fail(EINVAL, std::string(role) + " sectors " + std::to_string(r.sector) + "+" + std::to_string(r.count) +
                            " lie past the end of " + kcopy::quote(dev.path()) + " (" + std::to_string(sectors) +
                            " sectors)");
  return 0;
}

unsigned engine_flags(unsigned flags) {
  unsigned out = 0;
  if (flags & KCOPYD_IGNORE_ERROR) out |= kcopy::copy_ignore_errors;
  if (flags & KCOPYD_WRITE_SEQ) out |= kcopy::copy_write_seq;
  if (!(flags & KCOPYD_FLUSH)) out |= kcopy::copy_no_flush;
  return out;
}

constexpr unsigned known_flags = KCOPYD_IGNORE_ERROR | KCOPYD_WRITE_SEQ | KCOPYD_FLUSH;

// kcopyd_copy and kcopyd_zero (`from` is null for a zero job).
int queue_job(kcopyd_client* kc, const io_region* from, unsigned num_dests, const io_region* dests, unsigned flags,
              kcopyd_notify_fn fn, void* context) {
  if (!kc || !dests || !fn) return fail(EINVAL, "a NULL client, destination array or notify function");
  if (num_dests == 0 || num_dests > kcopy::max_destinations)
    return fail(EINVAL, std::to_string(num_dests) + " destinations: a job has 1 to 6");
  if (flags & ~known_flags) return fail(EINVAL, "unknown flags " + std::to_string(flags & ~known_flags));
  if (from)
    if (const int rc = check_region(*from, false, "the source"); rc < 0) return rc;
  for (unsigned d = 0; d < num_dests; ++d)
    if (const int rc = check_region(dests[d], true, ("destination " + std::to_string(d)).c_str()); rc < 0) return rc;

  std::lock_guard lock(kc->mutex);
  kcopy::IoRegion source{};
  if (from) {
    const int ep = endpoint_of(*kc, *from->bdev);
    if (ep < 0) return ep;
    source = {static_cast<unsigned>(ep), from->sector, from->count};
  }
  std::vector<kcopy::IoRegion> regions;
  for (unsigned d = 0; d < num_dests; ++d) {
    const int ep = endpoint_of(*kc, *dests[d].bdev);
    if (ep < 0) return ep;
    regions.push_back({static_cast<unsigned>(ep), dests[d].sector, dests[d].count});
  }
  kcopy::NotifyFn notify = [fn, context](const kcopy::JobResult& r) {
    fn(r.read_err ? 1 : 0, static_cast<unsigned>(r.write_err), context);
  };
  if (from)
    kc->client->copy(source, regions, engine_flags(flags), std::move(notify));
  else
    kc->client->zero(regions, engine_flags(flags), std::move(notify));
  return 0;
}

}  // namespace

extern "C" {

int kcopyd_bdev_open(const char* path, unsigned int flags, struct kcopyd_bdev** result) {
  return guarded([&] {
    if (!path || !result) return fail(EINVAL, "a NULL path or result");
    constexpr unsigned known = KCOPYD_BDEV_WRITE | KCOPYD_BDEV_FORCE | KCOPYD_BDEV_CREATE | KCOPYD_BDEV_BUFFERED;
    if (flags & ~known) return fail(EINVAL, "unknown flags " + std::to_string(flags & ~known));
    const bool write = flags & KCOPYD_BDEV_WRITE;
    struct stat st {};
    if (!(write && (flags & KCOPYD_BDEV_CREATE)) && ::stat(path, &st) != 0)
      return fail(errno, "device " + kcopy::quote(path) + ": " + std::strerror(errno));
    const kcopy::OpenOptions options{
        .read = true,
        .write = write,
        .buffered = (flags & KCOPYD_BDEV_BUFFERED) != 0,
        .exclusive = !(flags & KCOPYD_BDEV_FORCE),
    };
    *result = new kcopyd_bdev{kcopy::Device::open(path, "device", options), write};
    return 0;
  });
}

void kcopyd_bdev_close(struct kcopyd_bdev* bdev) { delete bdev; }

uint64_t kcopyd_bdev_sectors(const struct kcopyd_bdev* bdev) {
  return bdev ? kcopy::bytes_to_sectors(bdev->device.size_bytes()) : 0;
}

unsigned int kcopyd_bdev_logical_block_size(const struct kcopyd_bdev* bdev) {
  return bdev ? bdev->device.logical_block_size() : 0;
}

int kcopyd_client_create(unsigned int num_pages, struct kcopyd_client** result) {
  return guarded([&] {
    if (!result) return fail(EINVAL, "a NULL result");
    kcopy::ClientConfig config;
    config.list_error_ranges = false;  // the notify function gets only the bits
    if (num_pages > 0) config.pages = num_pages;
    if (const long phys = ::sysconf(_SC_PHYS_PAGES); phys > 0 && config.pages > static_cast<std::uint64_t>(phys) / 2)
      return fail(ENOMEM, std::to_string(config.pages) + " pages are more than half of this machine's memory");
    config.io_size = std::min<std::uint64_t>(config.io_size, config.pages * kcopy::page_size);
    const std::size_t requests = kcopy::KcopydClient::max_requests(config, kcopy::max_destinations);
    // No endpoints yet: devices are added as jobs name them.
    kcopy::ChosenBackend chosen =
        kcopy::make_backend(kcopy::IoEngine::automatic, {}, requests, UINT64_MAX, config.io_size);
    auto kc = std::make_unique<kcopyd_client>();
    kc->client = std::make_unique<kcopy::KcopydClient>(std::move(chosen.backend), config);
    *result = kc.release();
    return 0;
  });
}

int kcopyd_copy(struct kcopyd_client* kc, struct io_region* from, unsigned int num_dests, struct io_region* dests,
                unsigned int flags, kcopyd_notify_fn fn, void* context) {
  return guarded([&] {
    if (!from) return fail(EINVAL, "a NULL source region");
    return queue_job(kc, from, num_dests, dests, flags, fn, context);
  });
}

int kcopyd_zero(struct kcopyd_client* kc, unsigned int num_dests, struct io_region* dests, unsigned int flags,
                kcopyd_notify_fn fn, void* context) {
  return guarded([&] { return queue_job(kc, nullptr, num_dests, dests, flags, fn, context); });
}

void kcopyd_client_destroy(struct kcopyd_client* kc) { delete kc; }

const char* kcopyd_last_error(void) { return last_error.c_str(); }

}  // extern "C"
