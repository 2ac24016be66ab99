#pragma once
// Sector/byte units. 512-byte sectors (Linux sector_t) at every interface;
// bytes inside the I/O layer. Convert only through these functions.

#include <cstdint>

namespace kcopy {

/// One sector: 512 bytes, whatever the device's logical block size (SECTOR_SHIFT).
inline constexpr std::uint64_t sector_size = 512;
inline constexpr unsigned sector_shift = 9;
/// One page of the page pool (kcopyd's pages are PAGE_SIZE).
inline constexpr std::uint64_t page_size = 4096;
/// The most destinations one job may have: one exit-status bit each.
inline constexpr unsigned max_destinations = 6;

constexpr std::uint64_t sectors_to_bytes(std::uint64_t sectors) { return sectors << sector_shift; }
/// Whole sectors in `bytes`, rounded down.
constexpr std::uint64_t bytes_to_sectors(std::uint64_t bytes) { return bytes >> sector_shift; }
/// Whether `count` sectors from `sector` end at a byte offset below 2^64, so that
/// sectors_to_bytes(sector + count) does not overflow. Never overflows itself.
constexpr bool ends_within_bytes(std::uint64_t sector, std::uint64_t count) {
  constexpr std::uint64_t max = bytes_to_sectors(~std::uint64_t{0});
  return count <= max && sector <= max - count;
}

}  // namespace kcopy
