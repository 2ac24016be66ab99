#pragma once
// kcopy's version, from meson.build's project().

#include "kcopy_version.h"

namespace kcopy {
inline constexpr const char* version = KCOPY_VERSION;
}  // namespace kcopy
