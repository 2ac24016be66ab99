// MapfileCopy: a copy driven and recorded by a GNU ddrescue mapfile.
#include <catch2/catch.hpp>

#include "kcopy/mapfile_copy.hpp"
