// Restricted unpickler: the opcodes torch.save (protocols 2-5, and python2-era legacy files) emits,
// an allow-list of globals, hard limits on stack, memo, marks and nesting.
#include "weights/checkpoint/formats/pickle.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <unordered_map>

namespace mz::formats::pickle {

const char* kind_name(Kind k) {
  static const char* names[] = {"None", "bool", "int", "int", "float", "str", "bytes",
                                "tuple", "list", "dict", "global", "storage", "tensor", "object"};
  return names[static_cast<int>(k)];
}

namespace {

using detail::printable;

struct StorageTypeName {
  const char* name;
  DType dtype;
};
const StorageTypeName kStorageTypes[] = {
    {"FloatStorage", DType::Float32}, {"DoubleStorage", DType::Float64}, {"HalfStorage", DType::Float16},
    {"BFloat16Storage", DType::BFloat16}, {"LongStorage", DType::Int64}, {"IntStorage", DType::Int32},
    {"ShortStorage", DType::Int16}, {"CharStorage", DType::Int8}, {"ByteStorage", DType::UInt8},
    {"BoolStorage", DType::Bool}};

class Unpickler {
 public:
  Unpickler(detail::Reader& r, const StorageLoader& load) : r_(r), load_(load) {}
  Pickle run();

 private:
  detail::Reader& r_;
  const StorageLoader& load_;
  Pickle p_;
  std::vector<std::uint32_t> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint32_t, std::uint32_t> memo_;
  std::size_t op_pos_ = 0;

  [[noreturn]] void fail(const std::string& reason) const { r_.fail(reason); }
  [[noreturn]] void malformed(const std::string& what) const {
    fail("malformed pickle: " + what + " at offset " + std::to_string(op_pos_));
  }
  [[noreturn]] void too_deep() const { fail("pickle nested deeper than " + std::to_string(kMaxDepth) + " levels"); }

  Value& at(std::uint32_t i) { return p_.values[i]; }
  std::uint32_t make(Kind kind) {
    if (p_.values.size() >= kMaxValues) fail("pickle too large: more than " + std::to_string(kMaxValues) + " values");
    p_.values.emplace_back().kind = kind;
    return static_cast<std::uint32_t>(p_.values.size() - 1);
  }
  void push(std::uint32_t v) {
    if (stack_.size() >= kMaxStack) fail("pickle stack deeper than " + std::to_string(kMaxStack) + " entries");
    stack_.push_back(v);
  }
  void push_new(Kind kind) { push(make(kind)); }
  void push_int(std::int64_t n) { push_new(Kind::Int); at(stack_.back()).num = n; }
  void push_text(Kind kind, const std::uint8_t* p, std::size_t n) {
    push_new(kind);
    at(stack_.back()).text.assign(reinterpret_cast<const char*>(p), n);
  }
  std::uint32_t pop() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) malformed("stack underflow");
    std::uint32_t v = stack_.back();
    stack_.pop_back();
    return v;
  }
  std::uint32_t top() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) malformed("stack underflow");
    return stack_.back();
  }
  std::vector<std::uint32_t> pop_mark() {
    if (marks_.empty()) malformed("no MARK");
    std::vector<std::uint32_t> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  // Adds children to a container, keeping its depth up to date and bounded.
  void add(std::uint32_t container, const std::vector<std::uint32_t>& children) {
    std::uint32_t depth = at(container).depth;
    for (std::uint32_t c : children) depth = std::max(depth, at(c).depth + 1);
    if (depth > kMaxDepth) too_deep();
    Value& v = at(container);
    v.depth = depth;
    v.items.insert(v.items.end(), children.begin(), children.end());
  }
  std::uint32_t container_on_top(Kind kind, const char* op) {
    std::uint32_t c = top();
    if (at(c).kind != kind) malformed(std::string(op) + " on a " + kind_name(at(c).kind));
    return c;
  }
  void push_container(Kind kind, const std::vector<std::uint32_t>& items) {
    std::uint32_t c = make(kind);
    add(c, items);
    push(c);
  }
  void push_dict(const std::vector<std::uint32_t>& items) {
    if (items.size() % 2) malformed("odd number of dict items");
    push_container(Kind::Dict, items);
  }

  std::string line(const char* what);
  void long_int(std::size_t n);
  void text_int(bool is_long);
  void global(std::string module, std::string name);  // by value: make() may move values
  void memo_put(std::uint32_t key);
  void memo_get(std::uint32_t key);
  void call(std::uint32_t callable, std::uint32_t args);
  void rebuild_tensor(const std::vector<std::uint32_t>& args, std::size_t min_args, std::size_t max_args);
  std::vector<std::int64_t> int_tuple(std::uint32_t v, const char* what);
  void persistent(std::uint32_t pid);
  bool step(std::uint8_t op);
};

std::string Unpickler::line(const char* what) {
  const std::size_t max = std::min<std::size_t>(r_.remaining(), 256);
  const std::uint8_t* p = r_.base() + r_.pos();
  const void* nl = std::memchr(p, '\n', max);
  if (!nl) malformed(std::string("unterminated ") + what);
  std::size_t n = static_cast<const std::uint8_t*>(nl) - p;
  r_.take(n + 1, what);
  return std::string(reinterpret_cast<const char*>(p), n);
}

// LONG1/LONG4: little-endian two's complement; up to 8 bytes become Int, longer ones BigInt.
void Unpickler::long_int(std::size_t n) {
  if (n > 64) fail("pickle integer too large (" + std::to_string(n) + " bytes)");
  const std::uint8_t* p = r_.take(n, "pickle integer");
  if (n > 8) return push_text(Kind::BigInt, p, n);
  std::uint64_t v = n ? detail::Reader::le(p, static_cast<int>(n)) : 0;
  if (n && n < 8 && (p[n - 1] & 0x80)) v |= ~std::uint64_t{0} << (8 * n);  // sign-extend
  push_int(static_cast<std::int64_t>(v));
}

// INT / LONG text forms ("I42\n", "I01\n" for True, "L42L\n").
void Unpickler::text_int(bool is_long) {
  std::string s = line("pickle integer");
  if (is_long && !s.empty() && s.back() == 'L') s.pop_back();
  if (!is_long && (s == "00" || s == "01")) {
    push_new(Kind::Bool);
    at(stack_.back()).num = s == "01";
    return;
  }
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) malformed("bad integer " + printable(s));
  push_int(v);
}

void Unpickler::global(std::string module, std::string name) {
  const std::string full = module + "." + name;
  std::uint32_t g = make(Kind::Global);
  at(g).text = full;
  if (full == "collections.OrderedDict") {
    at(g).num = static_cast<int>(Global::OrderedDict);
  } else if (full == "torch._utils._rebuild_tensor_v2") {
    at(g).num = static_cast<int>(Global::RebuildTensorV2);
  } else if (full == "torch._utils._rebuild_tensor") {
    at(g).num = static_cast<int>(Global::RebuildTensor);
  } else if (full == "torch._utils._rebuild_parameter") {
    at(g).num = static_cast<int>(Global::RebuildParameter);
  } else if (full == "torchtext.vocab.vocab.Vocab" || full == "torchtext._torchtext.Vocab") {
    at(g).num = static_cast<int>(Global::TorchtextVocab);
  } else if (full == "builtins.set" || full == "__builtin__.set") {
    at(g).num = static_cast<int>(Global::Set);
  } else {
    const StorageTypeName* st = nullptr;
    for (const auto& t : kStorageTypes)
      if (module == "torch" && name == t.name) st = &t;
    if (!st) fail("refusing pickle global " + printable(full));
    at(g).num = static_cast<int>(Global::StorageType);
    at(g).dtype = st->dtype;
  }
  push(g);
}

void Unpickler::memo_put(std::uint32_t key) {
  if (memo_.size() >= kMaxMemo && !memo_.count(key))
    fail("pickle memo larger than " + std::to_string(kMaxMemo) + " entries");
  memo_[key] = top();
}

void Unpickler::memo_get(std::uint32_t key) {
  auto it = memo_.find(key);
  if (it == memo_.end()) malformed("memo key " + std::to_string(key) + " not found");
  push(it->second);
}

std::vector<std::int64_t> Unpickler::int_tuple(std::uint32_t v, const char* what) {
  if (at(v).kind != Kind::Tuple) malformed(std::string("tensor ") + what + " is a " + kind_name(at(v).kind));
  std::vector<std::int64_t> out;
  for (std::uint32_t i : at(v).items) {
    if (at(i).kind != Kind::Int) malformed(std::string("tensor ") + what + " holds a " + kind_name(at(i).kind));
    out.push_back(at(i).num);
  }
  return out;
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata]) and
// the pre-0.4 _rebuild_tensor(storage, storage_offset, size, stride).
void Unpickler::rebuild_tensor(const std::vector<std::uint32_t>& args, std::size_t min_args, std::size_t max_args) {
  if (args.size() < min_args || args.size() > max_args)
    malformed("tensor rebuilt from " + std::to_string(args.size()) + " arguments");
  if (at(args[0]).kind != Kind::Storage) malformed(std::string("tensor storage is a ") + kind_name(at(args[0]).kind));
  if (at(args[1]).kind != Kind::Int) malformed("tensor storage offset is not an int");
  TensorRef t;
  t.storage = args[0];
  t.storage_offset = at(args[1]).num;
  t.shape = int_tuple(args[2], "size");
  t.strides = int_tuple(args[3], "stride");
  if (t.shape.size() != t.strides.size()) malformed("tensor size and stride differ in length");
  std::uint32_t v = make(Kind::Tensor);
  at(v).num = static_cast<std::int64_t>(p_.tensors.size());
  p_.tensors.push_back(std::move(t));
  push(v);
}

// REDUCE / NEWOBJ: only the allowed globals can be called.
void Unpickler::call(std::uint32_t callable, std::uint32_t args_id) {
  if (at(callable).kind != Kind::Global) malformed(std::string("call of a ") + kind_name(at(callable).kind));
  if (at(args_id).kind != Kind::Tuple) malformed("call arguments are not a tuple");
  const std::vector<std::uint32_t> args = at(args_id).items;
  switch (static_cast<Global>(at(callable).num)) {
    case Global::OrderedDict:
      if (!args.empty()) malformed("OrderedDict called with arguments");
      return push_new(Kind::Dict);
    case Global::RebuildTensorV2: return rebuild_tensor(args, 6, 7);
    case Global::RebuildTensor: return rebuild_tensor(args, 4, 4);
    case Global::RebuildParameter:
      if (args.size() != 3 || at(args[0]).kind != Kind::Tensor) malformed("bad _rebuild_parameter arguments");
      return push(args[0]);
    case Global::TorchtextVocab: {
      if (!args.empty()) malformed("torchtext Vocab created with arguments");
      std::uint32_t object = make(Kind::Object);
      at(object).text = at(callable).text;
      return push(object);
    }
    case Global::Set:  // set() or set(list): its items, as a list
      if (args.size() > 1 || (args.size() == 1 && at(args[0]).kind != Kind::List)) malformed("bad set arguments");
      return push_container(Kind::List, args.empty() ? std::vector<std::uint32_t>{} : at(args[0]).items);
    case Global::StorageType: break;
  }
  fail("refusing to call pickle global " + printable(at(callable).text));
}

void Unpickler::persistent(std::uint32_t pid) {
  const Value& t = at(pid);
  auto item = [&](std::size_t i, Kind kind) -> const Value& {
    const Value& v = at(t.items[i]);
    if (v.kind != kind) malformed("persistent id item " + std::to_string(i) + " is a " + kind_name(v.kind));
    return v;
  };
  if (t.kind != Kind::Tuple || t.items.size() < 5 || t.items.size() > 6) malformed("persistent id is not a storage tuple");
  if (item(0, Kind::Str).text != "storage") malformed("persistent id is not a storage");
  const Value& type = item(1, Kind::Global);
  if (type.num != static_cast<int>(Global::StorageType)) malformed("persistent id names " + printable(type.text));
  StorageRef ref;
  ref.dtype = type.dtype;
  ref.key = item(2, Kind::Str).text;
  item(3, Kind::Str);
  ref.numel = item(4, Kind::Int).num;
  if (ref.numel < 0) malformed("negative storage size");
  if (t.items.size() == 6 && at(t.items[5]).kind != Kind::None) {
    const Value& view = item(5, Kind::Tuple);
    if (view.items.size() != 3 || at(view.items[1]).kind != Kind::Int || at(view.items[2]).kind != Kind::Int)
      malformed("bad storage view");
    ref.is_view = true;
    ref.view_offset = at(view.items[1]).num;
    ref.view_size = at(view.items[2]).num;
  }
  const std::int64_t index = load_(ref);
  std::uint32_t s = make(Kind::Storage);
  at(s).num = index;
  at(s).dtype = ref.dtype;
  push(s);
}

// Executes one opcode; false after STOP.
bool Unpickler::step(std::uint8_t op) {
  switch (op) {
    case 0x80: if (r_.u8("pickle protocol") > 5) malformed("unsupported protocol"); break;  // PROTO
    case 0x95: r_.u64("pickle frame"); break;                                                  // FRAME
    case '.': return false;                                                                    // STOP
    case '(':                                                                                  // MARK
      if (marks_.size() >= kMaxDepth) too_deep();
      marks_.push_back(stack_.size());
      break;
    case '0': pop(); break;                                                                    // POP
    case '1': pop_mark(); break;                                                               // POP_MARK
    case '2': push(top()); break;                                                              // DUP
    case 'N': push_new(Kind::None); break;
    case 0x88: case 0x89: push_new(Kind::Bool); at(stack_.back()).num = op == 0x88; break;     // NEWTRUE/NEWFALSE
    case 'J': push_int(static_cast<std::int32_t>(r_.u32("pickle integer"))); break;           // BININT
    case 'K': push_int(r_.u8("pickle integer")); break;                                        // BININT1
    case 'M': push_int(r_.u16("pickle integer")); break;                                       // BININT2
    case 0x8a: long_int(r_.u8("pickle integer")); break;                                       // LONG1
    case 0x8b: {                                                                               // LONG4
      const auto n = static_cast<std::int32_t>(r_.u32("pickle integer"));
      if (n < 0) malformed("negative integer length");
      long_int(static_cast<std::size_t>(n));
      break;
    }
    case 'I': text_int(false); break;                                                          // INT
    case 'L': text_int(true); break;                                                           // LONG
    case 'G': {                                                                                // BINFLOAT
      const std::uint8_t* p = r_.take(8, "pickle float");
      std::uint64_t bits = 0;
      for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
      push_new(Kind::Float);
      std::memcpy(&at(stack_.back()).real, &bits, 8);
      break;
    }
    case 'T': {                                                                                // BINSTRING
      const auto n = static_cast<std::int32_t>(r_.u32("pickle string"));
      if (n < 0) malformed("negative string length");
      push_text(Kind::Str, r_.take(static_cast<std::size_t>(n), "pickle string"), static_cast<std::size_t>(n));
      break;
    }
    case 'U': case 0x8c: {                                                                     // SHORT_BINSTRING/UNICODE
      std::size_t n = r_.u8("pickle string");
      push_text(Kind::Str, r_.take(n, "pickle string"), n);
      break;
    }
    case 'X': { std::size_t n = r_.u32("pickle string"); push_text(Kind::Str, r_.take(n, "pickle string"), n); break; }
    case 0x8d: {                                                                               // BINUNICODE8
      std::uint64_t n = r_.u64("pickle string");
      if (n > r_.remaining()) r_.take(r_.remaining() + 1, "pickle string");
      push_text(Kind::Str, r_.take(static_cast<std::size_t>(n), "pickle string"), static_cast<std::size_t>(n));
      break;
    }
    case 'B': { std::size_t n = r_.u32("pickle bytes"); push_text(Kind::Bytes, r_.take(n, "pickle bytes"), n); break; }
    case 'C': { std::size_t n = r_.u8("pickle bytes"); push_text(Kind::Bytes, r_.take(n, "pickle bytes"), n); break; }
    case 0x8e: {                                                                               // BINBYTES8
      std::uint64_t n = r_.u64("pickle bytes");
      if (n > r_.remaining()) r_.take(r_.remaining() + 1, "pickle bytes");
      push_text(Kind::Bytes, r_.take(static_cast<std::size_t>(n), "pickle bytes"), static_cast<std::size_t>(n));
      break;
    }
    case ')': push_new(Kind::Tuple); break;                                                    // EMPTY_TUPLE
    case 't': push_container(Kind::Tuple, pop_mark()); break;                                  // TUPLE
    case 0x85: case 0x86: case 0x87: {                                                         // TUPLE1-3
      std::vector<std::uint32_t> items(op - 0x84);
      for (std::size_t i = items.size(); i-- > 0;) items[i] = pop();
      push_container(Kind::Tuple, items);
      break;
    }
    case ']': push_new(Kind::List); break;                                                     // EMPTY_LIST
    case 'l': push_container(Kind::List, pop_mark()); break;                                   // LIST
    case 'a': { std::uint32_t v = pop(); add(container_on_top(Kind::List, "APPEND"), {v}); break; }
    case 'e': { auto items = pop_mark(); add(container_on_top(Kind::List, "APPENDS"), items); break; }
    case '}': push_new(Kind::Dict); break;                                                     // EMPTY_DICT
    case 'd': push_dict(pop_mark()); break;                                                    // DICT
    case 's': {                                                                                // SETITEM
      std::uint32_t v = pop(), k = pop();
      add(container_on_top(Kind::Dict, "SETITEM"), {k, v});
      break;
    }
    case 'u': {                                                                                // SETITEMS
      auto items = pop_mark();
      if (items.size() % 2) malformed("odd number of dict items");
      add(container_on_top(Kind::Dict, "SETITEMS"), items);
      break;
    }
    case 'c': { std::string module = line("pickle global"); global(module, line("pickle global")); break; }
    case 0x93: {                                                                               // STACK_GLOBAL
      std::uint32_t name = pop(), module = pop();
      if (at(name).kind != Kind::Str || at(module).kind != Kind::Str) malformed("STACK_GLOBAL of non-strings");
      global(at(module).text, at(name).text);
      break;
    }
    case 'R': case 0x81: { std::uint32_t args = pop(); call(pop(), args); break; }             // REDUCE/NEWOBJ
    case 'b': {                                                                                // BUILD
      std::uint32_t state = pop();  // OrderedDict: its _metadata attribute, ignored; Object: its state
      if (at(top()).kind == Kind::Object) {
        if (!at(top()).items.empty()) malformed("object built twice");
        add(top(), {state});
      } else if (at(top()).kind != Kind::Dict) {
        malformed(std::string("BUILD on a ") + kind_name(at(top()).kind));
      }
      break;
    }
    case 'q': memo_put(r_.u8("pickle memo key")); break;                                      // BINPUT
    case 'r': memo_put(r_.u32("pickle memo key")); break;                                     // LONG_BINPUT
    case 0x94: memo_put(static_cast<std::uint32_t>(memo_.size())); break;                     // MEMOIZE
    case 'h': memo_get(r_.u8("pickle memo key")); break;                                      // BINGET
    case 'j': memo_get(r_.u32("pickle memo key")); break;                                     // LONG_BINGET
    case 'Q': persistent(pop()); break;                                                        // BINPERSID
    case 'P': line("persistent id"); malformed("text persistent id");                          // PERSID
    default: {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", op);
      fail(std::string("unsupported pickle opcode ") + hex + " at offset " + std::to_string(op_pos_));
    }
  }
  return true;
}

Pickle Unpickler::run() {
  do {
    op_pos_ = r_.pos();
  } while (step(r_.u8("pickle")));
  p_.root = pop();
  return std::move(p_);
}

// Finds the name -> tensor mapping: the root dict, or its "state_dict" / "model_state_dict" / "model" dict.
std::uint32_t state_dict_root(const Pickle& p, const std::string& file) {
  const Value& root = p[p.root];
  if (root.kind != Kind::Dict) detail::fail(file, std::string("checkpoint holds a ") + kind_name(root.kind) + ", not a state dict");
  for (const char* key : {"state_dict", "model_state_dict", "model"})
    for (std::size_t i = 0; i + 1 < root.items.size(); i += 2)
      if (p[root.items[i]].kind == Kind::Str && p[root.items[i]].text == key && p[root.items[i + 1]].kind == Kind::Dict)
        return root.items[i + 1];
  return p.root;
}

}  // namespace

Pickle unpickle(detail::Reader& r, const StorageLoader& load) { return Unpickler(r, load).run(); }

Description describe_state_dict(Format format, const Pickle& p, const std::vector<StorageSpan>& storages,
                                std::size_t file_size, const std::string& file) {
  Description desc{format, {}};
  std::vector<std::string> storage_names;
  const Value& dict = p[state_dict_root(p, file)];
  for (std::size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    const Value& key = p[dict.items[i]];
    const Value& value = p[dict.items[i + 1]];
    if (key.kind != Kind::Str) detail::fail(file, std::string("state dict key is a ") + kind_name(key.kind));
    if (value.kind != Kind::Tensor)
      detail::fail(file, "entry " + printable(key.text) + " is not a tensor (" + kind_name(value.kind) + ")");
    const TensorRef& t = p.tensors[static_cast<std::size_t>(value.num)];
    const StorageSpan& s = storages.at(static_cast<std::size_t>(p[t.storage].num));
    TensorDesc d;
    d.name = key.text;
    d.dtype = s.dtype;
    d.shape = t.shape;
    d.strides = t.strides;
    d.storage_offset = t.storage_offset;
    d.data_offset = s.offset;
    d.data_size = s.size;
    desc.tensors.push_back(std::move(d));
    storage_names.push_back(s.name);
  }
  detail::validate(desc, storage_names, file_size, file);
  return desc;
}

TorchtextVocab describe_torchtext_vocab(const Pickle& p, const std::string& file) {
  auto bad = [&](const std::string& why) -> void { detail::fail(file, "not a torchtext Vocab: " + why); };
  auto state_of = [&](const Value& v, const char* cls) -> const Value& {
    if (v.kind != Kind::Object || v.text != cls || v.items.size() != 1)
      bad(std::string("expected a built ") + cls + ", found a " + kind_name(v.kind) + " " + printable(v.text));
    return p[v.items[0]];
  };
  const Value& module = state_of(p[p.root], "torchtext.vocab.vocab.Vocab");
  if (module.kind != Kind::Dict) bad("the module's state is a " + std::string(kind_name(module.kind)));
  const Value* inner = nullptr;
  for (std::size_t i = 0; i + 1 < module.items.size(); i += 2)
    if (p[module.items[i]].kind == Kind::Str && p[module.items[i]].text == "vocab") inner = &p[module.items[i + 1]];
  if (!inner) bad("the module has no 'vocab' attribute");
  const Value& state = state_of(*inner, "torchtext._torchtext.Vocab");
  if (state.kind != Kind::Tuple || state.items.size() != 4) bad("its state is not a 4-tuple");
  const Value& version = p[state.items[0]];
  const Value& integers = p[state.items[1]];
  const Value& strings = p[state.items[2]];
  const Value& tensors = p[state.items[3]];
  if (version.kind != Kind::Str || version.text < "0.0.2") bad("unsupported version " + printable(version.text));
  if (integers.kind != Kind::List || integers.items.size() > 1) bad("its integers are not a list of at most one");
  if (strings.kind != Kind::List) bad("its tokens are not a list");
  if (tensors.kind != Kind::List || !tensors.items.empty()) bad("its tensors are not an empty list");
  TorchtextVocab out;
  if (!integers.items.empty()) {
    if (p[integers.items[0]].kind != Kind::Int) bad("its default index is not an int");
    out.has_default_index = true;
    out.default_index = p[integers.items[0]].num;
  }
  out.itos.reserve(strings.items.size());
  for (std::uint32_t i : strings.items) {
    if (p[i].kind != Kind::Str) bad(std::string("a token is a ") + kind_name(p[i].kind));
    out.itos.push_back(p[i].text);
  }
  if (out.has_default_index && (out.default_index < 0 || out.default_index >= static_cast<std::int64_t>(out.itos.size())))
    bad("default index " + std::to_string(out.default_index) + " is outside its " + std::to_string(out.itos.size()) +
        " tokens");
  return out;
}

}  // namespace mz::formats::pickle
