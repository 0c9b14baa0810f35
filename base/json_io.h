// JSON files and atomic writes. Every output k2forge produces is written under a temporary
// name and renamed into place, so an interrupted run never leaves a half-written file.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace k2f {

using Json = nlohmann::json;

// Parses a JSON file; errors name the path and the parser's position.
Json read_json_file(const std::string& path);

// Reads a whole file into a string; errors name the path.
std::string read_text_file(const std::string& path);

// Writes `text` to `path` atomically (temporary file in the same directory, then rename).
void write_text_file_atomic(const std::string& path, const std::string& text);

}  // namespace k2f
