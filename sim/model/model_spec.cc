#include "sim/model/model_spec.h"

#include <vector>

#include "sim/config/json_object.h"
#include "sim/core/error.h"

namespace pdsim {

double ModelSpec::param_count() const {
  const double h = hidden, q = static_cast<double>(heads) * head_dim,
               kv = static_cast<double>(kv_heads) * head_dim, f = ffn_hidden;
  const double attn = h * q + 2 * h * kv + q * h;
  const double mlp_w = (gated() ? 3.0 : 2.0) * h * f;
  double biases = 0;
  if (bias == BiasKind::kQkv) biases = q + 2 * kv;
  if (bias == BiasKind::kAll) biases = q + 2 * kv + h + (gated() ? 2 : 1) * f + h;
  const double norms = norm == NormKind::kRmsNorm ? 2 * h : 4 * h;
  const double layer = attn + mlp_w + biases + norms;
  const double embed = static_cast<double>(vocab) * h;
  const double final_norm = norm == NormKind::kRmsNorm ? h : 2 * h;
  return layers * layer + embed + (tied_embeddings ? 0 : embed) + final_norm +
         static_cast<double>(learned_pos_embeddings) * h;
}

ModelSpec parse_model(JsonObject& obj, const std::string& name) {
  ModelSpec m;
  m.name = name;
  // Ranges far past any published model, checked before narrowing to int.
  constexpr std::int64_t kMaxDim = 1 << 24;
  m.layers = static_cast<int>(obj.integer_in("layers", 1, 100000));
  m.hidden = static_cast<int>(obj.integer_in("hidden", 1, kMaxDim));
  m.heads = static_cast<int>(obj.integer_in("heads", 1, kMaxDim));
  m.kv_heads = static_cast<int>(obj.integer_in("kv_heads", 1, kMaxDim));
  m.head_dim = static_cast<int>(obj.integer_in("head_dim", 1, kMaxDim));
  m.ffn_hidden = static_cast<int>(obj.integer_in("ffn_hidden", 1, kMaxDim));
  m.vocab = static_cast<int>(obj.integer_in("vocab", 1, kMaxDim));
  const std::string mlp = obj.choice("mlp", {"gated_silu", "gelu", "relu"});
  m.mlp = mlp == "gated_silu" ? MlpKind::kGatedSilu : mlp == "gelu" ? MlpKind::kGelu : MlpKind::kRelu;
  m.norm = obj.choice("norm", {"rmsnorm", "layernorm"}, "rmsnorm") == "rmsnorm" ? NormKind::kRmsNorm
                                                                              : NormKind::kLayerNorm;
  const std::string bias = obj.choice("bias", {"none", "qkv", "all"}, "none");
  m.bias = bias == "none" ? BiasKind::kNone : bias == "qkv" ? BiasKind::kQkv : BiasKind::kAll;
  m.tied_embeddings = obj.boolean("tied_embeddings", false);
  m.learned_pos_embeddings = static_cast<int>(obj.integer_in("learned_pos_embeddings", 0, kMaxDim, 0));
  auto element_bytes = [&](const char* key) {
    const auto v = obj.integer_in(key, 1, 4, 2);
    if (v == 3) obj.fail(key, "must be 1, 2 or 4 bytes, got 3");
    return static_cast<int>(v);
  };
  m.weight_bytes = element_bytes("weight_bytes");
  m.kv_bytes = element_bytes("kv_bytes");
  m.act_bytes = element_bytes("act_bytes");
  m.max_context = obj.positive_integer("max_context", 131072);
  m.published_params = obj.number("published_params", 0.0);
  m.source = obj.string("source", "");
  if (m.heads % m.kv_heads != 0)
    obj.fail("kv_heads", "must divide heads (" + std::to_string(m.heads) + "), got " + std::to_string(m.kv_heads));
  obj.finish();
  return m;
}

void ModelCatalog::load_file(const std::string& path) {
  const nlohmann::json root = parse_json_file(path);
  JsonObject top(root, path);
  top.string("_about", "");
  JsonObject models = top.object("models");
  top.finish();
  for (const auto& item : root.at("models").items()) {
    JsonObject entry = models.object(item.key());
    add(parse_model(entry, item.key()));
  }
  models.finish();
}

const ModelSpec& ModelCatalog::get(const std::string& name, const std::string& where) const {
  const auto it = models_.find(name);
  if (it != models_.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& kv : models_) names.push_back(kv.first);
  std::string msg = "unknown model \"" + name + "\"";
  const std::string near = nearest(name, names);
  if (!near.empty()) msg += "; did you mean \"" + near + "\"?";
  else msg += " (see profiles/models.json or give the model inline)";
  throw InputError(where, msg);
}

}  // namespace pdsim
