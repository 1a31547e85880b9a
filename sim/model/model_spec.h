// Transformer model shapes (the catalog), loaded from JSON.
//
// A ModelSpec is the minimum a cost model needs: layer count, widths, head
// layout (GQA via kv_heads), MLP kind and dtype sizes. Parameter count and KV
// bytes per token are derived here, once.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace pdsim {

class JsonObject;

enum class MlpKind { kGatedSilu, kGelu, kRelu };
enum class NormKind { kRmsNorm, kLayerNorm };
enum class BiasKind { kNone, kQkv, kAll };

struct ModelSpec {
  std::string name;
  int layers = 0;
  int hidden = 0;
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int ffn_hidden = 0;
  int vocab = 0;
  MlpKind mlp = MlpKind::kGatedSilu;
  NormKind norm = NormKind::kRmsNorm;
  BiasKind bias = BiasKind::kNone;
  bool tied_embeddings = false;
  int learned_pos_embeddings = 0;
  int weight_bytes = 2;  // bytes per weight element (2 = bf16/fp16, 1 = fp8)
  int kv_bytes = 2;      // bytes per KV-cache element
  int act_bytes = 2;     // bytes per activation element
  std::int64_t max_context = 0;
  double published_params = 0;  // 0 when unknown
  std::string source;

  bool gated() const { return mlp == MlpKind::kGatedSilu; }
  double param_count() const;
  double weight_bytes_total() const { return param_count() * weight_bytes; }
  // K and V for every layer and KV head, whole model (not TP-sharded).
  double kv_bytes_per_token() const {
    return 2.0 * layers * kv_heads * head_dim * static_cast<double>(kv_bytes);
  }
};

// Reads one model object (catalog entry or inline scenario model). All keys
// are validated; errors name obj's file and JSON path.
ModelSpec parse_model(JsonObject& obj, const std::string& name);

// Name -> spec. Later catalogs override earlier entries of the same name.
class ModelCatalog {
 public:
  void load_file(const std::string& path);
  void add(ModelSpec spec) { models_[spec.name] = std::move(spec); }
  bool contains(const std::string& name) const { return models_.count(name) != 0; }
  // Throws InputError naming `where` (with a nearest-name suggestion).
  const ModelSpec& get(const std::string& name, const std::string& where) const;
  const std::map<std::string, ModelSpec>& all() const { return models_; }

 private:
  std::map<std::string, ModelSpec> models_;
};

}  // namespace pdsim
