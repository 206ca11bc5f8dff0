// Spec resolution (JSON to JSON): _base_, overrides, references, and their errors and limits.
#include <doctest/doctest.h>

#include <fstream>

#include "tests/spec/spec_test.h"

using namespace mz;
using nlohmann::json;
using test::usage_error;

namespace {
void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
}  // namespace

TEST_CASE("resolve: references, absolute and relative (OmegaConf's dots), whole values and spliced text") {
  const json spec = json::parse(R"({
    "num_classes": 3, "name": "det", "sizes": [32, 64],
    "head": {"num_classes": "${..num_classes}", "width": "${.depth}", "depth": 4, "first": "${sizes.1}",
             "label": "${name}-${head.depth}", "copy": "${sizes}"},
    "a": {"b": {"c": "${...num_classes}"}}})");
  const json r = spec::resolve(spec);
  CHECK(r["head"]["num_classes"] == 3);
  CHECK(r["head"]["width"] == 4);
  CHECK(r["head"]["first"] == 64);
  CHECK(r["head"]["label"] == "det-4");
  CHECK(r["head"]["copy"] == json::array({32, 64}));
  CHECK(r["a"]["b"]["c"] == 3);
  CHECK(spec::resolve(r) == r);  // resolving a resolved spec changes nothing
}

TEST_CASE("resolve: reference errors name the path: unresolved, above the root, cycles, not text") {
  CHECK(usage_error([] { spec::resolve(json::parse(R"({"a": {"b": 1}, "x": "${a.c}"})")); }) ==
        "model.x: unresolved reference ${a.c}: model.a has no 'c' (keys: b)");
  CHECK(usage_error([] { spec::resolve(json::parse(R"({"x": "${...y}"})")); }) ==
        "model.x: unresolved reference ${...y}: it goes above the root");
  CHECK(usage_error([] { spec::resolve(json::parse(R"({"a": "${b}", "b": "${a}"})")); }) ==
        "model.a: reference cycle: model.b -> model.a -> model.b");
  CHECK(usage_error([] { spec::resolve(json::parse(R"({"a": {"b": "${a}"}})")); }) ==
        "model.a.b: reference cycle: model.a -> model.a");
  CHECK(usage_error([] { spec::resolve(json::parse(R"({"a": [1], "b": "x${a}"})")); }).find("model.b: ${a} is [1]") == 0);
  CHECK(usage_error([] { spec::resolve(json::parse(R"({"a": "${b"})")); }) ==
        "model.a: unterminated reference in \"${b\"");
}

TEST_CASE("resolve: overrides set dotted paths to JSON values, else strings, after the bases") {
  const json spec = json::parse(R"({"_target_": "X", "head": {"num_classes": 2}, "list": [1, 2]})");
  const json r = spec::resolve(spec, {"head.num_classes=3", "name=features", "head.dims=[1, 2]", "list.1=5",
                                      "flag=true", "new.deep.key=null"});
  CHECK(r["head"]["num_classes"] == 3);
  CHECK(r["name"] == "features");
  CHECK(r["head"]["dims"] == json::array({1, 2}));
  CHECK(r["list"] == json::array({1, 5}));
  CHECK(r["flag"] == true);
  CHECK(r["new"]["deep"]["key"].is_null());
  CHECK(usage_error([&] { spec::resolve(spec, {"num_classes"}); }) ==
        "num_classes: an override is KEY=VALUE, KEY a dotted path into the spec");
  CHECK(usage_error([&] { spec::resolve(spec, {"head..x=1"}); }) ==
        "head..x=1: empty name in the dotted path 'head..x'");
  CHECK(usage_error([&] { spec::resolve(spec, {"list.7=1"}); }) == "model.list: override list.7: cannot set '7' in [1,2]");
  // found by tests/fuzz: a command-line override is not checked by JSON's parser
  CHECK(usage_error([&] { spec::resolve(spec, {"name=caf\xe9"}); }) == "override: not valid UTF-8: \"name=caf\xef\xbf\xbd\"");
}

TEST_CASE("resolve: _base_ files (relative to the naming file) and registered specs, deep-merged") {
  const std::string dir = test::temp_path("bases");
  std::filesystem::create_directories(dir + "/sub");
  write(dir + "/sub/base.json",
        R"({"_target_": "FasterRCNN", "num_classes": 2, "head": {"_target_": "A", "x": 1, "y": 2}, "keep": {"k": 1}})");
  write(dir + "/variant.json", R"({"_base_": "sub/base.json", "num_classes": 5, "head": {"y": 3}, "keep": {"_target_": "B"}})");
  const json r = spec::load(dir + "/variant.json");
  CHECK(r == json::parse(R"({"_target_": "FasterRCNN", "num_classes": 5, "head": {"_target_": "A", "x": 1, "y": 3},
                              "keep": {"_target_": "B", "k": 1}})"));
  spec::register_spec("test_registered_base", json::parse(R"({"_target_": "Linear", "in_features": 4, "out_features": 2})"));
  CHECK(spec::resolve(json::parse(R"({"_base_": "test_registered_base", "out_features": 3})")) ==
        json::parse(R"({"_target_": "Linear", "in_features": 4, "out_features": 3})"));
  // a nested node may start from a base too, relative to the file that names it
  write(dir + "/nested.json", R"({"_target_": "Q", "child": {"_base_": "sub/base.json", "num_classes": 7}})");
  CHECK(spec::load(dir + "/nested.json")["child"]["num_classes"] == 7);
  CHECK(spec::load(dir + "/variant.json", {"head.x=9"})["head"]["x"] == 9);
}

TEST_CASE("resolve: _base_ errors: cycles, chains, missing files and names, bad JSON") {
  const std::string dir = test::temp_path("cycles");
  std::filesystem::create_directories(dir);
  write(dir + "/a.json", R"({"_base_": "b.json", "x": 1})");
  write(dir + "/b.json", R"({"_base_": "a.json", "y": 1})");
  const std::string cycle = usage_error([&] { spec::load(dir + "/a.json"); });
  CHECK(cycle.find("model._base_: _base_ cycle: ") == 0);
  CHECK(cycle.find("a.json -> ") != std::string::npos);
  for (int i = 0; i < 20; ++i)
    write(dir + "/c" + std::to_string(i) + ".json", R"({"_base_": "c)" + std::to_string(i + 1) + R"(.json"})");
  write(dir + "/c20.json", "{}");
  CHECK(usage_error([&] { spec::load(dir + "/c0.json"); }) == "model._base_: _base_ chain longer than 16 specs");
  CHECK(usage_error([&] { spec::load(dir + "/c10.json"); }).empty());
  CHECK(usage_error([&] { spec::resolve(json::parse(R"({"_base_": "missing.json"})"), {}, dir); }) ==
        "model._base_: no spec file " + dir + "/missing.json");
  CHECK(usage_error([] { spec::resolve(json::parse(R"({"_base_": "test_registered_bas"})")); })
            .find("(did you mean: test_registered_base") != std::string::npos);
  CHECK(usage_error([] { spec::resolve(json::parse(R"({"_base_": 3})")); }) ==
        "model._base_: must name a spec file or a registered spec, got 3");
  write(dir + "/bad.json", "{\"_target_\": ");
  CHECK(usage_error([&] { spec::load(dir + "/bad.json"); }).find(dir + "/bad.json: not valid JSON") == 0);
  CHECK(usage_error([] { spec::resolve(json::array()); }) == "model: a spec is a JSON object (a node), got []");
}

TEST_CASE("resolve: untrusted specs are bounded: nesting, reference blow-up") {
  json deep = json::object();
  for (int i = 0; i < 1000; ++i) deep = json{{"a", deep}};
  CHECK(usage_error([&] { spec::resolve(deep); }).find("nested deeper than 64 levels") != std::string::npos);
  // each level doubles the text: 2^40 values unless bounded
  json bomb = {{"l0", json::array({1, 2})}};
  for (int i = 1; i <= 40; ++i) {
    std::string key = "l", ref = "${l";
    key += std::to_string(i);  // (GCC 12 warns falsely on "l" + std::to_string(i) here)
    ref += std::to_string(i - 1) + "}";
    bomb[key] = json::array({ref, ref});
  }
  const std::string error = usage_error([&] { spec::resolve(bomb); });
  CHECK((error.find("more than 2000000 values") != std::string::npos ||
         error.find("more than 100000 reference lookups") != std::string::npos));
}
