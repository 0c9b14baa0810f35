// CRC-32C (Castagnoli): the checksum of checkpoint files and of TensorBoard's record framing.
// Uses the SSE4.2 instruction when the CPU has it (GB/s, so multi-GB shards verify quickly) and
// a table otherwise; both give the same value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace k2f {

// Continues `crc` (0 to start) over `size` bytes.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

// CRC-32C of a whole file, read in blocks; throws naming the path when it cannot be read.
uint32_t crc32c_file(const std::string& path);

}  // namespace k2f
