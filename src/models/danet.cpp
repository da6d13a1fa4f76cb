// The DenseAttention Network (docs/model.md §1).
#include <cmath>
#include <memory>
#include <vector>

#include "backend/ops.h"
#include "models/encoder_model.h"
#include "nn/danet_layer.h"
#include "nn/relpe.h"

namespace dense::models {

namespace {

class DanetModel final : public EncoderModel {
 public:
  DanetModel(const ModelConfig& c, DType dtype, Device device, bool allocate) : EncoderModel(c) {
    const int64_t d = c.hidden_size, V = c.padded_vocab_size();
    const double r0 = c.initializer_range;
    if (c.pos_emb_type == PositionEmbedding::RelPE) {
      if (c.relpe_type != nn::RelPEType::None)
        relpe_ = std::make_unique<nn::RelPE>(c.relpe_type, c.max_position_embeddings, c.head_size(),
                                             c.num_attention_heads, dtype, device);
    }
    nn::EmbeddingsConfig ec;
    ec.vocab = V;
    ec.hidden = d;
    ec.positions = c.pos_emb_type == PositionEmbedding::Learned      ? nn::PositionKind::Learned
                   : c.pos_emb_type == PositionEmbedding::Sinusoidal ? nn::PositionKind::Sinusoidal
                                                                     : nn::PositionKind::None;
    ec.max_positions = c.max_position_embeddings;
    ec.type_vocab = c.token_type_embeddings ? c.type_vocab_size : 0;
    ec.norm = norm_spec(c.embedding_ln_type);
    ec.dropout = c.embedding_dropout;
    // The tied decoder's Uniform init overwrites the table's Normal init in the reference (docs/model.md §7.13).
    ec.word_init = nn::Init::uniform(r0);
    ec.table_init = nn::Init::normal(r0);
    embeddings_ = nn::Embeddings(params_, "embeddings", ec);

    const std::vector<nn::LayerKind> kinds = c.layer_kinds();
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      nn::DanetLayerConfig lc;
      lc.attention.hidden = d;
      lc.attention.heads = c.num_attention_heads;
      lc.attention.complexity = c.attention_complexity;
      lc.attention.dropout = c.attention_probs_dropout_prob;
      lc.attention.kind = kinds[size_t(l)];
      lc.attention.window = c.window_size;
      lc.attention.causal = c.causal;
      lc.attention.chunk_size = c.chunk_size;
      lc.attention.local_relpe = c.local_relpe;
      lc.attention.sparse = c.sparse_pattern();
      lc.attention.layer_index = l;
      lc.attention.scheme = relpe_ ? nn::RelPEScheme::parse(c.relpe_scheme, "relpe_scheme") : nn::RelPEScheme{};
      lc.pre_norm = norm_spec(c.pre_attn_ln_type);
      lc.post_norm = norm_spec(c.post_attn_ln_type);
      lc.expansion = c.intermediate_size;
      lc.swiglu = c.swiglu_ffn;
      lc.hidden_dropout = c.hidden_dropout_prob;
      lc.init_range = r0;
      lc.queries_init_std = r0 / std::sqrt(2.0 * double(c.num_hidden_layers) * double(d));
      layers_.push_back(
          std::make_unique<nn::DanetLayer>(params_, fmt::format("encoder.layer.{}", l), lc, relpe_.get()));
    }
    final_norm_ = nn::Norm(params_, "encoder.final_norm", norm_spec(c.final_ln_type), d);

    nn::MlmHeadConfig mc;
    mc.hidden = d;
    mc.vocab = V;
    mc.act = activation_spec(c.lm_head_act);
    mc.norm = norm_spec(c.lm_head_ln_type);
    mc.dense_init = nn::Init::uniform(r0);
    mlm_ = nn::MlmHead(params_, "lm_head", mc, embeddings_.word());

    nn::PoolerConfig pc;
    pc.hidden = d;
    pc.function = c.pooler_function;
    pc.dense = !c.pooler_no_dense;
    pc.act = activation_spec(c.pooler_act);
    pc.norm = norm_spec(c.pooler_ln_type);
    pc.dense_init = nn::Init::uniform(r0);
    pooler_ = nn::Pooler(params_, "pooler", pc);
    if (c.pair_matching) {
      matching_ = nn::MatchingHead(params_, "matching", d, c.num_labels, c.hidden_dropout_prob, nn::Init::uniform(r0));
    } else {
      classifier_ = nn::Classifier(params_, "classifier", d, c.num_labels, c.classifier_bias, c.hidden_dropout_prob,
                                   nn::Init::uniform(r0));
    }
    if (allocate) params_.materialize(dtype, device);
  }

 protected:
  void prepare_masks(const Tensor& mask, int64_t B, int64_t N, DType dtype, Device device) override {
    // m = mask / n_b^(1/3) for global layers, mask / w^(1/3) for the others (docs/model.md §1.4).
    std::vector<double> m(size_t(B * N), 1.0);
    if (mask.defined()) m = mask.to_vector<double>();
    std::vector<double> global(m.size()), local(m.size());
    const double w3 = std::cbrt(double(config_.window_size));
    for (int64_t b = 0; b < B; ++b) {
      double n = 0;
      for (int64_t i = 0; i < N; ++i) n += m[size_t(b * N + i)];
      DENSE_CHECK(n > 0, "sequence {} of the batch has no real token (attention_mask all zero)", b);
      const double n3 = std::cbrt(n);
      for (int64_t i = 0; i < N; ++i) {
        global[size_t(b * N + i)] = m[size_t(b * N + i)] / n3;
        local[size_t(b * N + i)] = m[size_t(b * N + i)] / w3;
      }
    }
    m_global_ = Tensor::from_vector(global, {B * N}, dtype, device);
    m_local_ = Tensor::from_vector(local, {B * N}, dtype, device);
  }
  int64_t num_layers() const override { return int64_t(layers_.size()); }
  Tensor layer_forward(int64_t l, const Tensor& x, nn::Context& ctx) override {
    nn::DanetLayer& layer = *layers_[size_t(l)];
    return layer.forward(x, layer.is_global() ? m_global_ : m_local_, ctx);
  }
  Tensor layer_backward(int64_t l, const Tensor& dy) override { return layers_[size_t(l)]->backward(dy); }
  void layer_release(int64_t l) override { layers_[size_t(l)]->release(); }

 private:
  std::unique_ptr<nn::RelPE> relpe_;
  std::vector<std::unique_ptr<nn::DanetLayer>> layers_;
  Tensor m_global_, m_local_;
};

}  // namespace

std::unique_ptr<Model> build_danet(const ModelConfig& config, DType dtype, Device device, bool allocate) {
  return std::make_unique<DanetModel>(config, dtype, device, allocate);
}

}  // namespace dense::models
