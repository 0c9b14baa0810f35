// SHA-256 (FIPS 180-4), used for the tokenizer hash stored in every token store: a content hash
// that is identical on every machine, so a store made with another tokenizer is recognised.
#pragma once

#include <string>
#include <string_view>

namespace k2f::data {

// Lower-case hex digest of `bytes`.
std::string sha256_hex(std::string_view bytes);

}  // namespace k2f::data
