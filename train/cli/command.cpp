#include "train/cli/command.h"

#include <iostream>

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

}  // namespace k2f::cli
