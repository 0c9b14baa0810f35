#include "data/document_reader.h"

#include <filesystem>

#include "base/error.h"
#include "data/utf8.h"

namespace k2f::data {
namespace {

std::string extension_of(const std::string& path) { return std::filesystem::path(path).extension().string(); }

bool is_blank(const std::string& line) { return line.find_first_not_of(" \t\r\f\v") == std::string::npos; }

}  // namespace

bool is_supported_document_file(const std::string& path) {
  const std::string ext = extension_of(path);
  return ext == ".jsonl" || ext == ".txt";
}

DocumentReader::DocumentReader(const std::string& path) : path_(path) {
  check(is_supported_document_file(path), path, ": unsupported input (expected a .jsonl file of {\"text\": ...} ",
        "lines or a .txt file)");
  jsonl_ = extension_of(path) == ".jsonl";
  in_.open(path, std::ios::binary);
  check(in_.good(), path, ": cannot open for reading");
  std::error_code error;
  total_bytes_ = static_cast<int64_t>(std::filesystem::file_size(path, error));
}

bool DocumentReader::read_line(std::string& line) {
  if (!std::getline(in_, line)) return false;
  ++line_number_;
  bytes_read_ += static_cast<int64_t>(line.size()) + 1;
  return true;
}

bool DocumentReader::next(std::string& text) { return jsonl_ ? next_jsonl(text) : next_paragraph(text); }

bool DocumentReader::next_json(nlohmann::ordered_json& value) {
  check(jsonl_, path_, ": expected a .jsonl file (one JSON object per line)");
  std::string line;
  while (read_line(line)) {
    if (is_blank(line)) continue;
    const size_t bad = find_invalid_utf8(line);
    check(bad == std::string::npos, path_, ":", line_number_, ", byte ", bad + 1, ": invalid UTF-8 (JSON text must ",
          "be UTF-8)");
    try {
      value = nlohmann::ordered_json::parse(line);
    } catch (const nlohmann::ordered_json::exception& e) {
      fail(path_, ":", line_number_, ": invalid JSON: ", e.what());
    }
    return true;
  }
  return false;
}

bool DocumentReader::next_jsonl(std::string& text) {
  nlohmann::ordered_json value;
  if (!next_json(value)) return false;
  check(value.is_object() && value.contains("text") && value["text"].is_string(), path_, ":", line_number_,
        ": expected an object with a string field \"text\", got ", value.dump().substr(0, 80));
  text = value["text"].get<std::string>();
  return true;
}

bool DocumentReader::next_paragraph(std::string& text) {
  text.clear();
  std::string line;
  bool started = false;
  while (read_line(line)) {
    if (is_blank(line)) {
      if (started) return true;
      continue;
    }
    if (started) text += '\n';
    text += line;
    started = true;
  }
  return started;
}

}  // namespace k2f::data
