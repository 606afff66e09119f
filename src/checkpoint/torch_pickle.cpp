// The state-dict pickle reader: a stack machine over the opcodes torch.save emits (protocol 2,
// plus protocol 4's FRAME/MEMOIZE/STACK_GLOBAL/SHORT_BINUNICODE, which are data only). Calls
// (REDUCE) are allowed on an allow-list of three globals and evaluated here, by us, into plain
// records; nothing is ever looked up by name. In Checkpoint mode any other global is a name only:
// calling it (REDUCE, NEWOBJ) makes an opaque object that keeps its BUILD state, never code run.
// Opcode semantics: CPython Lib/pickle.py, pickletools.
#include "checkpoint/torch_pickle.h"

#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <unordered_set>

namespace cs {

namespace {

// Pickle values the reader can hold. Dict keeps (key, value) pairs in insertion order. All values
// live in the Reader's arena and refer to each other by raw pointer, so shared, cyclic or deeply
// nested values (possible in a hostile pickle) cost nothing special to build or free.
struct Value;
using ValuePtr = Value*;
enum class Kind { None, Bool, Int, Str, Tuple, List, Dict, Global, Storage, Tensor, Float, Bytes, Object };
enum class Callable { None, OrderedDict, RebuildTensor, RebuildParameter, StorageType, Opaque };

struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;                       // Bool, Int
  double f = 0;                        // Float
  std::string s;                       // Str; Global: "module.name"; Object: the global that made it
  std::vector<ValuePtr> items;         // Tuple, List; Dict: key, value, key, value, ...
  ValuePtr attrs = nullptr;            // Object: its BUILD state (a Dict), shared, never copied
  ValuePtr args = nullptr;             // Object: the arguments it was made with (a Tuple)
  Callable callable = Callable::None;  // Global
  DType dtype = DType::F32;            // Global (a storage type), Storage, Tensor
  TorchTensorRecord rec;               // Storage: key and numel; Tensor: all but name
};

const char* kind_name(Kind k) {
  static const char* names[] = {"None",   "bool",   "int",   "str",   "tuple",  "list",  "dict",
                                "global", "storage", "tensor", "float", "bytes", "object"};
  return names[int(k)];
}

// Every pickle opcode's name, so a refusal can say which one it met.
const char* opcode_name(uint8_t op) {
  // clang-format off
  static const std::pair<uint8_t, const char*> table[] = {
      {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"}, {'F', "FLOAT"},
      {'I', "INT"}, {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"}, {'M', "BININT2"},
      {'N', "NONE"}, {'P', "PERSID"}, {'Q', "BINPERSID"}, {'R', "REDUCE"}, {'S', "STRING"},
      {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"}, {'V', "UNICODE"}, {'X', "BINUNICODE"},
      {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"}, {'}', "EMPTY_DICT"},
      {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"}, {'j', "LONG_BINGET"},
      {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"}, {'q', "BINPUT"},
      {'r', "LONG_BINPUT"}, {'s', "SETITEM"}, {'t', "TUPLE"}, {')', "EMPTY_TUPLE"},
      {'u', "SETITEMS"}, {'G', "BINFLOAT"}, {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"},
      {0x80, "PROTO"}, {0x81, "NEWOBJ"}, {0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"},
      {0x85, "TUPLE1"}, {0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {0x88, "NEWTRUE"},
      {0x89, "NEWFALSE"}, {0x8a, "LONG1"}, {0x8b, "LONG4"}, {0x8c, "SHORT_BINUNICODE"},
      {0x8d, "BINUNICODE8"}, {0x8e, "BINBYTES8"}, {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"},
      {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"}, {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"},
      {0x95, "FRAME"}, {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"}};
  // clang-format on
  for (const auto& [code, name] : table)
    if (code == op) return name;
  return nullptr;
}

// clang-format off
// The opcodes the reader handles (names as in CPython's pickletools).
enum : uint8_t {
  kMark = '(', kStop = '.', kBinInt = 'J', kBinInt1 = 'K', kBinInt2 = 'M', kNone = 'N',
  kBinPersId = 'Q', kReduce = 'R', kBinUnicode = 'X', kAppend = 'a', kBuild = 'b', kGlobal = 'c',
  kEmptyDict = '}', kAppends = 'e', kBinGet = 'h', kLongBinGet = 'j', kEmptyList = ']',
  kBinPut = 'q', kLongBinPut = 'r', kSetItem = 's', kTuple = 't', kEmptyTuple = ')',
  kSetItems = 'u', kProto = 0x80, kTuple1 = 0x85, kTuple2 = 0x86, kTuple3 = 0x87,
  kNewTrue = 0x88, kNewFalse = 0x89, kLong1 = 0x8a, kShortBinUnicode = 0x8c,
  kStackGlobal = 0x93, kMemoize = 0x94, kFrame = 0x95,
  // Checkpoint mode only:
  kBinFloat = 'G', kShortBinBytes = 'C', kBinBytes = 'B', kBinBytes8 = 0x8e, kByteArray8 = 0x96,
  kBinUnicode8 = 0x8d, kShortBinString = 'U', kBinString = 'T', kLong4 = 0x8b, kNewObj = 0x81,
  kNewObjEx = 0x92, kPop = '0', kDup = '2', kPopMark = '1', kList = 'l', kDict = 'd',
  kEmptySet = 0x8f, kAddItems = 0x90, kFrozenSet = 0x91,
};
// clang-format on

// The storage types torch.save names, and the dtype of their elements.
bool storage_dtype(const std::string& name, DType* t) {
  static const std::pair<const char*, DType> table[] = {
      {"FloatStorage", DType::F32},     {"DoubleStorage", DType::F64}, {"HalfStorage", DType::F16},
      {"BFloat16Storage", DType::BF16}, {"LongStorage", DType::I64},   {"IntStorage", DType::I32},
      {"ShortStorage", DType::I16},     {"CharStorage", DType::I8},    {"ByteStorage", DType::U8},
      {"BoolStorage", DType::U8}};
  for (const auto& [n, dt] : table)
    if (name == n) {
      *t = dt;
      return true;
    }
  return false;
}

class Reader {
 public:
  Reader(const uint8_t* p, uint64_t n, const std::string& where, PickleMode mode)
      : p_(p), n_(n), where_(where), mode_(mode) {}
  ValuePtr run();

 private:
  [[noreturn]] void fail(const std::string& what, const std::string& hint) const {
    throw Error("[torch_pickle] " + where_ + ": byte " + std::to_string(op_at_) + ": " + what +
                ". Hint: " + hint);
  }
  [[noreturn]] void corrupt(const std::string& what) const {
    fail(what, "data.pkl is truncated or corrupt; re-download or re-save the checkpoint");
  }
  const uint8_t* take(uint64_t k) {
    if (n_ - at_ < k) corrupt("pickle ends inside an opcode's argument");
    const uint8_t* q = p_ + at_;
    at_ += k;
    return q;
  }
  uint64_t uint(int k) {
    const uint8_t* q = take(uint64_t(k));
    uint64_t v = 0;
    for (int j = k - 1; j >= 0; --j) v = (v << 8) | q[j];
    return v;
  }
  std::string line();  // GLOBAL's newline-terminated arguments
  ValuePtr make(Kind k) {
    arena_.push_back(std::make_unique<Value>());
    arena_.back()->kind = k;
    return arena_.back().get();
  }
  ValuePtr make_int(int64_t x) {
    ValuePtr v = make(Kind::Int);
    v->i = x;
    return v;
  }
  void push(ValuePtr v) { stack_.push_back(v); }
  ValuePtr pop();
  ValuePtr top();
  std::vector<ValuePtr> pop_mark();
  ValuePtr tuple(std::vector<ValuePtr> items);
  ValuePtr global(const std::string& module, const std::string& name);
  ValuePtr reduce(const Value& f, const Value& args);
  ValuePtr object_of(const Value& cls, ValuePtr args);
  ValuePtr integer(uint64_t nbytes);  // LONG1 / LONG4's little-endian two's complement
  bool checkpoint_only(uint8_t op) const;
  [[noreturn]] void refuse_opcode(uint8_t op) const;
  ValuePtr persistent_load(const Value& pid);
  int64_t as_int(const Value& v, const char* what) const;
  std::vector<int64_t> as_ints(const Value& v, const char* what) const;

  const uint8_t* p_;
  uint64_t n_, at_ = 0, op_at_ = 0;
  std::string where_;
  PickleMode mode_;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValuePtr> memo_;
  std::vector<std::unique_ptr<Value>> arena_;  // owns every value
};

std::string Reader::line() {
  for (uint64_t k = at_; k < n_; ++k)
    if (p_[k] == '\n') {
      std::string s(reinterpret_cast<const char*>(p_ + at_), k - at_);
      at_ = k + 1;
      return s;
    }
  corrupt("GLOBAL argument has no terminating newline");
}

ValuePtr Reader::pop() {
  if (stack_.empty() || (!marks_.empty() && stack_.size() == marks_.back()))
    corrupt("stack underflow");
  ValuePtr v = stack_.back();
  stack_.pop_back();
  return v;
}

ValuePtr Reader::top() {
  if (stack_.empty() || (!marks_.empty() && stack_.size() == marks_.back()))
    corrupt("stack underflow");
  return stack_.back();
}

std::vector<ValuePtr> Reader::pop_mark() {
  if (marks_.empty()) corrupt("no MARK to pop to");
  std::vector<ValuePtr> items(stack_.begin() + std::ptrdiff_t(marks_.back()), stack_.end());
  stack_.resize(marks_.back());
  marks_.pop_back();
  return items;
}

ValuePtr Reader::tuple(std::vector<ValuePtr> items) {
  ValuePtr t = make(Kind::Tuple);
  t->items = std::move(items);
  return t;
}

ValuePtr Reader::global(const std::string& module, const std::string& name) {
  ValuePtr g = make(Kind::Global);
  g->s = module + "." + name;
  if (module == "collections" && name == "OrderedDict") {
    g->callable = Callable::OrderedDict;
  } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
    g->callable = Callable::RebuildTensor;
  } else if (module == "torch._utils" && name == "_rebuild_parameter") {
    g->callable = Callable::RebuildParameter;
  } else if (module == "torch" && storage_dtype(name, &g->dtype)) {
    g->callable = Callable::StorageType;
  } else if (mode_ == PickleMode::Checkpoint) {
    g->callable = Callable::Opaque;  // a name: torch.bfloat16, argparse.Namespace, numpy's arrays, ...
  } else {
    fail("global '" + module + " " + name + "' is not allowed (a state dict references only " +
             "collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
             "torch._utils._rebuild_parameter and torch.<Float|Half|BFloat16|...>Storage)",
         "this is not a plain state dict saved by torch.save, or it is malicious; do not load it "
         "with torch.load either");
  }
  return g;
}

int64_t Reader::as_int(const Value& v, const char* what) const {
  if (v.kind != Kind::Int || v.i < 0)
    corrupt(std::string(what) + ": got " +
            (v.kind == Kind::Int ? std::to_string(v.i) : kind_name(v.kind)) +
            ", expected a non-negative int");
  return v.i;
}

std::vector<int64_t> Reader::as_ints(const Value& v, const char* what) const {
  if (v.kind != Kind::Tuple)
    corrupt(std::string(what) + ": got a " + kind_name(v.kind) + ", expected a tuple");
  std::vector<int64_t> out;
  for (const auto& x : v.items) out.push_back(as_int(*x, what));
  return out;
}

// ('storage', <storage type>, key, location, numel) -> a Storage value.
ValuePtr Reader::persistent_load(const Value& pid) {
  const auto& t = pid.items;
  if (pid.kind != Kind::Tuple || t.size() != 5 || t[0]->kind != Kind::Str || t[0]->s != "storage" ||
      t[1]->kind != Kind::Global || t[1]->callable != Callable::StorageType ||
      t[2]->kind != Kind::Str || t[3]->kind != Kind::Str)
    corrupt("persistent id is not ('storage', torch.<T>Storage, key, location, numel)");
  ValuePtr s = make(Kind::Storage);
  s->dtype = t[1]->dtype;
  s->rec.storage_key = t[2]->s;
  s->rec.storage_numel = as_int(*t[4], "storage numel");
  if (s->rec.storage_key.empty() || s->rec.storage_key.find('/') != std::string::npos)
    corrupt("storage key '" + s->rec.storage_key + "' is not a plain name");
  return s;
}

// The three calls a state dict makes, evaluated into values.
ValuePtr Reader::object_of(const Value& cls, ValuePtr args) {
  if (cls.kind != Kind::Global)
    corrupt(std::string("an instance of a ") + kind_name(cls.kind) + ", expected of a global");
  ValuePtr o = make(Kind::Object);
  o->s = cls.s;
  o->args = args;  // an enum member's value, torch.Size's dims, ...
  return o;
}

ValuePtr Reader::integer(uint64_t k) {
  if (k > 8) {  // Python's big ints (a random.getstate() word never is); kept as a name
    take(k);
    ValuePtr o = make(Kind::Object);
    o->s = "big int";
    return o;
  }
  uint64_t v = k ? uint(int(k)) : 0;
  if (k && k < 8 && (v >> (8 * k - 1)) & 1) v |= ~uint64_t(0) << (8 * k);  // sign-extend
  return make_int(int64_t(v));
}

ValuePtr Reader::reduce(const Value& f, const Value& args) {
  if (f.kind == Kind::Global && f.callable == Callable::Opaque) {
    if (args.kind != Kind::Tuple) corrupt("REDUCE arguments are not a tuple");
    return object_of(f, const_cast<ValuePtr>(&args));  // values live in the arena
  }
  if (f.kind != Kind::Global)
    corrupt(std::string("REDUCE of a ") + kind_name(f.kind) + ", expected a global");
  if (args.kind != Kind::Tuple) corrupt("REDUCE arguments are not a tuple");
  const auto& a = args.items;
  switch (f.callable) {
    case Callable::OrderedDict:
      if (!a.empty()) corrupt("collections.OrderedDict called with arguments, expected none");
      return make(Kind::Dict);
    case Callable::RebuildTensor: {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (a.size() != 6 && a.size() != 7)
        corrupt("_rebuild_tensor_v2 got " + std::to_string(a.size()) +
                " arguments, expected 6 or 7");
      if (a[0]->kind != Kind::Storage)
        corrupt("_rebuild_tensor_v2's first argument is not a storage");
      if (a[4]->kind != Kind::Bool) corrupt("_rebuild_tensor_v2's requires_grad is not a bool");
      if (a[5]->kind != Kind::Dict ||
          (a.size() == 7 && a[6]->kind != Kind::Dict && a[6]->kind != Kind::None))
        corrupt("_rebuild_tensor_v2's backward_hooks or metadata is not a dict");
      ValuePtr t = make(Kind::Tensor);
      t->rec = a[0]->rec;
      t->rec.dtype = a[0]->dtype;
      t->rec.storage_offset = as_int(*a[1], "storage offset");
      t->rec.sizes = as_ints(*a[2], "tensor size");
      t->rec.strides = as_ints(*a[3], "tensor stride");
      if (t->rec.sizes.size() != t->rec.strides.size())
        corrupt("tensor has " + std::to_string(t->rec.sizes.size()) + " sizes but " +
                std::to_string(t->rec.strides.size()) + " strides");
      return t;
    }
    case Callable::RebuildParameter:
      // (data, requires_grad, backward_hooks): a Parameter is its tensor.
      if (a.size() != 3 || a[0]->kind != Kind::Tensor || a[1]->kind != Kind::Bool ||
          a[2]->kind != Kind::Dict)
        corrupt("_rebuild_parameter arguments are not (tensor, bool, dict)");
      return a[0];
    default:
      fail("call of global '" + f.s + "' is not allowed (storages appear only in persistent ids)",
           "this is not a plain state dict saved by torch.save");
  }
}

bool Reader::checkpoint_only(uint8_t op) const {
  static const uint8_t ops[] = {kBinFloat,  kShortBinBytes, kBinBytes, kBinBytes8,      kByteArray8,
                                kBinUnicode8, kShortBinString, kBinString, kLong4,     kNewObj,
                                kNewObjEx,  kPop,           kDup,      kPopMark,        kList,
                                kDict,      kEmptySet,      kAddItems, kFrozenSet};
  return std::memchr(ops, op, sizeof ops) != nullptr;
}

void Reader::refuse_opcode(uint8_t op) const {
  const char* name = opcode_name(op);
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02x", op);
  fail(std::string("opcode ") + (name ? name : "(unknown)") + " (" + hex + ") is not one " +
           "torch.save emits for a state dict",
       "this is not a plain state dict saved by torch.save, or it is malicious; do not "
       "load it with torch.load either");
}

// One line per simple opcode: the dispatch reads as the table it is.
// clang-format off
ValuePtr Reader::run() {
  while (true) {
    op_at_ = at_;
    const uint8_t op = uint8_t(uint(1));
    if (mode_ == PickleMode::StateDict && checkpoint_only(op)) refuse_opcode(op);
    switch (op) {
      case kProto: {
        uint64_t v = uint(1);
        if (v < 2 || v > 5) corrupt("pickle protocol " + std::to_string(v) + ", expected 2 to 5");
        break;
      }
      case kFrame: uint(8); break;  // a length hint only
      case kEmptyDict: push(make(Kind::Dict)); break;
      case kEmptyList: push(make(Kind::List)); break;
      case kEmptyTuple: push(make(Kind::Tuple)); break;
      case kNone: push(make(Kind::None)); break;
      case kNewTrue:
      case kNewFalse: {
        ValuePtr b = make(Kind::Bool);
        b->i = op == kNewTrue;
        push(b);
        break;
      }
      case kMark: marks_.push_back(stack_.size()); break;
      case kBinInt: push(make_int(int32_t(uint32_t(uint(4))))); break;
      case kBinInt1: push(make_int(int64_t(uint(1)))); break;
      case kBinInt2: push(make_int(int64_t(uint(2)))); break;
      case kLong1: {  // n-byte two's complement, little-endian
        uint64_t k = uint(1);
        if (k > 8 && mode_ == PickleMode::StateDict)
          corrupt("LONG1 of " + std::to_string(k) + " bytes, expected at most 8");
        push(integer(k));
        break;
      }
      case kLong4: push(integer(uint(4))); break;
      case kBinFloat: {  // big-endian IEEE double
        const uint64_t bits = [&] { uint64_t b = 0; for (const uint8_t* q = take(8), *e = q + 8; q < e; ++q) b = (b << 8) | *q; return b; }();
        ValuePtr x = make(Kind::Float);
        std::memcpy(&x->f, &bits, sizeof bits);
        push(x);
        break;
      }
      case kShortBinBytes: take(uint(1)); push(make(Kind::Bytes)); break;
      case kBinBytes: take(uint(4)); push(make(Kind::Bytes)); break;
      case kBinBytes8:
      case kByteArray8: take(uint(8)); push(make(Kind::Bytes)); break;
      case kNewObj: {
        ValuePtr args = pop(), cls = pop();
        if (args->kind != Kind::Tuple) corrupt("NEWOBJ arguments are not a tuple");
        push(object_of(*cls, args));
        break;
      }
      case kNewObjEx: {
        ValuePtr kwargs = pop(), args = pop(), cls = pop();
        if (args->kind != Kind::Tuple || kwargs->kind != Kind::Dict)
          corrupt("NEWOBJ_EX arguments are not a tuple and a dict");
        push(object_of(*cls, args));
        break;
      }
      case kPop: pop(); break;
      case kDup: push(top()); break;
      case kPopMark: pop_mark(); break;

      case kDict: {
        ValuePtr d = make(Kind::Dict);
        d->items = pop_mark();
        if (d->items.size() % 2) corrupt("DICT with an odd number of items");
        push(d);
        break;
      }
      case kEmptySet: push(make(Kind::List)); break;  // a set's items, as a list
      case kList:
      case kFrozenSet: {
        ValuePtr l = make(Kind::List);
        l->items = pop_mark();
        push(l);
        break;
      }
      case kAddItems: {
        std::vector<ValuePtr> xs = pop_mark();
        ValuePtr set = top();
        if (set->kind != Kind::List) corrupt(std::string("ADDITEMS on a ") + kind_name(set->kind));
        set->items.insert(set->items.end(), xs.begin(), xs.end());
        break;
      }
      case kBinUnicode8:
      case kBinString:
      case kShortBinString:
      case kBinUnicode:
      case kShortBinUnicode: {
        uint64_t k = uint(op == kBinUnicode8 ? 8 : op == kBinUnicode || op == kBinString ? 4 : 1);
        ValuePtr s = make(Kind::Str);
        s->s.assign(reinterpret_cast<const char*>(take(k)), k);
        push(s);
        break;
      }
      case kTuple: push(tuple(pop_mark())); break;
      case kTuple1:
      case kTuple2:
      case kTuple3: {
        std::vector<ValuePtr> items(size_t(op - kTuple1 + 1));
        for (size_t k = items.size(); k-- > 0;) items[k] = pop();
        push(tuple(std::move(items)));
        break;
      }
      case kGlobal: {  // "module\nname\n"
        std::string module = line();
        push(global(module, line()));
        break;
      }
      case kStackGlobal: {
        ValuePtr name = pop(), module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str)
          corrupt("STACK_GLOBAL of non-strings");
        push(global(module->s, name->s));
        break;
      }
      case kBinPersId: push(persistent_load(*pop())); break;
      case kReduce: {
        ValuePtr args = pop(), f = pop();
        push(reduce(*f, *args));
        break;
      }
      case kBuild: {  // an OrderedDict's __dict__ (state_dict()._metadata), which we drop
        ValuePtr state = pop();
        if (mode_ == PickleMode::Checkpoint && top()->kind == Kind::Object) {
          // An object's attributes: its state dict, or the first of (dict, slots); others dropped.
          if (state->kind == Kind::Tuple && state->items.size() == 2) state = state->items[0];
          if (state->kind == Kind::Dict) top()->attrs = state;
          break;
        }
        if (mode_ == PickleMode::Checkpoint && top()->kind == Kind::Dict) break;
        if (top()->kind != Kind::Dict || (state->kind != Kind::Dict && state->kind != Kind::None))
          corrupt(std::string("BUILD of a ") + kind_name(top()->kind) + " with a " +
                  kind_name(state->kind) + " state, expected an OrderedDict with a dict state");
        break;
      }
      case kSetItem:
      case kSetItems: {
        std::vector<ValuePtr> kv;
        if (op == kSetItems) {
          kv = pop_mark();
        } else {
          ValuePtr v = pop(), k = pop();
          kv = {k, v};
        }
        if (kv.size() % 2) corrupt("SETITEMS with an odd number of items");
        ValuePtr d = top();
        if (d->kind != Kind::Dict) corrupt(std::string("SETITEM on a ") + kind_name(d->kind));
        d->items.insert(d->items.end(), kv.begin(), kv.end());
        break;
      }
      case kAppend:
      case kAppends: {
        std::vector<ValuePtr> xs = op == kAppends ? pop_mark() : std::vector<ValuePtr>{pop()};
        ValuePtr l = top();
        if (l->kind != Kind::List) corrupt(std::string("APPEND on a ") + kind_name(l->kind));
        l->items.insert(l->items.end(), xs.begin(), xs.end());
        break;
      }
      case kBinPut: memo_[uint(1)] = top(); break;
      case kLongBinPut: memo_[uint(4)] = top(); break;
      case kMemoize: memo_[memo_.size()] = top(); break;
      case kBinGet:
      case kLongBinGet: {
        uint64_t k = uint(op == kBinGet ? 1 : 4);
        auto it = memo_.find(k);
        if (it == memo_.end()) corrupt("memo key " + std::to_string(k) + " was never stored");
        push(it->second);
        break;
      }
      case kStop:
        if (stack_.size() != 1 || !marks_.empty())
          corrupt("STOP with " + std::to_string(stack_.size()) +
                  " values on the stack, expected 1");
        if (at_ != n_) corrupt(std::to_string(n_ - at_) + " bytes after STOP");
        return stack_.back();
      default: refuse_opcode(op);
    }
  }
}

// clang-format on

// Checkpoint mode's tree walk: tensors and scalars by dotted path (torch_pickle.h). Paths are
// built in one string, appended to and cut back, so a deep tree costs its size, not its depth
// squared.
class Flattener {
 public:
  Flattener(const std::string& where, const TorchObjectLimits& limits) : where_(where), limits_(limits) {}
  void walk(const Value& v, std::string& path, int depth);
  TorchObject out;

 private:
  void child(const Value& v, std::string& path, const std::string& key, int depth) {
    const size_t at = path.size();
    if (!path.empty()) path += '.';
    path += key;
    walk(v, path, depth + 1);
    path.resize(at);
  }
  void scalar(const std::string& path, TorchScalar::Kind k, int64_t i, double f, std::string s) {
    count(path);
    TorchScalar& x = out.scalars[path];
    x.kind = k;
    x.i = i;
    x.f = f;
    x.s = std::move(s);
  }
  // Every leaf keeps its path: a small hostile pickle (a long key over many entries) could ask
  // for far more memory than it has bytes, so the leaves and their names are bounded.
  void count(const std::string& path) {
    name_bytes_ += path.size();
    if (++leaves_ > limits_.leaves || name_bytes_ > limits_.name_bytes)
      throw Error("[torch_pickle] " + where_ + ": more than " + std::to_string(limits_.leaves) + " values or " +
                  std::to_string(limits_.name_bytes) + " bytes of their names. Hint: this is not a training checkpoint");
  }
  std::string where_;
  TorchObjectLimits limits_;
  std::unordered_set<const Value*> seen_;
  uint64_t leaves_ = 0, name_bytes_ = 0;
};

void Flattener::walk(const Value& v, std::string& path, int depth) {
  // Deeper than any checkpoint nests (Megatron's is 6 at most), as a hostile pickle could make
  // a value contain itself a million times over.
  if (depth > 64)
    throw Error("[torch_pickle] " + where_ + ": '" + path.substr(0, 200) +
                "' nests more than 64 levels deep. Hint: this is not a training checkpoint");
  using K = TorchScalar::Kind;
  switch (v.kind) {
    case Kind::Tensor:
      count(path);
      out.tensors.push_back(v.rec);
      out.tensors.back().name = path;
      return;
    case Kind::None: return scalar(path, K::None, 0, 0, "");
    case Kind::Bool: return scalar(path, K::Bool, v.i, 0, "");
    case Kind::Int: return scalar(path, K::Int, v.i, 0, "");
    case Kind::Float: return scalar(path, K::Float, 0, v.f, "");
    case Kind::Str: return scalar(path, K::Str, 0, 0, v.s);
    case Kind::Bytes: return scalar(path, K::Other, 0, 0, "bytes");
    case Kind::Global:
    case Kind::Storage: return scalar(path, K::Other, 0, 0, v.s.empty() ? kind_name(v.kind) : v.s);
    case Kind::Object:  // its name, its attributes under its path, its arguments under __args__
      scalar(path, K::Other, 0, 0, v.s);
      if (!seen_.insert(&v).second) return;
      if (v.attrs) walk(*v.attrs, path, depth + 1);
      if (v.args && !v.args->items.empty()) child(*v.args, path, "__args__", depth);
      return;
    case Kind::Dict:
      if (!seen_.insert(&v).second) return;
      for (size_t k = 0; k + 1 < v.items.size(); k += 2) {
        const Value& key = *v.items[k];
        if (key.kind == Kind::Str) child(*v.items[k + 1], path, key.s, depth);
        else if (key.kind == Kind::Int) child(*v.items[k + 1], path, std::to_string(key.i), depth);
      }
      return;
    case Kind::List:
    case Kind::Tuple:
      if (!seen_.insert(&v).second) return;
      for (size_t k = 0; k < v.items.size(); ++k) child(*v.items[k], path, std::to_string(k), depth);
      return;
  }
}

}  // namespace

TorchObject parse_torch_checkpoint(const uint8_t* data, uint64_t size, const std::string& where,
                                   const TorchObjectLimits& limits) {
  Reader r(data, size, where, PickleMode::Checkpoint);
  ValuePtr root = r.run();
  if (root->kind != Kind::Dict)
    throw Error("[torch_pickle] " + where + ": top-level object is a " + kind_name(root->kind) +
                ", expected a dict. Hint: a training checkpoint (torch.save of a dict) was expected");
  Flattener f(where, limits);
  std::string path;
  f.walk(*root, path, 0);
  return std::move(f.out);
}

std::vector<TorchTensorRecord> parse_torch_pickle(const uint8_t* data, uint64_t size,
                                                  const std::string& where) {
  Reader r(data, size, where, PickleMode::StateDict);
  ValuePtr root = r.run();
  const std::string hint =
      "the file must hold a state dict (name -> tensor), e.g. model.state_dict()";
  if (root->kind != Kind::Dict)
    throw Error("[torch_pickle] " + where + ": top-level object is a " + kind_name(root->kind) +
                ", expected a dict of tensors. Hint: " + hint);
  std::vector<TorchTensorRecord> out;
  for (size_t k = 0; k + 1 < root->items.size(); k += 2) {
    const Value& key = *root->items[k];
    const Value& val = *root->items[k + 1];
    if (key.kind != Kind::Str)
      throw Error("[torch_pickle] " + where + ": state-dict key is a " + kind_name(key.kind) +
                  ", expected a str. Hint: " + hint);
    if (val.kind != Kind::Tensor)
      throw Error("[torch_pickle] " + where + ": entry '" + key.s + "' is a " +
                  kind_name(val.kind) + ", expected a tensor. Hint: " + hint);
    out.push_back(val.rec);
    out.back().name = key.s;
  }
  return out;
}

}  // namespace cs
