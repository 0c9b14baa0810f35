#include "train/cli/command.h"

#include <iostream>
#include <regex>

#include "base/error.h"

namespace k2f::cli {

cxxopts::ParseResult parse_args(cxxopts::Options& options, const Args& args, bool& wants_help) {
  options.add_options()("h,help", "show this help");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  auto parsed = options.parse(static_cast<int>(argv.size()), argv.data());
  wants_help = parsed.count("help") > 0;
  if (wants_help) std::cout << options.help() << std::endl;
  return parsed;
}

std::string required_option(const cxxopts::ParseResult& parsed, const std::string& name, const std::string& command) {
  check(parsed.count(name) > 0, "missing --", name, " (see k2forge ", command, " --help)");
  return parsed[name].as<std::string>();
}

std::vector<std::string> recipe_overrides(const cxxopts::ParseResult& parsed) {
  std::vector<std::string> overrides;
  if (!parsed.count("set")) return overrides;
  static const std::regex starts_an_override(R"(^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+=)");
  for (const auto& piece : parsed["set"].as<std::vector<std::string>>()) {
    if (overrides.empty() || std::regex_search(piece, starts_an_override)) {
      overrides.push_back(piece);
    } else {
      overrides.back() += "," + piece;
    }
  }
  return overrides;
}

train::LoadOptions model_load_options(const cxxopts::ParseResult& parsed) {
  train::LoadOptions options;
  options.dequantize = parsed.count("dequantize") > 0;
  if (parsed.count("adapter")) options.adapter = parsed["adapter"].as<std::string>();
  return options;
}

}  // namespace k2f::cli
