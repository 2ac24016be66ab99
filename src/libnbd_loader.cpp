// The libnbd functions kcopy calls, forwarded to libnbd.so.0 loaded at run time
// (see libnbd_loader.hpp for why).

#include "kcopy/libnbd_loader.hpp"

#include <dlfcn.h>
#include <libnbd.h>

#include <cerrno>
#include <string>

#include "kcopy/error.hpp"

namespace kcopy {
namespace {

constexpr const char* library = "libnbd.so.0";

// The resolved functions, one per forwarder below (X-macro: the list is written once).
#define KCOPY_LIBNBD_FUNCTIONS(X)                                                                                 \
  X(nbd_create) X(nbd_close) X(nbd_get_error) X(nbd_get_errno) X(nbd_set_uri_allow_local_file) X(nbd_connect_uri) \
  X(nbd_get_size) X(nbd_get_block_size) X(nbd_is_read_only) X(nbd_can_zero) X(nbd_can_flush)                     \
  X(nbd_can_multi_conn) X(nbd_aio_pread) X(nbd_aio_pwrite) X(nbd_aio_zero) X(nbd_aio_flush) X(nbd_aio_get_fd)    \
  X(nbd_aio_get_direction) X(nbd_aio_notify_read) X(nbd_aio_notify_write) X(nbd_aio_is_dead)                      \
  X(nbd_aio_is_closed)

struct Functions {
#define KCOPY_POINTER(name) decltype(&::name) name = nullptr;
  KCOPY_LIBNBD_FUNCTIONS(KCOPY_POINTER)
#undef KCOPY_POINTER
};
Functions libnbd;
bool loaded = false;

}  // namespace

void require_libnbd() {
  if (loaded) return;
  void* handle = ::dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (!handle)
    throw Error(std::string("NBD URIs need ") + library + " (Debian: apt-get install libnbd0): " + ::dlerror(),
                ENOSYS);
  Functions f;
  const auto resolve = [&](auto& pointer, const char* name) {
    pointer = reinterpret_cast<std::remove_reference_t<decltype(pointer)>>(::dlsym(handle, name));
    if (!pointer) throw Error(std::string(library) + " has no " + name + ": libnbd 1.14 or later is needed", ENOSYS);
  };
#define KCOPY_RESOLVE(name) resolve(f.name, #name);
  KCOPY_LIBNBD_FUNCTIONS(KCOPY_RESOLVE)
#undef KCOPY_RESOLVE
  libnbd = f;
  loaded = true;  // the library stays loaded until exit
}

}  // namespace kcopy

// The forwarders: libnbd's own names and prototypes (from libnbd.h). Only
// called after require_libnbd() has succeeded.
extern "C" {
nbd_handle* nbd_create() { return kcopy::libnbd.nbd_create(); }
void nbd_close(nbd_handle* h) { kcopy::libnbd.nbd_close(h); }
const char* nbd_get_error() { return kcopy::libnbd.nbd_get_error(); }
int nbd_get_errno() { return kcopy::libnbd.nbd_get_errno(); }
int nbd_set_uri_allow_local_file(nbd_handle* h, bool allow) { return kcopy::libnbd.nbd_set_uri_allow_local_file(h, allow); }
int nbd_connect_uri(nbd_handle* h, const char* uri) { return kcopy::libnbd.nbd_connect_uri(h, uri); }
int64_t nbd_get_size(nbd_handle* h) { return kcopy::libnbd.nbd_get_size(h); }
int64_t nbd_get_block_size(nbd_handle* h, int size_type) { return kcopy::libnbd.nbd_get_block_size(h, size_type); }
int nbd_is_read_only(nbd_handle* h) { return kcopy::libnbd.nbd_is_read_only(h); }
int nbd_can_zero(nbd_handle* h) { return kcopy::libnbd.nbd_can_zero(h); }
int nbd_can_flush(nbd_handle* h) { return kcopy::libnbd.nbd_can_flush(h); }
int nbd_can_multi_conn(nbd_handle* h) { return kcopy::libnbd.nbd_can_multi_conn(h); }
int64_t nbd_aio_pread(nbd_handle* h, void* buf, size_t count, uint64_t offset, nbd_completion_callback cb,
                      uint32_t flags) {
  return kcopy::libnbd.nbd_aio_pread(h, buf, count, offset, cb, flags);
}
int64_t nbd_aio_pwrite(nbd_handle* h, const void* buf, size_t count, uint64_t offset, nbd_completion_callback cb,
                       uint32_t flags) {
  return kcopy::libnbd.nbd_aio_pwrite(h, buf, count, offset, cb, flags);
}
int64_t nbd_aio_zero(nbd_handle* h, uint64_t count, uint64_t offset, nbd_completion_callback cb, uint32_t flags) {
  return kcopy::libnbd.nbd_aio_zero(h, count, offset, cb, flags);
}
int64_t nbd_aio_flush(nbd_handle* h, nbd_completion_callback cb, uint32_t flags) {
  return kcopy::libnbd.nbd_aio_flush(h, cb, flags);
}
int nbd_aio_get_fd(nbd_handle* h) { return kcopy::libnbd.nbd_aio_get_fd(h); }
unsigned nbd_aio_get_direction(nbd_handle* h) { return kcopy::libnbd.nbd_aio_get_direction(h); }
int nbd_aio_notify_read(nbd_handle* h) { return kcopy::libnbd.nbd_aio_notify_read(h); }
int nbd_aio_notify_write(nbd_handle* h) { return kcopy::libnbd.nbd_aio_notify_write(h); }
int nbd_aio_is_dead(nbd_handle* h) { return kcopy::libnbd.nbd_aio_is_dead(h); }
int nbd_aio_is_closed(nbd_handle* h) { return kcopy::libnbd.nbd_aio_is_closed(h); }
}
