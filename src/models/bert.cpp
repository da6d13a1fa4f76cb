// The softmax BERT baseline (docs/model.md §1.12), pre-LN, with a key padding mask (decision: the reference passes
// none; a baseline that lets pads leak into real tokens would make comparisons unfair).
#include <cmath>
#include <memory>
#include <vector>

#include "models/encoder_model.h"
#include "nn/bert_layer.h"

namespace dense::models {

namespace {

class BertModel final : public EncoderModel {
 public:
  BertModel(const ModelConfig& c, DType dtype, Device device, bool allocate) : EncoderModel(c) {
    const int64_t d = c.hidden_size, V = c.padded_vocab_size();
    const double r0 = c.initializer_range;
    const nn::NormSpec ln = nn::layer_norm_spec(c.layer_norm_eps);
    nn::EmbeddingsConfig ec;
    ec.vocab = V;
    ec.hidden = d;
    ec.positions = nn::PositionKind::Learned;
    ec.max_positions = c.max_position_embeddings;
    ec.norm = ln;
    ec.dropout = c.embedding_dropout;
    ec.word_init = nn::Init::normal(r0);
    ec.table_init = nn::Init::normal(r0);
    embeddings_ = nn::Embeddings(params_, "embeddings", ec);

    nn::BertLayerConfig lc;
    lc.hidden = d;
    lc.heads = c.num_attention_heads;
    lc.intermediate = c.intermediate_size;
    lc.hidden_dropout = c.hidden_dropout_prob;
    lc.attn_dropout = c.attention_probs_dropout_prob;
    lc.ln_eps = c.layer_norm_eps;
    lc.act = activation_spec(c.hidden_act);
    lc.init_std = r0;
    lc.output_init_std = r0 / std::sqrt(2.0 * double(c.num_hidden_layers));
    lc.sparse = c.sparse_pattern();
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      lc.layer_index = l;
      layers_.push_back(std::make_unique<nn::BertLayer>(params_, fmt::format("encoder.layer.{}", l), lc));
    }
    final_norm_ = nn::Norm(params_, "encoder.final_norm", ln, d);

    nn::MlmHeadConfig mc;
    mc.hidden = d;
    mc.vocab = V;
    mc.dense_bias = true;
    mc.act = nn::parse_activation("gelu", "lm_head_act");
    mc.norm = ln;
    mc.dense_init = nn::Init::normal(r0);
    mlm_ = nn::MlmHead(params_, "lm_head", mc, embeddings_.word());

    nn::PoolerConfig pc;
    pc.hidden = d;
    pc.function = nn::PoolFunction::First;
    pc.dense = true;
    pc.dense_bias = true;
    pc.act = nn::parse_activation("tanh", "pooler_act");
    pc.dense_init = nn::Init::normal(r0);
    pooler_ = nn::Pooler(params_, "pooler", pc);
    if (c.pair_matching) {
      matching_ = nn::MatchingHead(params_, "matching", d, c.num_labels, c.hidden_dropout_prob, nn::Init::normal(r0));
    } else {
      classifier_ = nn::Classifier(params_, "classifier", d, c.num_labels, c.classifier_bias, c.hidden_dropout_prob,
                                   nn::Init::normal(r0));
    }
    if (allocate) params_.materialize(dtype, device);
  }

 protected:
  void prepare_masks(const Tensor& mask, int64_t, int64_t, DType, Device) override {
    // Only a mask with a pad in it changes the attention; all-ones masks take the cheaper unmasked path.
    key_valid_ = Tensor();
    if (mask.defined() && ops_min(mask) == 0.0) key_valid_ = mask;
  }
  int64_t num_layers() const override { return int64_t(layers_.size()); }
  Tensor layer_forward(int64_t l, const Tensor& x, nn::Context& ctx) override {
    return layers_[size_t(l)]->forward(x, key_valid_.defined() ? &key_valid_ : nullptr, ctx);
  }
  Tensor layer_backward(int64_t l, const Tensor& dy) override { return layers_[size_t(l)]->backward(dy); }
  void layer_release(int64_t l) override { layers_[size_t(l)]->release(); }

 private:
  static double ops_min(const Tensor& mask) {
    double m = 1.0;
    for (double v : mask.to_vector<double>()) m = std::min(m, v);
    return m;
  }
  std::vector<std::unique_ptr<nn::BertLayer>> layers_;
  Tensor key_valid_;
};

}  // namespace

std::unique_ptr<Model> build_bert(const ModelConfig& config, DType dtype, Device device, bool allocate) {
  return std::make_unique<BertModel>(config, dtype, device, allocate);
}

}  // namespace dense::models
