// Weights records and the typed weights values that reach them.
//
//   mz::ResNet50_Weights::IMAGENET1K_V2          a value of type mz::ResNet50_Weights
//   mz::ResNet50_Weights::DEFAULT                the same value (an alias, as in torchvision)
//   w.name() == "ResNet50_Weights.IMAGENET1K_V2"; mz::ResNet50_Weights::from_name(w.name()) == w
//   w.record().url, w.meta().num_params, w.transforms().crop_size, ...
//
// Records are immutable data registered once per weight (weights/records/<family>.cpp) or at run time from
// user manifests (MZ_MANIFEST). A value only holds the two names, so values are constants that can
// be declared in headers and resolved lazily.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/errors.h"

namespace at {
class Tensor;  // torch::Tensor; the preset's call operator is defined in weights/transforms/presets.cpp
}  // namespace at

namespace mz {

// Parameters of a preprocessing preset, named as torchvision's preset classes name them.
struct Transforms {
  std::string preset;                  // "ImageClassification", "SemanticSegmentation", "ObjectDetection"
  std::optional<std::int64_t> crop_size;
  std::optional<std::int64_t> resize_size;
  std::vector<double> mean;
  std::vector<double> std;
  std::string interpolation;           // "bilinear", "bicubic" or "nearest"

  // The preset as a callable, giving torchvision 0.14's numbers for a PIL image: a uint8 [3, H, W]
  // image or [N, 3, H, W] batch in, a float32 tensor out (see <modelzoo/transforms/presets.h>).
  at::Tensor operator()(const at::Tensor& uint8_chw_or_nchw) const;
};

// dataset -> metric -> value, e.g. {"ImageNet-1K": {"acc@1": 80.858}}; NaN is allowed.
using Metrics = std::map<std::string, std::map<std::string, double>>;

struct WeightsMeta {
  std::int64_t num_params = 0;
  std::optional<std::pair<std::int64_t, std::int64_t>> min_size;
  std::optional<std::vector<std::string>> categories;  // null where torchvision has None (feature weights)
  Metrics metrics;
  std::string recipe;
  std::string docs;                      // whitespace-normalised
  nlohmann::json extra = nlohmann::json::object();  // further builder configuration (e.g. image_size)
};

struct WeightsRecord {
  std::string enum_name;    // "ResNet50_Weights"
  std::string value_name;   // "IMAGENET1K_V2"
  std::string model;        // builder name, "resnet50"
  std::string task;         // "classification", "segmentation", ...
  bool is_default = false;
  std::string url;
  std::string hash_prefix;  // the hex run upstream puts in the file name, as torch.hub checks it ("" if none)
  std::string sha256;       // full digest, lower-case hex, "" when unknown
  std::optional<std::uint64_t> file_size;
  WeightsMeta meta;
  Transforms transforms;
  std::string source = "builtin";  // "builtin" or the manifest file that registered it

  std::string name() const { return enum_name + "." + value_name; }
};

// The weight entry JSON (`mz list --json`, manifests; the README documents it). from_json validates every field
// and throws mz::UsageError("<source>: <entry name>", reason) on a missing or malformed one.
nlohmann::json to_json(const WeightsRecord&);
nlohmann::json to_json(const Transforms&);
WeightsRecord record_from_json(const nlohmann::json& entry, const std::string& source);

// Registers a record; a name that exists already with different data is an error (same data is a
// no-op). Returns the stored, never-moving record.
const WeightsRecord& register_weights(WeightsRecord record);
// Looks up "Enum.VALUE"; nullptr when unknown.
const WeightsRecord* find_weights(std::string_view full_name);
// Every record, in registration order (builtins first, then manifests).
std::vector<const WeightsRecord*> all_weights();
// Looks up "Enum.VALUE" or "Enum.DEFAULT"; throws mz::UsageError naming close matches when unknown.
const WeightsRecord& get_weight(const std::string& full_name);

namespace detail {
// Reads the manifests named by MZ_MANIFEST (colon-separated) and registers their entries. Called
// once, lazily, by find_weights()/all_weights(); implemented in weights/manifest.cpp.
void load_manifests_from_env();
// The weights enum of a model's builtin records ("ResNet50_Weights"), "" when it has none. Every
// registered model has builtin weights (a test checks it), so this names the registry's models
// without LibTorch (the `mz` front end validates manifests with it).
std::string builtin_weights_enum(const std::string& model);
}  // namespace detail

// An untyped weights value: the enum name and the value name. Resolves to a record on use.
class Weights {
 public:
  constexpr Weights(const char* enum_name, const char* value_name) : enum_(enum_name), value_(value_name) {}
  const WeightsRecord& record() const;  // throws mz::UsageError for an unknown name
  std::string name() const { return record().name(); }
  // "Enum.VALUE" without a registry lookup (usable during static initialisation).
  std::string key() const { return std::string(enum_) + "." + value_; }
  const std::string& url() const { return record().url; }
  const WeightsMeta& meta() const { return record().meta; }
  const Transforms& transforms() const { return record().transforms; }
  bool operator==(const Weights& o) const { return &record() == &o.record(); }
  bool operator!=(const Weights& o) const { return !(*this == o); }

 protected:
  const char* enum_;
  const char* value_;
};

// Strongly typed weights of one builder. Two enums never convert into each other. The enums themselves
// (ResNet50_Weights, ...) are generated from the records at build time: <modelzoo/weights_enums.h> includes them all, one
// header per task (<modelzoo/weights_enums/classification.h>, ...).
template <class Self>
class WeightsEnum : public Weights {
 public:
  // Accepts "IMAGENET1K_V2", "DEFAULT" or the full "ResNet50_Weights.IMAGENET1K_V2"; manifest
  // entries registered at run time are found too. Throws mz::UsageError otherwise.
  static Self from_name(std::string_view name) {
    std::string_view value = name;
    const std::string prefix = std::string(Self::enum_name) + ".";
    if (value.substr(0, prefix.size()) == prefix) value.remove_prefix(prefix.size());
    if (value == "DEFAULT") return Self::DEFAULT;
    const WeightsRecord* r = find_weights(prefix + std::string(value));
    if (!r) throw UsageError(std::string(name), std::string("unknown weights for ") + Self::enum_name);
    return Self(r->value_name.c_str());
  }
  // Every value of this enum, builtins and manifest entries alike.
  static std::vector<Self> values() {
    std::vector<Self> out;
    for (const WeightsRecord* r : all_weights())
      if (r->enum_name == Self::enum_name) out.push_back(Self(r->value_name.c_str()));
    return out;
  }

 protected:
  explicit constexpr WeightsEnum(const char* value) : Weights(Self::enum_name, value) {}
  friend Self;
};

}  // namespace mz
