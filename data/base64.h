// Strict standard base64 (RFC 4648, with padding), as used by tiktoken.model lines. Decoding
// rejects anything but canonical input so a corrupt tokenizer file fails loudly instead of
// silently producing different token bytes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace k2f::data {

std::string base64_encode(std::string_view bytes);

// The decoded bytes, or nullopt when `text` is not canonical padded base64.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace k2f::data
