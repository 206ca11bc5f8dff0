// mz predict | preprocess: from image files to labels, detections or segments (or to the tensor the
// model sees), optionally drawn onto the images (--draw).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include <torch/torch.h>

#include "modelzoo/modelzoo.h"
#include "modelzoo/transforms/draw.h"
#include "modelzoo/transforms/presets.h"
#include "registry/cli/cli.h"
#include "registry/cli/build.h"

namespace mz::cli {
namespace {

using nlohmann::json;

// A weight name gives the weight; a model name its DEFAULT weight (for preset and categories); a saved
// model's directory the weight entry its config.json keeps as "preset".
WeightsRecord resolve_weight(const std::string& name) {
  if (pretrained::is_dir(name)) {
    const json config = pretrained::read_config(name);
    if (!config.contains("preset"))
      throw UsageError(name, "config.json has no preset to take the preprocessing and categories from (save it with "
                             "mz build --preset-of WEIGHT, or SaveOptions::preset_of)");
    return record_from_json(config["preset"], name + "/" + pretrained::kConfig);
  }
  if (name.find('.') != std::string::npos) return get_weight(name);
  const ModelInfo& info = model_info(name);  // throws "unknown model" with suggestions
  const std::string def = info.default_weights ? info.default_weights() : "";
  if (def.empty()) throw UsageError(name, "model has no DEFAULT weights to take the preset and categories from");
  return get_weight(def);
}

struct PredictArgs {
  std::string name, checkpoint, output, draw, options = "{}";
  bool mmap = false;
  std::vector<std::string> images;
  std::int64_t topk = 5, batch = 8;
  double score_thresh = 0.5;
  bool json = false, optimize = false;
};

// The weight's model in eval mode: with its weights, or built in the weight's configuration and loaded
// from --checkpoint.
Model build_for(const PredictArgs& a, const WeightsRecord& w) {
  if (pretrained::is_dir(a.name)) {  // built as its config.json says
    Model model = build(a.name, a.checkpoint, "", parse_options(a.options, std::nullopt));
    model.module->eval();
    return model;
  }
  const ModelInfo& info = model_info(w.model);
  json options = parse_options(a.options, std::nullopt);
  const std::vector<std::string> categories = w.meta.categories.value_or(std::vector<std::string>{});
  // A checkpoint for these weights has their head sizes (unless the options say otherwise).
  const auto head = [&](const char* option, std::size_t size) {
    if (!a.checkpoint.empty() && size > 0 && info.default_options.contains(option) && !options.contains(option))
      options[option] = size;
  };
  head("num_classes", categories.size());
  head("num_keypoints", w.meta.extra.value("keypoint_names", json::array()).size());
  // With --checkpoint, a detection weight's name builds that weight's configuration (FrozenBatchNorm2d,
  // eps), as mz forward --like does; a model name builds the plain model.
  const bool like = !a.checkpoint.empty() && a.name.find('.') != std::string::npos &&
                    w.transforms.preset == "ObjectDetection";
  Model model = build(w.model, a.checkpoint, a.checkpoint.empty() ? w.name() : "", options, true, storage(a.mmap),
                      like ? w.name() : "");
  model.module->eval();
  return model;
}

std::string label_of(const std::vector<std::string>& categories, std::int64_t index) {
  return index >= 0 && index < static_cast<std::int64_t>(categories.size()) ? categories[static_cast<size_t>(index)]
                                                                          : std::to_string(index);
}

// --draw DIR: DIR/<image stem>.png.
std::string drawing_path(const std::string& dir, const std::string& image) {
  std::filesystem::create_directories(dir);
  return (std::filesystem::path(dir) / std::filesystem::path(image).stem()).string() + ".png";
}

// COCO's uncompressed RLE of a binary mask [H, W]: run lengths in column-major order, starting with 0s.
json mask_rle(const torch::Tensor& mask) {
  const torch::Tensor flat = mask.t().contiguous().view(-1).to(torch::kUInt8);
  const std::uint8_t* p = flat.data_ptr<std::uint8_t>();
  json counts = json::array();
  std::uint8_t current = 0;
  std::int64_t run = 0;
  for (std::int64_t i = 0; i < flat.numel(); ++i) {
    if (p[i] != current) counts.push_back(run), run = 0, current = p[i];
    ++run;
  }
  counts.push_back(run);
  return {{"size", {mask.size(0), mask.size(1)}}, {"counts", counts}};
}

void run_detect(const PredictArgs& a, const WeightsRecord& w) {
  Model model = build_for(a, w);
  torch::InferenceMode guard;
  const std::vector<std::string> categories = w.meta.categories.value_or(std::vector<std::string>{});
  json results = json::array();
  for (std::size_t first = 0; first < a.images.size(); first += static_cast<std::size_t>(a.batch)) {
    const std::size_t last = std::min(a.images.size(), first + static_cast<std::size_t>(a.batch));
    TensorDict inputs;
    for (std::size_t i = first; i < last; ++i)
      inputs.insert("input." + std::to_string(i - first), preprocess(w.transforms, a.images[i]));
    if (a.optimize && first == 0) optimize_for_inference(model, inputs);
    const TensorDict out = model.run(inputs);
    for (std::size_t i = first; i < last; ++i) {
      const std::string n = "." + std::to_string(i - first);
      const torch::Tensor keep = out.at("scores" + n) >= a.score_thresh;
      const torch::Tensor boxes = out.at("boxes" + n).index({keep}), scores = out.at("scores" + n).index({keep});
      const torch::Tensor labels = out.at("labels" + n).index({keep});
      const torch::Tensor masks = out.contains("masks" + n) ? out.at("masks" + n).index({keep}) : torch::Tensor();
      const torch::Tensor kps = out.contains("keypoints" + n) ? out.at("keypoints" + n).index({keep}) : torch::Tensor();
      const torch::Tensor kp_scores =
          out.contains("keypoints_scores" + n) ? out.at("keypoints_scores" + n).index({keep}) : torch::Tensor();
      json detections = json::array();
      if (!a.json) std::cout << a.images[i] << "\n";
      for (std::int64_t d = 0; d < boxes.size(0); ++d) {
        const std::int64_t index = labels[d].item<std::int64_t>();
        const std::string label = label_of(categories, index);
        const double score = scores[d].item<double>();
        std::vector<double> box(4);
        for (int c = 0; c < 4; ++c) box[c] = boxes[d][c].item<double>();
        if (!a.json) {
          std::cout << "  " << std::left << std::setw(16) << label << std::right << std::fixed << std::setprecision(4)
                    << score << "  [" << std::setprecision(1) << box[0] << ", " << box[1] << ", " << box[2] << ", "
                    << box[3] << "]\n";
          continue;
        }
        json det = {{"label", label}, {"index", index}, {"score", score}, {"box", box}};
        if (masks.defined()) det["mask"] = mask_rle(masks[d][0] > 0.5);
        if (kps.defined()) {
          json points = json::array();
          for (std::int64_t k = 0; k < kps.size(1); ++k)
            points.push_back({kps[d][k][0].item<double>(), kps[d][k][1].item<double>(),
                              kp_scores.defined() ? kp_scores[d][k].item<double>() : 1.0});
          det["keypoints"] = points;
        }
        detections.push_back(det);
      }
      if (a.json) results.push_back({{"image", a.images[i]}, {"detections", detections}});
      if (a.draw.empty()) continue;
      Detection kept{boxes, labels, scores, masks, kps, kp_scores};
      const torch::Tensor image = draw_detection(read_image(a.images[i]), kept, categories);
      write_png(drawing_path(a.draw, a.images[i]), image);
    }
  }
  if (a.json) std::cout << results.dump(1) << "\n";
}

// Semantic segmentation: the class of every pixel (logits resized to the image, as torchvision's
// segmentation reference does), reported as the share of the image each class covers.
void run_segment(const PredictArgs& a, const WeightsRecord& w) {
  Model model = build_for(a, w);
  torch::InferenceMode guard;
  const std::vector<std::string> categories = w.meta.categories.value_or(std::vector<std::string>{});
  json results = json::array();
  for (const std::string& path : a.images) {
    const torch::Tensor image = read_image(path);
    TensorDict inputs;
    inputs.insert("input", preprocess(w.transforms, path).unsqueeze(0));
    if (a.optimize && &path == &a.images.front()) optimize_for_inference(model, inputs);
    const TensorDict out = model.run(inputs);
    if (!out.contains("out")) throw UsageError(w.model, "model gave no 'out' tensor");
    const torch::Tensor logits = torch::nn::functional::interpolate(
        out.at("out").to(torch::kFloat32),
        torch::nn::functional::InterpolateFuncOptions()
            .size(std::vector<std::int64_t>{image.size(1), image.size(2)})
            .mode(torch::kBilinear)
            .align_corners(false));
    const torch::Tensor classes = logits[0].argmax(0);
    const torch::Tensor present = std::get<0>(torch::_unique(classes));
    json segments = json::array();
    std::vector<Rgb> colors;
    const std::vector<Rgb> palette = generate_color_palette(logits.size(1));
    if (!a.json) std::cout << path << "\n";
    for (std::int64_t k = 0; k < present.size(0); ++k) {
      const std::int64_t index = present[k].item<std::int64_t>();
      const double share = (classes == index).to(torch::kFloat64).mean().item<double>();
      const std::string label = label_of(categories, index);
      colors.push_back(palette[static_cast<size_t>(index)]);
      if (a.json)
        segments.push_back({{"label", label}, {"index", index}, {"fraction", share}});
      else
        std::cout << "  " << std::left << std::setw(16) << label << std::right << std::fixed << std::setprecision(4)
                  << share << "\n";
    }
    if (a.json) results.push_back({{"image", path}, {"segments", segments}});
    if (!a.draw.empty()) {
      const torch::Tensor masks = classes.unsqueeze(0) == present.view({-1, 1, 1});
      write_png(drawing_path(a.draw, path), draw_segmentation_masks(image, masks, 0.6, colors));
    }
  }
  if (a.json) std::cout << results.dump(1) << "\n";
}

void check_images(const std::vector<std::string>& images) {  // before a model is built or a weight fetched
  for (const std::string& image : images)
    if (const std::string why = unreadable_file(image); !why.empty()) throw ImageError(image, why);
}

void run_predict(const PredictArgs& a) {
  if (a.topk < 1) throw UsageError("--topk", "must be at least 1");
  if (a.batch < 1) throw UsageError("--batch", "must be at least 1");
  if (!(a.score_thresh >= 0 && a.score_thresh <= 1)) throw UsageError("--score-thresh", "must be between 0 and 1");
  if (!a.draw.empty() && std::filesystem::exists(a.draw) && !std::filesystem::is_directory(a.draw))
    throw UsageError(a.draw, "--draw needs a directory, and this is a file");
  check_images(a.images);
  const WeightsRecord w = resolve_weight(a.name);
  if (w.transforms.preset == "ObjectDetection") return run_detect(a, w);
  if (w.transforms.preset == "SemanticSegmentation") return run_segment(a, w);
  if (w.transforms.preset != "ImageClassification")
    throw UsageError(w.name(), "mz predict does not handle the preset " + w.transforms.preset);
  if (!a.draw.empty()) throw UsageError("--draw", "draws detections and segments, not classifications");
  const std::vector<std::string> categories = w.meta.categories.value_or(std::vector<std::string>{});
  Model model = build_for(a, w);
  torch::InferenceMode guard;

  json results = json::array();
  for (std::size_t first = 0; first < a.images.size(); first += static_cast<std::size_t>(a.batch)) {
    const std::size_t last = std::min(a.images.size(), first + static_cast<std::size_t>(a.batch));
    const std::vector<std::string> paths(a.images.begin() + first, a.images.begin() + last);
    const torch::Tensor input = preprocess(w.transforms, paths);
    TensorDict inputs;
    inputs.insert("input", input);
    if (a.optimize && first == 0) optimize_for_inference(model, inputs);
    const TensorDict out = model.run(inputs);
    if (out.is_empty()) throw UsageError(w.model, "model gave no output");
    const torch::Tensor probs = torch::softmax(out.front().value().to(torch::kFloat32), 1);
    // categories of another head size (a fine-tuned model saved without its own) would mislabel: indices then
    const std::vector<std::string> labels =
        probs.size(1) == static_cast<std::int64_t>(categories.size()) ? categories : std::vector<std::string>{};
    const std::int64_t k = std::min<std::int64_t>(a.topk, probs.size(1));
    const auto [values, indices] = probs.topk(k, 1);
    for (std::size_t i = 0; i < paths.size(); ++i) {
      json top = json::array();
      for (std::int64_t j = 0; j < k; ++j) {
        const std::int64_t index = indices[i][j].item<std::int64_t>();
        const std::string label = label_of(labels, index);
        top.push_back({{"index", index}, {"label", label}, {"prob", values[i][j].item<double>()}});
      }
      if (a.json) {
        results.push_back({{"image", paths[i]}, {"top", top}});
      } else {
        std::cout << paths[i] << "\n";
        for (const auto& t : top)
          std::cout << "  " << std::fixed << std::setprecision(4) << t["prob"].get<double>() << "  "
                    << t["label"].get<std::string>() << " (" << t["index"].get<std::int64_t>() << ")\n";
      }
    }
  }
  if (a.json) std::cout << results.dump(1) << "\n";
}

void run_preprocess(const PredictArgs& a) {
  check_output_file(a.output);
  check_images(a.images);
  const WeightsRecord w = resolve_weight(a.name);
  const torch::Tensor input = preprocess(w.transforms, a.images);
  save_safetensors(a.output, {{"input", input}}, {{"weight", w.name()}, {"preset", w.transforms.preset}});
  std::cout << a.output << "\n";
}

}  // namespace

void add_predict_commands(CLI::App& app) {
  auto pa = std::make_shared<PredictArgs>();
  auto* predict = app.add_subcommand(
      "predict", "Classify images (top-K labels with probabilities), detect objects (label, score, box; masks and "
                 "keypoints) or segment them (classes and their share of the image), with the weight's preset");
  predict->add_option("NAME", pa->name, "Weight ('ResNet50_Weights.IMAGENET1K_V2'), model (its DEFAULT weight's "
                                        "preset and categories) or a saved model's directory (its config.json's "
                                        "preset)")->required();
  predict->add_option("IMAGE", pa->images, "JPEG or PNG files")->required();
  predict->add_option("--checkpoint", pa->checkpoint,
                      "Checkpoint file (model built with no weights, then loaded; a detection weight's name builds "
                      "that weight's configuration first, as mz forward --like does)");
  add_mmap_flag(predict, pa->mmap);
  add_optimize_flag(predict, pa->optimize);
  predict->add_option("--options", pa->options, "Builder options as JSON, by their Python names "
                                                "('{\"box_score_thresh\": 0.3}')");
  predict->add_option("--topk", pa->topk, "Classification: labels per image (default 5)");
  predict->add_option("--score-thresh", pa->score_thresh,
                      "Detection: show detections scoring at least this (default 0.5; the model's own thresholds "
                      "stay options)");
  predict->add_option("--draw", pa->draw, "Detection and segmentation: write DIR/<image stem>.png with the "
                                          "boxes, labels, masks, keypoints or segments drawn");
  predict->add_option("--batch", pa->batch, "Images per forward pass (default 8)");
  predict->add_flag("--json", pa->json,
                    R"(JSON: [{"image": path, "top": [{"index", "label", "prob"}, ...]}] (classification), )"
                    R"([{"image", "detections": [{"label", "index", "score", "box": [x1, y1, x2, y2], "mask": )"
                    R"({"size": [H, W], "counts": [COCO uncompressed RLE]}, "keypoints": [[x, y, score], ...]}]}] )"
                    R"((detection), [{"image", "segments": [{"label", "index", "fraction"}]}] (segmentation))");
  predict->callback([pa] { run_predict(*pa); });

  auto ppa = std::make_shared<PredictArgs>();
  auto* prep = app.add_subcommand(
      "preprocess", "Write the preprocessed batch (tensor 'input', [N, 3, H, W]) that a weight's preset gives");
  prep->add_option("WEIGHT", ppa->name, "Weight (or model: its DEFAULT weight)")->required();
  prep->add_option("IMAGE", ppa->images, "JPEG or PNG files")->required();
  prep->add_option("--output", ppa->output, "Output .safetensors")->required();
  prep->callback([ppa] { run_preprocess(*ppa); });
}

}  // namespace mz::cli
