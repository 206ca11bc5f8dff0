// Typed errors. Every error names the thing it is about (file, URL, weight, model) and the reason;
// what() is "<subject>: <reason>". The CLI maps each type to its own exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace mz {

class Error : public std::runtime_error {
 public:
  Error(std::string subject, std::string reason, int exit_code = 1)
      : std::runtime_error(subject.empty() ? reason : subject + ": " + reason),
        subject_(std::move(subject)),
        reason_(std::move(reason)),
        exit_code_(exit_code) {}
  const std::string& subject() const noexcept { return subject_; }
  const std::string& reason() const noexcept { return reason_; }
  int exit_code() const noexcept { return exit_code_; }

 private:
  std::string subject_, reason_;
  int exit_code_;
};

// Bad user input: unknown model or weight name, bad option, bad CLI argument.      exit 2
class UsageError : public Error {
 public:
  UsageError(std::string subject, std::string reason) : Error(std::move(subject), std::move(reason), 2) {}
};
// A checkpoint file that cannot be parsed or is unsafe; subject is the file path.  exit 3
class CheckpointError : public Error {
 public:
  CheckpointError(std::string file, std::string reason) : Error(std::move(file), std::move(reason), 3) {}
  const std::string& file() const noexcept { return subject(); }
};
// A parsed checkpoint that does not fit the module (missing/unexpected/shape).    exit 4
class LoadError : public Error {
 public:
  LoadError(std::string file, std::string reason) : Error(std::move(file), std::move(reason), 4) {}
};
// Download, cache, integrity, offline and manifest failures; subject is the URL,  exit 5
// the weight or the file concerned.
class HubError : public Error {
 public:
  HubError(std::string subject, std::string reason) : Error(std::move(subject), std::move(reason), 5) {}
};
// (Exit 6 is LibTorch's own c10::Error, caught by the CLI.)
// An image that cannot be decoded: not an image, an unsupported format, corrupt or truncated
// data, or too many pixels; subject is the file name.                             exit 7
class ImageError : public Error {
 public:
  ImageError(std::string file, std::string reason) : Error(std::move(file), std::move(reason), 7) {}
  const std::string& file() const noexcept { return subject(); }
};

// Audio that cannot be decoded or prepared: not audio, an unsupported format, corrupt data, no
// samples, or a sample rate that cannot be resampled; subject is the file name.     exit 8
class AudioError : public Error {
 public:
  AudioError(std::string file, std::string reason) : Error(std::move(file), std::move(reason), 8) {}
  const std::string& file() const noexcept { return subject(); }
};

}  // namespace mz
