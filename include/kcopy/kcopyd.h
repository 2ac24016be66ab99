/* libkcopy: the kernel's kcopyd API (include/linux/dm-kcopyd.h) for programs.
 *
 * A client owns a pool of pages and an I/O thread. kcopyd_copy() queues a copy
 * of one region to up to six others and returns at once; the client runs any
 * number of jobs at the same time, sharing its pages, and calls each job's
 * notify function once when it has ended, with read_err and a write_err
 * bitmask, as dm-kcopyd does. Devices are opened with kcopyd_bdev_open(), the
 * library's `struct block_device`.
 *
 * Units: sectors are 512 bytes (Linux sector_t), whatever the device's logical
 * block size. Errors: functions that can fail return 0 or a negative errno;
 * kcopyd_last_error() gives a one-line message for the last failure on the
 * calling thread. C99 and C++; every function is thread-safe unless it says
 * otherwise. Link with `pkg-config --cflags --libs kcopy`; see kcopyd(3).
 */
#ifndef KCOPY_KCOPYD_H
#define KCOPY_KCOPYD_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; these are what it exports. */
#if defined(__GNUC__)
#define KCOPYD_API __attribute__((visibility("default")))
#else
#define KCOPYD_API
#endif

/* ---- devices (the block_device of a dm_io_region) ------------------------ */

/* An opened block device or regular file (an image). Opaque. */
struct kcopyd_bdev;

/* kcopyd_bdev_open flags. */
#define KCOPYD_BDEV_WRITE 1u    /* open for writing too: the device may be a destination */
#define KCOPYD_BDEV_FORCE 2u    /* with WRITE: no O_EXCL, so a block device in use (mounted,
                                   held by another program) can be written anyway */
#define KCOPYD_BDEV_CREATE 4u   /* with WRITE: create a regular file that does not exist */
#define KCOPYD_BDEV_BUFFERED 8u /* never O_DIRECT: go through the page cache */

/* Opens `path` (a block device or regular file) as the command line does:
 * O_DIRECT where the file system allows it (else buffered, silently), O_EXCL
 * for a block device opened with KCOPYD_BDEV_WRITE unless KCOPYD_BDEV_FORCE
 * (the kernel refuses it with -EBUSY while the device is mounted or held), its
 * size and logical block size read once. A regular file written past its end
 * grows. On success stores the handle in *result (owned by the caller, closed
 * with kcopyd_bdev_close) and returns 0.
 * Errors: -EINVAL (NULL arguments, unknown flags), -ENOENT (missing; also a
 * missing file without KCOPYD_BDEV_CREATE), -EISDIR, -ENOTBLK (neither a block
 * device nor a regular file), -EACCES/-EPERM, -EROFS, -EBUSY (in use), -ENOMEM,
 * or the errno of the failed open/ioctl. Mirrors blkdev_get_by_path. */
KCOPYD_API int kcopyd_bdev_open(const char *path, unsigned int flags, struct kcopyd_bdev **result);

/* Closes a device from kcopyd_bdev_open (NULL is ignored). Every job that
 * names it must have ended (its notify function returned) first. */
KCOPYD_API void kcopyd_bdev_close(struct kcopyd_bdev *bdev);

/* The device's size in 512-byte sectors (a block device's size rounded down to
 * whole logical blocks; a regular file's size at open, rounded down). */
KCOPYD_API uint64_t kcopyd_bdev_sectors(const struct kcopyd_bdev *bdev);

/* The device's logical block size in bytes (512 for regular files): regions
 * aligned to it go through O_DIRECT; others work, through the page cache. */
KCOPYD_API unsigned int kcopyd_bdev_logical_block_size(const struct kcopyd_bdev *bdev);

/* ---- clients and jobs ----------------------------------------------------- */

/* A range of sectors on a device (struct dm_io_region). */
struct io_region {
  struct kcopyd_bdev *bdev;
  uint64_t sector; /* first sector, 512 bytes each */
  uint64_t count;  /* sectors */
};

/* Called once per job when it has ended, on the client's I/O thread
 * (dm_kcopyd_notify_fn). read_err: 1 if the source had a read error (the job
 * stopped, unless KCOPYD_IGNORE_ERROR), else 0. write_err: bit i set if
 * destination i (0-based, in the order given) had a write error (with
 * KCOPYD_FLUSH, or a flush error); a clear bit means that destination holds
 * the whole copy. It may queue new jobs; it must not call
 * kcopyd_client_destroy, and while it runs no other job's I/O is processed. */
typedef void (*kcopyd_notify_fn)(int read_err, unsigned int write_err, void *context);

/* An opaque client (struct dm_kcopyd_client). */
struct kcopyd_client;

/* Job flags. */
#define KCOPYD_IGNORE_ERROR 1u /* DM_KCOPYD_IGNORE_ERROR: go on past read and write errors;
                                  unreadable blocks are written as zeroes */
#define KCOPYD_WRITE_SEQ 2u    /* DM_KCOPYD_WRITE_SEQ: write each destination in ascending
                                  order (zoned devices); clears KCOPYD_IGNORE_ERROR */
#define KCOPYD_FLUSH 4u        /* fdatasync every destination before notifying (dm-kcopyd
                                  leaves flushes to its caller, and so do jobs without it) */

/* Creates a client with `num_pages` 4 KiB pages for data in flight (0: the
 * default, 512 pages = 2 MiB), allocated now, and starts its I/O thread.
 * Sub-jobs are at most 512 KiB (dm-kcopyd's sub_job_size; less when the pool
 * is smaller); a job takes the pages its sub-jobs need, and waits for pages
 * while other jobs hold them. Stores the client in *result (owned by the
 * caller, freed by kcopyd_client_destroy) and returns 0.
 * Errors: -EINVAL (NULL result), -ENOMEM (no memory, or more pages than half
 * of the machine's memory), or the errno of setting up io_uring/libaio
 * (-EAGAIN when /proc/sys/fs/aio-max-nr is exhausted).
 * Mirrors dm_kcopyd_client_create. */
KCOPYD_API int kcopyd_client_create(unsigned int num_pages, struct kcopyd_client **result);

/* Queues a copy of `from` to each of `dests[0..num_dests)` and returns at
 * once; `fn(read_err, write_err, context)` runs once when the job has ended.
 * The regions are copied before the call returns (the arrays may be reused).
 * 1 to 6 destinations, each with from->count sectors (count 0: a job that
 * ends at once). A destination may overlap the source on the same device (the
 * result is that of memmove); destinations may not overlap each other.
 * Source sectors must lie within the source device; destinations within their
 * block devices (regular files grow). Any thread, any number of jobs at once.
 * Errors (nothing queued, fn never runs): -EINVAL (NULL arguments, bad
 * counts, unknown flags, regions past a device's end, an overlap no copy order
 * can serve), -EBADF (a destination device not opened with KCOPYD_BDEV_WRITE),
 * -ENFILE (the client has used 256 distinct devices), -ENOMEM.
 * Mirrors dm_kcopyd_copy. */
KCOPYD_API int kcopyd_copy(struct kcopyd_client *kc, struct io_region *from, unsigned int num_dests,
                struct io_region *dests, unsigned int flags, kcopyd_notify_fn fn, void *context);

/* Queues a job that makes each of `dests[0..num_dests)` (1 to 6, all of the
 * same count) read as zeroes, with the device's write-zeroes offload where it
 * has one, and returns at once; fn runs once when it has ended (read_err is
 * always 0). Flags, rules and errors as for kcopyd_copy. Mirrors dm_kcopyd_zero. */
KCOPYD_API int kcopyd_zero(struct kcopyd_client *kc, unsigned int num_dests, struct io_region *dests, unsigned int flags,
                kcopyd_notify_fn fn, void *context);

/* Waits for every job queued on the client to end (their notify functions
 * have returned), then stops its I/O thread and frees the client and its
 * pages (NULL is ignored). Must not be called from a notify function, nor
 * while another thread may still queue jobs on the client.
 * Mirrors dm_kcopyd_client_destroy. */
KCOPYD_API void kcopyd_client_destroy(struct kcopyd_client *kc);

/* A one-line message for the last failure of a function above on this thread
 * (which device, what was wrong), or "" when none failed yet. Valid until the
 * next call of a function above on this thread. */
KCOPYD_API const char *kcopyd_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* KCOPY_KCOPYD_H */
