// Test driver for the audio oracle scripts (parity_audio.py, test_audio_io.py).
//   audio_tool forward OPTIONS_JSON CHECKPOINT IN.safetensors OUT.safetensors
//       mz::wav2vec2_model(options) (torchaudio's kwargs), strict load, run() on the inputs, every output written.
//   audio_tool load RATE AUDIO OUT.safetensors [AUDIO OUT.safetensors ...]
//       mz::audio::load_waveform (decode, mono, resample to RATE) written as "waveform"; "decoded": the frames.
//   audio_tool resample IN.safetensors OUT.safetensors
//       mz::audio::resample of every tensor "<orig>_<new>_<tag>" from orig to new Hz, written under the same name.
//   audio_tool bench RATE REPEAT AUDIO...
//       load_waveform over every file, best of REPEAT passes, as JSON {"files", "seconds", "audio_seconds"}.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>

#include <modelzoo/modelzoo.h>

namespace {

int forward(char** argv) {
  std::ifstream f(argv[0]);
  const auto options = mz::options_from_json<mz::Wav2Vec2ModelOptions>(nlohmann::json::parse(f), "wav2vec2_model");
  mz::Wav2Vec2Model model{nullptr};
  {
    mz::ArchitectureOnly no_init;
    model = mz::wav2vec2_model(options);
  }
  mz::load_checkpoint(*model, argv[1]);
  model->eval();
  torch::NoGradGuard no_grad;
  mz::save_safetensors(argv[3], model->run(mz::read_checkpoint(argv[2])));
  return 0;
}

int load(int argc, char** argv) {
  const auto rate = std::stoll(argv[0]);
  for (int i = 1; i + 1 < argc; i += 2) {
    mz::TensorDict out;
    out.insert("waveform", mz::audio::load_waveform(argv[i], rate));
    out.insert("decoded", mz::audio::decode_audio(argv[i]).samples);
    mz::save_safetensors(argv[i + 1], out);
  }
  return 0;
}

int resample(char** argv) {
  mz::TensorDict out;
  for (const auto& item : mz::read_checkpoint(argv[0])) {
    const std::string& name = item.key();
    const auto sep = name.find('_');
    const auto orig = std::stoll(name.substr(0, sep)), new_freq = std::stoll(name.substr(sep + 1));
    out.insert(name, mz::audio::resample(item.value(), orig, new_freq));
  }
  mz::save_safetensors(argv[1], out);
  return 0;
}

int bench(int argc, char** argv) {
  const auto rate = std::stoll(argv[0]);
  const int repeat = std::stoi(argv[1]);
  double best = 1e30, audio_seconds = 0;
  for (int r = 0; r < repeat; ++r) {
    audio_seconds = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 2; i < argc; ++i) audio_seconds += static_cast<double>(mz::audio::load_waveform(argv[i], rate).size(0));
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::cout << nlohmann::json{{"files", argc - 2}, {"seconds", best}, {"audio_seconds", audio_seconds / rate}} << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "forward" && argc == 6) return forward(argv + 2);
    if (cmd == "load" && argc >= 5 && argc % 2 == 1) return load(argc - 2, argv + 2);
    if (cmd == "resample" && argc == 4) return resample(argv + 2);
    if (cmd == "bench" && argc >= 5) return bench(argc - 2, argv + 2);
    std::cerr << "usage: audio_tool forward OPTIONS_JSON CHECKPOINT IN OUT | load RATE (AUDIO OUT)... | resample IN OUT | bench RATE REPEAT AUDIO...\n";
    return 2;
  } catch (const mz::Error& e) {
    std::cerr << "audio_tool: " << e.what() << "\n";
    return e.exit_code();
  }
}
