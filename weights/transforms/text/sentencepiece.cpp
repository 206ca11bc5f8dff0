// SentencePiece through libsentencepiece (the library python3-sentencepiece wraps), called as torchtext's
// csrc/sentencepiece.cpp calls it.
//
// Debian's libsentencepiece.so.0 carries its own protobuf and exports those symbols, while LibTorch
// loads libprotobuf.so.32: linked normally, the dynamic linker binds one library's protobuf calls to the
// other's and the process crashes while loading. So the library is opened here on first use with
// RTLD_DEEPBIND (its own symbols first) and never linked: the processor's methods are virtual (called
// through its vtable), and the three non-virtual functions needed are looked up by name. Nothing here
// may reference a libsentencepiece symbol directly (libmodelzoo.so must not list it as NEEDED).
#include <dlfcn.h>

#include <mutex>
#include <new>
#include <optional>

#include <sentencepiece_processor.h>

#include "modelzoo/errors.h"
#include "modelzoo/text/tokenizers.h"

namespace mz::text {

std::string read_asset(const std::string& path);  // gpt2_bpe.cpp

namespace {

using sentencepiece::SentencePieceProcessor;
using sentencepiece::util::Status;

// The sanitizers refuse RTLD_DEEPBIND (their interceptors would be bypassed). A sanitizer build can load SentencePiece
// only where there is no second protobuf to keep apart from (tests/fuzz's tokenizer target, without LibTorch).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MZ_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MZ_SANITIZER 1
#endif
#endif
#ifdef MZ_SANITIZER
constexpr int kDeepBind = 0;
#else
constexpr int kDeepBind = RTLD_DEEPBIND;
#endif

struct Library {
  void (*construct)(SentencePieceProcessor*) = nullptr;  // SentencePieceProcessor::SentencePieceProcessor()
  void (*destroy_status)(Status*) = nullptr;             // Status::~Status()
  std::string (*status_string)(const Status*) = nullptr;  // Status::ToString()
};

// `user` names what needed the library (the model file being loaded), for the error.
const Library& library(const std::string& user = "SentencePiece") {
  static Library lib;
  static std::once_flag once;
  static std::string error;
  std::call_once(once, [] {
#ifdef MZ_SANITIZER
    if (void* protobuf = ::dlopen("libprotobuf.so.32", RTLD_NOW | RTLD_NOLOAD)) {
      ::dlclose(protobuf);
      error = "a sanitizer build cannot keep its protobuf apart from LibTorch's (no RTLD_DEEPBIND)";
      return;
    }
#endif
    void* h = ::dlopen("libsentencepiece.so.0", RTLD_NOW | RTLD_LOCAL | kDeepBind);
    if (!h) {
      error = ::dlerror();
      return;
    }
    auto sym = [&](const char* name) {
      void* p = ::dlsym(h, name);
      if (!p) error = std::string("symbol ") + name + " not found";
      return p;
    };
    lib.construct = reinterpret_cast<void (*)(SentencePieceProcessor*)>(sym("_ZN13sentencepiece22SentencePieceProcessorC1Ev"));
    lib.destroy_status = reinterpret_cast<void (*)(Status*)>(sym("_ZN13sentencepiece4util6StatusD1Ev"));
    lib.status_string =
        reinterpret_cast<std::string (*)(const Status*)>(sym("_ZNK13sentencepiece4util6Status8ToStringB5cxx11Ev"));
  });
  if (!error.empty()) throw UsageError(user, "cannot load libsentencepiece.so.0: " + error);
  return lib;
}

// A Status returned by value, held without ever running the (unlinked) destructor inline.
class HeldStatus {
 public:
  template <class Call>
  explicit HeldStatus(Call call) {
    new (storage_) Status(call());  // constructed in place (guaranteed elision): no temporary to destroy
  }
  ~HeldStatus() { library().destroy_status(get()); }
  bool ok() const { return get()->ok(); }
  std::string message() const { return library().status_string(get()); }

 private:
  Status* get() const { return std::launder(reinterpret_cast<Status*>(const_cast<unsigned char*>(storage_))); }
  alignas(Status) unsigned char storage_[sizeof(Status)];
};

}  // namespace

struct SentencePieceTokenizer::Impl {
  SentencePieceProcessor* processor = nullptr;
  explicit Impl(const std::string& model_path) {
    const Library& lib = library(model_path);
    void* memory = ::operator new(sizeof(SentencePieceProcessor));
    lib.construct(static_cast<SentencePieceProcessor*>(memory));
    processor = static_cast<SentencePieceProcessor*>(memory);
  }
  ~Impl() { delete processor; }  // the virtual deleting destructor, through the vtable
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
};

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path) {
  const std::string proto = read_asset(model_path);  // a missing or unreadable file is named before the library loads
  impl_ = std::make_unique<Impl>(model_path);
  std::optional<HeldStatus> status;
  try {
    status.emplace([&] { return impl_->processor->LoadFromSerializedProto(absl::string_view(proto)); });
  } catch (const std::exception& e) {  // some malformed models make the library throw (found by tests/fuzz)
    throw CheckpointError(model_path, std::string("not a SentencePiece model: ") + e.what());
  }
  if (!status->ok()) throw CheckpointError(model_path, "not a SentencePiece model: " + status->message());
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

Encoding SentencePieceTokenizer::encode(std::string_view text) const {
  check_utf8(text);
  const absl::string_view input(text.data(), text.size());
  Encoding out;
  std::vector<int> ids;
  HeldStatus by_piece([&] { return impl_->processor->Encode(input, &out.pieces); });
  HeldStatus by_id([&] { return impl_->processor->Encode(input, &ids); });
  if (!by_piece.ok() || !by_id.ok())
    throw UsageError("text", "SentencePiece cannot encode it: " + (by_piece.ok() ? by_id : by_piece).message());
  if (ids.size() != out.pieces.size()) throw UsageError("text", "SentencePiece gave pieces and ids of different lengths");
  out.ids.assign(ids.begin(), ids.end());
  return out;
}

std::vector<std::string> SentencePieceTokenizer::tokens(std::string_view text) const { return encode(text).pieces; }

std::int64_t SentencePieceTokenizer::piece_size() const { return impl_->processor->GetPieceSize(); }

std::string SentencePieceTokenizer::decode(const std::vector<std::int64_t>& ids) const {
  std::vector<int> in;
  for (std::int64_t id : ids) {
    if (id < 0 || id >= piece_size())
      throw UsageError("ids", "id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(piece_size()) + ")");
    in.push_back(static_cast<int>(id));
  }
  std::string text;
  HeldStatus status([&] { return impl_->processor->Decode(in, &text); });
  if (!status.ok()) throw UsageError("ids", "SentencePiece cannot decode them: " + status.message());
  return text;
}

}  // namespace mz::text
