#include "core/safetensors.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/file_io.h"

namespace dense {

namespace {

const char* st_dtype(DType t) {
  switch (t) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
  }
  return "?";
}

DType parse_st_dtype(const std::string& s, const std::string& where) {
  for (DType t : {DType::F64, DType::F32, DType::BF16, DType::F16, DType::I64, DType::I32, DType::I8, DType::U8})
    if (s == st_dtype(t)) return t;
  DENSE_FAIL("{}: unsupported dtype '{}' (supported: F64, F32, BF16, F16, I64, I32, I8, U8)", where, s);
}

}  // namespace

const Tensor* SafeTensors::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

const Tensor& SafeTensors::at(const std::string& name) const {
  const Tensor* t = find(name);
  DENSE_CHECK(t != nullptr, "{}: no tensor named '{}'", source, name);
  return *t;
}

SafeTensors read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DENSE_CHECK(in.good(), "{}: cannot open: {}", path, std::strerror(errno));
  in.seekg(0, std::ios::end);
  const uint64_t file_size = uint64_t(in.tellg());
  in.seekg(0);
  DENSE_CHECK(file_size >= 8, "{}: not a safetensors file ({} bytes, shorter than the 8-byte header length)", path,
              file_size);
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  DENSE_CHECK(header_len <= file_size - 8 && header_len < (uint64_t(100) << 20),
              "{}: header length {} does not fit the file of {} bytes", path, header_len, file_size);
  std::string header(header_len, '\0');
  in.read(header.data(), std::streamsize(header_len));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const std::exception& e) {
    DENSE_FAIL("{}: header is not valid JSON: {}", path, e.what());
  }
  DENSE_CHECK(j.is_object(), "{}: header is not a JSON object", path);
  const uint64_t data_start = 8 + header_len, data_size = file_size - data_start;

  SafeTensors out;
  out.source = path;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::vector<std::pair<uint64_t, std::pair<std::string, nlohmann::json>>> entries;
  for (const auto& [name, info] : j.items()) {
    if (name == "__metadata__") {
      DENSE_CHECK(info.is_object(), "{}: __metadata__ must be an object", path);
      for (const auto& [k, v] : info.items()) {
        DENSE_CHECK(v.is_string(), "{}: metadata '{}' must be a string", path, k);
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    DENSE_CHECK(info.is_object() && info.contains("dtype") && info.contains("shape") && info.contains("data_offsets"),
                "{}: entry needs dtype, shape and data_offsets", where);
    DENSE_CHECK(info["data_offsets"].is_array() && info["data_offsets"].size() == 2 &&
                    info["data_offsets"][0].is_number_unsigned() && info["data_offsets"][1].is_number_unsigned(),
                "{}: data_offsets must be two non-negative integers", where);
    entries.push_back({info["data_offsets"][0].get<uint64_t>(), {name, info}});
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  uint64_t expected_begin = 0;
  for (const auto& [begin, entry] : entries) {
    const auto& [name, info] = entry;
    const std::string where = path + ": tensor '" + name + "'";
    DENSE_CHECK(info["dtype"].is_string(), "{}: dtype must be a string", where);
    const DType dtype = parse_st_dtype(info["dtype"].get<std::string>(), where);
    DENSE_CHECK(info["shape"].is_array(), "{}: shape must be a list", where);
    Shape shape;
    for (const auto& d : info["shape"]) {
      DENSE_CHECK(d.is_number_unsigned(), "{}: shape entries must be non-negative integers", where);
      shape.push_back(d.get<int64_t>());
    }
    const uint64_t end = info["data_offsets"][1].get<uint64_t>();
    DENSE_CHECK(begin == expected_begin, "{}: data starts at {} but the previous tensor ended at {} (gap or overlap)",
                where, begin, expected_begin);
    DENSE_CHECK(end >= begin && end <= data_size, "{}: data [{}, {}) lies outside the {} data bytes", where, begin, end,
                data_size);
    const uint64_t want = uint64_t(shape_numel(shape)) * dtype_size(dtype);
    DENSE_CHECK(end - begin == want, "{}: {} bytes stored for shape {} of {} ({} expected)", where, end - begin,
                shape_str(shape), dtype_name(dtype), want);
    Tensor t = Tensor::empty(shape, dtype);
    in.seekg(std::streamoff(data_start + begin));
    in.read(static_cast<char*>(t.raw_data()), std::streamsize(want));
    DENSE_CHECK(in.good(), "{}: short read", where);
    out.tensors.emplace_back(name, t);
    expected_begin = end;
  }
  DENSE_CHECK(expected_begin == data_size, "{}: {} trailing bytes after the last tensor", path,
              data_size - expected_begin);
  return out;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    DENSE_CHECK(name != "__metadata__", "{}: '__metadata__' is reserved", path);
    const uint64_t n = t.nbytes();
    header[name] = {{"dtype", st_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h.push_back(' ');
  AtomicFileWriter out(path);  // removes its temporary if anything below throws
  unsigned char len_bytes[8];
  const uint64_t len = h.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = (unsigned char)((len >> (8 * i)) & 0xff);
  out.write(len_bytes, 8);
  out.write(h);
  for (const auto& [name, t] : tensors) {
    const Tensor host = t.to(Device::cpu()).contiguous();
    out.write(host.raw_data(), host.nbytes());
  }
  out.commit();
}

}  // namespace dense
