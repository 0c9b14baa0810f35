// Streams documents from a text input, one at a time, so memory is bounded by the longest
// document. Two formats, chosen by extension:
//   .jsonl  one JSON object per line with a string field "text"; blank lines are skipped. Lines
//           must be valid UTF-8 (errors give the line and byte) and valid JSON (line number).
//   .txt    documents are paragraphs separated by blank (empty or whitespace-only) lines; the
//           lines of a paragraph are joined with "\n". Bytes are kept as they are (any encoding).
// next_json() gives the whole JSON value of each .jsonl line instead (chat stores read
// conversations with it); values keep their key order.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace k2f::data {

class DocumentReader {
 public:
  explicit DocumentReader(const std::string& path);

  // Reads the next document into `text`; false at the end of the input.
  bool next(std::string& text);
  // .jsonl only: the next non-blank line's JSON value; false at the end of the input.
  bool next_json(nlohmann::ordered_json& value);

  const std::string& path() const { return path_; }
  int64_t line_number() const { return line_number_; }  // of the line read last
  int64_t bytes_read() const { return bytes_read_; }
  int64_t total_bytes() const { return total_bytes_; }

 private:
  bool next_jsonl(std::string& text);
  bool next_paragraph(std::string& text);
  bool read_line(std::string& line);

  std::string path_;
  bool jsonl_ = false;
  std::ifstream in_;
  int64_t line_number_ = 0, bytes_read_ = 0, total_bytes_ = 0;
};

// True when `path` names an input DocumentReader accepts (.jsonl or .txt).
bool is_supported_document_file(const std::string& path);

}  // namespace k2f::data
