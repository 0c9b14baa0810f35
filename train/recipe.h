// Recipes: strict, typed TOML. Every key a recipe may hold is declared once in a schema with
// its type and default, so an unknown key is an error naming its section (with the closest known
// key as a hint), `--set section.key=value` overrides use the same dotted paths, and the fully
// resolved recipe (defaults included) can be written back into the run directory.
#pragma once

#include <string>
#include <vector>

#include "base/json_io.h"
#include "model/config.h"

namespace k2f::train {

enum class KeyType { Int, Float, Bool, String, StringList, FloatList };

struct KeySpec {
  std::string path;  // "section.key" or "section.sub.key"
  KeyType type;
  Json default_value;
  std::string help;
};

// Every key a recipe may hold.
const std::vector<KeySpec>& recipe_schema();

class Recipe {
 public:
  // Parses `path` (may be empty: defaults only) and applies "a.b=value" overrides in order.
  static Recipe load(const std::string& path, const std::vector<std::string>& overrides = {});

  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<std::string> get_strings(const std::string& key) const;
  std::vector<double> get_floats(const std::string& key) const;
  bool was_set(const std::string& key) const;  // in the file or by --set, not a default

  // The resolved recipe as TOML (every key, defaults included), sections in schema order.
  std::string to_toml() const;
  // Creates `run_dir` and writes recipe.resolved.toml into it atomically.
  void write_resolved(const std::string& run_dir) const;

  const std::string& source() const { return source_; }

 private:
  void set(const std::string& key, const Json& value, const std::string& origin);
  const Json& value(const std::string& key) const;
  std::string source_;
  Json values_ = Json::object();  // dotted path -> value
  std::vector<std::string> explicitly_set_;
};

// The [model] section as a validated ModelConfig (messages use "model.<field>"), or the
// config.json named by model.hf_config (then no other model key may be set).
model::ModelConfig model_config_from_recipe(const Recipe& recipe);

// Edit distance, for "did you mean" hints.
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace k2f::train
