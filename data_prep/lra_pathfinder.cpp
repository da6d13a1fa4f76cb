#include "data_prep/lra_pathfinder.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <exception>
#include <fstream>
#include <mutex>
#include <optional>

#include "core/error.h"
#include "data/tsv.h"

namespace dense::data::lra {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr float kFreeBelow = 0.3f;         // snakes2.py: a pixel is free when ceil(mask - 0.3) == 0
constexpr float kOverlapLimit = 1.8f;      // snakes2.py: reject a paddle when max(mask + paddle mask) >= 1.8
constexpr double kMinAvailability = 0.01;  // distractors stop when < 1% of the pixels are free

// A paddle's coverage relative to its anchor pixel (the tail it is drawn from): rows [oy, oy + h), columns
// [ox, ox + w). `line` is the stroke coverage (times the contrast when drawn), `mask` the occupancy (the
// stroke dilated by the margin). Shapes depend only on the orientation, so they are computed once per image.
struct Shape {
  int oy = 0, ox = 0, h = 0, w = 0;
  std::vector<float> line, mask;
  std::vector<PathfinderPoint> footprint;  // offsets fully covered by the mask (seed placement)
};

// A drawn paddle: its shape at an anchor.
struct Placed {
  const Shape* shape = nullptr;
  PathfinderPoint at;
};

// snakes2.py translate_coord: ceil(coord + dist * (sin, cos)).
PathfinderPoint translate(PathfinderPoint p, double theta, double dist) {
  return {int(std::ceil(double(p.y) + dist * std::sin(theta))), int(std::ceil(double(p.x) + dist * std::cos(theta)))};
}

double flip_by_pi(double theta) { return theta < 0 ? theta + kPi : theta - kPi; }
double degrees(int deg) { return double(deg) * kPi / 180.0; }

struct Snake {
  PathfinderPoint pivot;
  double orientation = 0;
  Placed last;  // the latest paddle, whose occupancy joins the mask one step late
  PathfinderPoint origin, tip;
  std::vector<PathfinderPaddle> paddles;
};

class SampleBuilder {
 public:
  SampleBuilder(const PathfinderConfig& c, PhiloxStream& rng)
      : c_(c), rng_(rng), H_(c.height), W_(c.width), S_(c.supersample) {}

  PathfinderSample run() {
    PathfinderSample out;
    out.label = int(rng_.below(2));
    margin_ = c_.paddle_margins[rng_.below(c_.paddle_margins.size())];
    out.margin = margin_;
    for (int dy = -margin_; dy <= margin_; ++dy)
      for (int dx = -margin_; dx <= margin_; ++dx)
        if (dy * dy + dx * dx <= margin_ * margin_) disk_.push_back({dy, dx});
    seed_shapes_.resize(360);
    reach_ = c_.paddle_length + margin_ + 2;
    step_shapes_.resize(size_t((2 * reach_ + 1) * (2 * reach_ + 1)));

    std::array<Snake, 2> targets;
    int restarts = 0;
    while (!two_snakes(targets)) {
      if (++restarts > c_.max_restarts)
        DENSE_FAIL("Pathfinder: no two target snakes after {} restarts ({}x{}, contour length {}, margin {})",
                   c_.max_restarts, H_, W_, c_.contour_length, margin_);
    }
    out.restarts = restarts;
    // Both snakes' last paddles now occupy their pixels (snakes2.py adds only the second one's).
    for (auto& s : targets) apply_mask(s.last);

    for (int k = 0; k < c_.num_distractor_snakes; ++k) {
      for (int attempt = 0; attempt <= c_.max_distractor_retrial; ++attempt) {
        if (distractor()) {
          ++out.distractors;
          break;
        }
      }
    }

    const int origin_snake = int(rng_.below(2));
    const int terminal_snake = out.label == 1 ? origin_snake : 1 - origin_snake;
    out.origin_snake = origin_snake;
    out.terminal_snake = terminal_snake;
    out.origin_marker = targets[size_t(origin_snake)].origin;
    out.terminal_marker = targets[size_t(terminal_snake)].tip;
    draw_marker(out.origin_marker);
    draw_marker(out.terminal_marker);

    float peak = 0;
    for (float v : image_) peak = std::max(peak, v);
    out.image.height = H_;
    out.image.width = W_;
    out.image.pixels.resize(size_t(H_ * W_));
    for (size_t i = 0; i < image_.size(); ++i) {
      const float v = peak > 0 ? image_[i] / peak * 255.0f : 0.0f;
      out.image.pixels[i] = v <= 0 ? 0 : v >= 255.0f ? 255 : uint8_t(v);
    }
    for (int s = 0; s < 2; ++s) {
      out.targets[size_t(s)] = targets[size_t(s)].paddles;
      out.origin_tips[size_t(s)] = targets[size_t(s)].origin;
      out.terminal_tips[size_t(s)] = targets[size_t(s)].tip;
    }
    return out;
  }

 private:
  bool inside(int y, int x) const { return y >= 0 && y < H_ && x >= 0 && x < W_; }
  size_t at(int y, int x) const { return size_t(y) * size_t(W_) + size_t(x); }

  // Renders a paddle drawn from the anchor pixel along theta, with supersampled coverage.
  Shape render(double theta) const {
    const double L = c_.paddle_length, half = c_.paddle_thickness / 2, reach = half + margin_;
    const int r = c_.paddle_length + int(std::ceil(c_.paddle_thickness)) + margin_;
    Shape p;
    p.oy = p.ox = -r;
    p.h = p.w = 2 * r + 1;
    p.line.assign(size_t(p.h * p.w), 0.0f);
    p.mask.assign(size_t(p.h * p.w), 0.0f);
    const double dy = std::sin(theta), dx = std::cos(theta);
    const double inv = 1.0 / double(S_ * S_);
    for (int y = -r; y <= r; ++y) {
      for (int x = -r; x <= r; ++x) {
        // Quick reject: the pixel's centre is farther than reach + half a diagonal from the segment.
        const double tc = std::clamp(y * dy + x * dx, 0.0, L);
        if (std::hypot(y - tc * dy, x - tc * dx) > reach + 0.75) continue;
        int n_line = 0, n_mask = 0;
        for (int i = 0; i < S_; ++i) {
          const double py = y + (i + 0.5) / S_ - 0.5;
          for (int j = 0; j < S_; ++j) {
            const double px = x + (j + 0.5) / S_ - 0.5;
            const double t = py * dy + px * dx;
            const double perp = std::abs(px * dy - py * dx);
            if (t >= 0 && t <= L && perp <= half) ++n_line;
            const double tt = std::clamp(t, 0.0, L);
            const double ey = py - tt * dy, ex = px - tt * dx;
            if (ey * ey + ex * ex <= reach * reach) ++n_mask;
          }
        }
        const size_t k = size_t((y + r) * p.w + (x + r));
        p.line[k] = float(n_line * inv);
        p.mask[k] = float(n_mask * inv);
        if (p.mask[k] >= 0.999f) p.footprint.push_back({y, x});
      }
    }
    return p;
  }

  // A seed paddle at an integer orientation in degrees (-180..179).
  const Shape& seed_shape(int deg) {
    auto& s = seed_shapes_[size_t(deg + 180)];
    if (!s) s = render(degrees(deg));
    return *s;
  }
  // A grown paddle whose head is (dy, dx) from the pivot, drawn from the head back towards the pivot.
  const Shape& step_shape(int dy, int dx, double flipped) {
    DENSE_CHECK(std::abs(dy) <= reach_ && std::abs(dx) <= reach_, "Pathfinder: step offset ({}, {})", dy, dx);
    auto& s = step_shapes_[size_t((dy + reach_) * (2 * reach_ + 1) + (dx + reach_))];
    if (!s) s = render(flipped);
    return *s;
  }

  // Visits the in-image pixels of a placed shape: f(image index, shape index).
  template <typename F>
  void each_pixel(const Placed& p, F&& f) const {
    const Shape& s = *p.shape;
    const int y0 = std::max(0, p.at.y + s.oy), y1 = std::min(H_, p.at.y + s.oy + s.h);
    const int x0 = std::max(0, p.at.x + s.ox), x1 = std::min(W_, p.at.x + s.ox + s.w);
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) f(at(y, x), size_t((y - p.at.y - s.oy) * s.w + (x - p.at.x - s.ox)));
  }
  bool overlaps(const Placed& p) const {
    bool hit = false;
    each_pixel(p, [&](size_t i, size_t k) { hit |= mask_[i] + p.shape->mask[k] >= kOverlapLimit; });
    return hit;
  }
  void apply_mask(const Placed& p) {
    if (!p.shape) return;
    each_pixel(p, [&](size_t i, size_t k) { mask_[i] = std::max(mask_[i], p.shape->mask[k]); });
  }
  void apply_line(const Placed& p, double contrast) {
    const float c = float(contrast);
    each_pixel(p, [&](size_t i, size_t k) { image_[i] = std::max(image_[i], c * p.shape->line[k]); });
  }
  PathfinderPaddle segment(PathfinderPoint tail, double theta) const {
    return {double(tail.y), double(tail.x), tail.y + c_.paddle_length * std::sin(theta),
            tail.x + c_.paddle_length * std::cos(theta)};
  }

  int uniform_degree() { return int(rng_.randint(-180, 179)); }

  // Seed paddle: tail uniform over the pixels where a paddle of a random orientation fits (its dilated
  // footprint touches no pixel occupied or within `border` of the edge). snakes2.py seed_snake.
  bool seed(int border, bool check_availability, PathfinderPoint& tail, int& deg, PathfinderPoint& pivot) {
    if (check_availability) {
      size_t free = 0;
      for (float m : mask_) free += m <= kFreeBelow;
      if (double(free) / double(mask_.size()) < kMinAvailability) return false;
    }
    std::vector<uint8_t> occupied(mask_.size());
    for (int y = 0; y < H_; ++y)
      for (int x = 0; x < W_; ++x)
        occupied[at(y, x)] =
            mask_[at(y, x)] > kFreeBelow || y < border || y >= H_ - border || x < border || x >= W_ - border;
    // Summed-area table of `occupied`: a footprint whose bounding box holds no occupied pixel fits without
    // looking at its pixels one by one.
    const size_t W1 = size_t(W_) + 1;
    sat_.assign(size_t(H_ + 1) * W1, 0);
    for (int y = 0; y < H_; ++y)
      for (int x = 0; x < W_; ++x)
        sat_[size_t(y + 1) * W1 + size_t(x + 1)] = occupied[at(y, x)] + sat_[size_t(y) * W1 + size_t(x + 1)] +
                                                   sat_[size_t(y + 1) * W1 + size_t(x)] -
                                                   sat_[size_t(y) * W1 + size_t(x)];
    const auto box_sum = [&](int y0, int x0, int y1, int x1) {  // inclusive box, clipped to the image
      y0 = std::max(y0, 0), x0 = std::max(x0, 0), y1 = std::min(y1, H_ - 1), x1 = std::min(x1, W_ - 1);
      if (y0 > y1 || x0 > x1) return 0;
      return sat_[size_t(y1 + 1) * W1 + size_t(x1 + 1)] - sat_[size_t(y0) * W1 + size_t(x1 + 1)] -
             sat_[size_t(y1 + 1) * W1 + size_t(x0)] + sat_[size_t(y0) * W1 + size_t(x0)];
    };
    std::vector<PathfinderPoint> available;
    for (int trial = 0; trial <= c_.max_paddle_retrial;) {
      deg = uniform_degree();
      const double theta = degrees(deg);
      const auto& offsets = seed_shape(deg).footprint;
      int by0 = 0, bx0 = 0, by1 = 0, bx1 = 0;
      for (const auto& o : offsets)
        by0 = std::min(by0, o.y), bx0 = std::min(bx0, o.x), by1 = std::max(by1, o.y), bx1 = std::max(bx1, o.x);
      available.clear();
      for (int y = border; y < H_ - border; ++y)  // pixels in the border are occupied themselves
        for (int x = border; x < W_ - border; ++x) {
          bool ok = box_sum(y + by0, x + bx0, y + by1, x + bx1) == 0;
          if (!ok) {
            ok = true;
            for (const auto& o : offsets) {
              const int qy = y + o.y, qx = x + o.x;
              if (inside(qy, qx) && occupied[at(qy, qx)]) {
                ok = false;
                break;
              }
            }
          }
          if (ok) available.push_back({y, x});
        }
      if (available.empty()) return false;
      tail = available[rng_.below(available.size())];
      const PathfinderPoint head = translate(tail, theta, c_.paddle_length);
      pivot = translate(head, flip_by_pi(theta), c_.paddle_length + margin_);
      if (!inside(head.y, head.x) || !inside(pivot.y, pivot.x)) {
        ++trial;
        continue;
      }
      return true;
    }
    return false;
  }

  // snakes2.py extend_snake + get_coords_cmf.
  bool extend(Snake& s, double contrast) {
    const PathfinderPoint pivot = translate(s.pivot, s.orientation, c_.paddle_length + 2 * margin_);
    const double radius = c_.paddle_length + margin_;
    const double step_deg = 360.0 / (2.0 * radius * kPi);
    const int n_angles = int(std::ceil(360.0 / step_deg));
    coords_.clear();
    for (int i = 0; i < n_angles; ++i) {
      const double a = double(i) * step_deg * kPi / 180.0;
      const double y = pivot.y + radius * std::sin(a), x = pivot.x + radius * std::cos(a);
      if (y >= H_ || y < 0 || x >= W_ || x < 0) continue;
      coords_.push_back({int(y), int(x)});
    }
    if (coords_.empty()) return false;
    std::sort(coords_.begin(), coords_.end(),
              [](const PathfinderPoint& a, const PathfinderPoint& b) { return a.y != b.y ? a.y < b.y : a.x < b.x; });
    coords_.erase(
        std::unique(coords_.begin(), coords_.end(),
                    [](const PathfinderPoint& a, const PathfinderPoint& b) { return a.y == b.y && a.x == b.x; }),
        coords_.end());
    orientation_.resize(coords_.size());
    cmf_.resize(coords_.size());
    double total = 0;
    for (size_t i = 0; i < coords_.size(); ++i) {
      orientation_[i] = std::atan2(double(coords_[i].y - pivot.y), double(coords_[i].x - pivot.x));
      const double d = std::abs(orientation_[i] - s.orientation);
      const double delta = std::min(std::min(d, 2 * kPi - d) * c_.continuity, 0.5 * kPi);
      const double w = std::pow(std::max(std::cos(delta), 0.0), 2);
      float dilated = 0;
      for (const auto& o : disk_) {
        const int y = coords_[i].y + o.y, x = coords_[i].x + o.x;
        if (inside(y, x)) dilated = std::max(dilated, mask_[at(y, x)]);
      }
      total += std::max(0.0, 1.0 - double(dilated)) * w;
      cmf_[i] = total;
    }
    if (total < 1e-4) return false;
    for (int trial = 0; trial <= c_.max_paddle_retrial; ++trial) {
      const double u = rng_.uniform() * total;
      size_t k = size_t(std::upper_bound(cmf_.begin(), cmf_.end(), u) - cmf_.begin());
      if (k >= cmf_.size()) k = cmf_.size() - 1;
      const PathfinderPoint head = coords_[k];
      const double flipped = flip_by_pi(orientation_[k]);
      const Placed p{&step_shape(head.y - pivot.y, head.x - pivot.x, flipped), head};
      if (overlaps(p)) continue;
      apply_line(p, contrast);
      apply_mask(s.last);
      s.last = p;
      s.pivot = pivot;
      s.orientation = orientation_[k];
      s.tip = head;
      s.paddles.push_back(segment(head, flipped));
      return true;
    }
    return false;
  }

  double paddle_contrast() { return c_.paddle_contrasts[rng_.below(c_.paddle_contrasts.size())]; }

  // snakes2.py two_snakes + initialize_two_seeds.
  bool two_snakes(std::array<Snake, 2>& s) {
    image_.assign(size_t(H_ * W_), 0.0f);
    mask_.assign(size_t(H_ * W_), 0.0f);
    for (int y = 0; y < H_; ++y)
      for (int x = 0; x < W_; ++x)
        if (y < c_.padding || y >= H_ - c_.padding || x < c_.padding || x >= W_ - c_.padding) mask_[at(y, x)] = 1.0f;
    s = {};
    // Each snake's contrast centre: two draws without replacement from snake_contrasts * 2.
    std::vector<double> mu;
    for (int r = 0; r < 2; ++r) mu.insert(mu.end(), c_.snake_contrasts.begin(), c_.snake_contrasts.end());
    for (size_t i = mu.size() - 1; i > 0; --i) std::swap(mu[i], mu[rng_.below(i + 1)]);

    PathfinderPoint tail1, pivot1;
    int deg1 = 0;
    if (!seed(2 * c_.seed_distance, false, tail1, deg1, pivot1)) return false;
    const double contrast1 = paddle_contrast() * mu[0];
    PathfinderPoint tail2, pivot2;
    int deg2 = 0;
    bool found = false;
    for (int trial = 0; trial <= c_.max_paddle_retrial && !found; ++trial) {
      deg2 = uniform_degree();
      const double theta2 = degrees(deg2);
      const double phi = degrees(int(rng_.randint(0, 359)));
      tail2 = {int(std::nearbyint(tail1.y + c_.seed_distance * std::sin(phi))),
               int(std::nearbyint(tail1.x + c_.seed_distance * std::cos(phi)))};
      const PathfinderPoint head = translate(tail2, theta2, c_.paddle_length);
      pivot2 = translate(head, flip_by_pi(theta2), c_.paddle_length + margin_);
      found = inside(head.y, head.x) && inside(pivot2.y, pivot2.x) && inside(tail2.y, tail2.x);
    }
    if (!found) return false;
    const double contrast2 = paddle_contrast() * mu[1];
    const PathfinderPoint tails[2] = {tail1, tail2};
    const PathfinderPoint pivots[2] = {pivot1, pivot2};
    const int degs[2] = {deg1, deg2};
    const double contrasts[2] = {contrast1, contrast2};
    for (int k = 0; k < 2; ++k) {
      const Placed p{&seed_shape(degs[k]), tails[k]};
      apply_line(p, contrasts[k]);
      Snake& sn = s[size_t(k)];
      sn.last = p;
      sn.pivot = pivots[k];
      sn.orientation = degrees(degs[k]);
      sn.origin = tails[k];
      sn.tip = translate(tails[k], sn.orientation, c_.paddle_length);
      sn.paddles.push_back(segment(tails[k], sn.orientation));
    }
    for (int seg = 0; seg + 1 < c_.contour_length; ++seg) {
      const double contrast = paddle_contrast();
      for (int k = 0; k < 2; ++k)
        if (!extend(s[size_t(k)], contrast * mu[size_t(k)])) return false;
    }
    return true;
  }

  // snakes2.py make_snake for a distractor; on failure the image and mask are left as they were.
  bool distractor() {
    saved_image_ = image_;
    saved_mask_ = mask_;
    Snake s;
    PathfinderPoint tail, pivot;
    int deg = 0;
    const auto contrast = [&] { return c_.snake_contrasts[rng_.below(c_.snake_contrasts.size())]; };
    const double c0 = contrast();
    bool ok = seed(1, true, tail, deg, pivot);
    if (ok) {
      const Placed p{&seed_shape(deg), tail};
      apply_line(p, c0);
      s.last = p;
      s.pivot = pivot;
      s.orientation = degrees(deg);
      for (int seg = 0; ok && seg + 1 < c_.distractor_length; ++seg) ok = extend(s, contrast());
    }
    if (!ok) {
      image_.swap(saved_image_);
      mask_.swap(saved_mask_);
      return false;
    }
    apply_mask(s.last);
    return true;
  }

  // A disc of marker_radius (coverage, intensity 1) centred on the pixel.
  void draw_marker(PathfinderPoint c) {
    const double r = c_.marker_radius;
    const int R = int(std::ceil(r)) + 1;
    for (int y = c.y - R; y <= c.y + R; ++y)
      for (int x = c.x - R; x <= c.x + R; ++x) {
        if (!inside(y, x)) continue;
        int n = 0;
        for (int i = 0; i < S_; ++i)
          for (int j = 0; j < S_; ++j) {
            const double py = y - c.y + (i + 0.5) / S_ - 0.5, px = x - c.x + (j + 0.5) / S_ - 0.5;
            n += py * py + px * px <= r * r;
          }
        float& v = image_[at(y, x)];
        v = std::max(v, float(double(n) / double(S_ * S_)));
      }
  }

  const PathfinderConfig& c_;
  PhiloxStream& rng_;
  int H_, W_, S_;
  int margin_ = 0, reach_ = 0;
  std::vector<PathfinderPoint> disk_;
  std::vector<float> image_, mask_, saved_image_, saved_mask_;
  std::vector<std::optional<Shape>> seed_shapes_, step_shapes_;  // sized once: pointers into them stay valid
  std::vector<PathfinderPoint> coords_;
  std::vector<int32_t> sat_;
  std::vector<double> orientation_, cmf_;
};

// Distractor count of a Python float bound: `while isnake < K / (cl / 3)` runs ceil(K / (cl / 3)) times.
int python_float_count(double k, int contour_length) { return int(std::ceil(k / (double(contour_length) / 3.0))); }

PathfinderConfig base_config(int size, int contour_length) {
  PathfinderConfig c;
  c.height = c.width = size;
  c.contour_length = contour_length;
  c.distractor_length = contour_length / 3;
  return c;
}

}  // namespace

PathfinderConfig PathfinderConfig::pathfinder32(int contour_length) {
  PathfinderConfig c = base_config(32, contour_length);
  c.padding = 1;
  c.paddle_margins = {1};
  c.paddle_length = 2;
  c.paddle_thickness = 0.5;
  c.marker_radius = 1.5;
  c.antialias_scale = 2;
  c.seed_distance = 7;
  c.continuity = 1.0;
  c.snake_contrasts = {2.0};
  c.paddle_contrasts = {0.75};
  c.num_distractor_snakes = c.distractor_length > 0 ? 20 / c.distractor_length : 0;  // integer division in LRA
  return c;
}

PathfinderConfig PathfinderConfig::pathfinder64(int contour_length) {
  PathfinderConfig c = base_config(64, contour_length);
  c.padding = 1;
  c.paddle_margins = {1};
  c.paddle_length = 5;
  c.paddle_thickness = 1;
  c.marker_radius = 2.5;
  c.antialias_scale = 2;
  c.seed_distance = 12;
  c.continuity = 1.8;
  c.snake_contrasts = {0.8};
  c.paddle_contrasts = {1.0};
  c.num_distractor_snakes = python_float_count(22, contour_length);
  return c;
}

PathfinderConfig PathfinderConfig::pathfinder128(int contour_length) {
  PathfinderConfig c = base_config(128, contour_length);
  c.padding = 1;
  c.paddle_margins = {2, 3};
  c.paddle_length = 5;
  c.paddle_thickness = 1.5;
  c.marker_radius = 3;
  c.antialias_scale = 2;
  c.seed_distance = 20;
  c.continuity = 1.8;
  c.snake_contrasts = {0.9};
  c.paddle_contrasts = {1.0};
  c.num_distractor_snakes = python_float_count(35, contour_length);
  return c;
}

PathfinderConfig PathfinderConfig::pathfinder256(int contour_length) {
  PathfinderConfig c = base_config(256, contour_length);
  c.padding = 22;
  c.paddle_margins = {3};
  c.paddle_length = 5;
  c.paddle_thickness = 2;
  c.marker_radius = 5;
  c.antialias_scale = 2;
  c.seed_distance = 27;
  c.continuity = 1.8;
  c.snake_contrasts = {1.0};
  c.paddle_contrasts = {1.0};
  c.num_distractor_snakes = python_float_count(30, contour_length);
  return c;
}

std::string PathfinderConfig::difficulty_folder() const {
  return contour_length == 6 ? std::string("curv_baseline") : fmt::format("curv_contour_length_{}", contour_length);
}

void PathfinderConfig::validate() const {
  DENSE_CHECK(height >= 8 && width >= 8 && height <= 4096 && width <= 4096, "Pathfinder: image size {}x{}", height,
              width);
  DENSE_CHECK(padding >= 0 && 2 * padding < std::min(height, width), "Pathfinder: padding {}", padding);
  DENSE_CHECK(!paddle_margins.empty(), "Pathfinder: no paddle margins");
  for (int m : paddle_margins) DENSE_CHECK(m >= 0 && m <= 32, "Pathfinder: paddle margin {}", m);
  DENSE_CHECK(paddle_length >= 1 && paddle_thickness > 0, "Pathfinder: paddle length {} / thickness {}", paddle_length,
              paddle_thickness);
  DENSE_CHECK(marker_radius > 0, "Pathfinder: marker radius {}", marker_radius);
  DENSE_CHECK(seed_distance >= 1 && 4 * seed_distance < std::min(height, width),
              "Pathfinder: seed distance {} leaves no room for seeds in a {}x{} image (need 4 * distance < size)",
              seed_distance, height, width);
  DENSE_CHECK(continuity >= 0, "Pathfinder: continuity {}", continuity);
  DENSE_CHECK(!snake_contrasts.empty() && !paddle_contrasts.empty(), "Pathfinder: empty contrast list");
  DENSE_CHECK(contour_length >= 1, "Pathfinder: contour length {}", contour_length);
  DENSE_CHECK(num_distractor_snakes >= 0 && (num_distractor_snakes == 0 || distractor_length >= 1),
              "Pathfinder: {} distractors of length {}", num_distractor_snakes, distractor_length);
  DENSE_CHECK(max_paddle_retrial >= 0 && max_distractor_retrial >= 0 && max_restarts >= 0,
              "Pathfinder: negative retrial count");
  DENSE_CHECK(supersample >= 1 && supersample <= 16, "Pathfinder: supersample {}", supersample);
}

PathfinderSample generate_pathfinder_sample(const PathfinderConfig& config, uint64_t seed, uint64_t index) {
  config.validate();
  PhiloxStream rng = PhiloxStream::for_example(seed, index);
  SampleBuilder g(config, rng);
  return g.run();
}

int64_t write_pathfinder_dataset(const std::filesystem::path& dir, const PathfinderConfig& config, uint64_t seed,
                                 int64_t num_images, const PathfinderWriteOptions& options) {
  config.validate();
  DENSE_CHECK(num_images >= 0 && options.images_per_batch >= 1, "Pathfinder: {} images in batches of {}", num_images,
              options.images_per_batch);
  std::error_code ec;
  std::filesystem::create_directories(dir / "metadata", ec);
  if (ec) DENSE_FAIL("Pathfinder: cannot create '{}': {}", (dir / "metadata").string(), ec.message());
  const int64_t per = options.images_per_batch;
  const int64_t batches = (num_images + per - 1) / per;
  int64_t generated = 0;
  for (int64_t b = 0; b < batches; ++b) {
    const auto meta = dir / "metadata" / fmt::format("{}.npy", b);
    if (std::filesystem::exists(meta, ec)) continue;  // finished in an earlier run
    const auto img_dir = dir / "imgs" / std::to_string(b);
    std::filesystem::create_directories(img_dir, ec);
    if (ec) DENSE_FAIL("Pathfinder: cannot create '{}': {}", img_dir.string(), ec.message());
    const int64_t begin = b * per, end = std::min(num_images, begin + per);
    std::vector<std::string> lines(size_t(end - begin));
    std::exception_ptr error;
    std::mutex error_mutex;
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t i = begin; i < end; ++i) {
      try {
        const PathfinderSample s = generate_pathfinder_sample(config, seed, uint64_t(i));
        const int64_t j = i - begin;
        write_png_gray(img_dir / fmt::format("sample_{}.png", j), s.image, options.png_level);
        lines[size_t(j)] =
            fmt::format("imgs/{} sample_{}.png {} {} {} {} {} {} {} {} {}\n", b, j, j, s.label, config.continuity,
                        config.contour_length, config.distractor_length, config.paddle_length, config.paddle_thickness,
                        s.margin, config.paddle_contrasts.size());
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    std::string text;
    for (const auto& l : lines) text += l;
    write_binary_file_atomic(meta, text);
    generated += end - begin;
  }
  return generated;
}

std::vector<PathfinderRecord> read_pathfinder_metadata(const std::filesystem::path& dir) {
  const auto meta_dir = dir / "metadata";
  std::error_code ec;
  if (!std::filesystem::is_directory(meta_dir, ec))
    DENSE_FAIL("Pathfinder: '{}' has no metadata folder (expected metadata/<batch>.npy files)", dir.string());
  std::vector<std::pair<int64_t, std::filesystem::path>> files;
  for (const auto& de : std::filesystem::directory_iterator(meta_dir, ec)) {
    if (de.path().extension() != ".npy") continue;
    const std::string stem = de.path().stem().string();
    int64_t id = 0;
    const auto [end, e2] = std::from_chars(stem.data(), stem.data() + stem.size(), id);
    files.push_back({e2 == std::errc() && end == stem.data() + stem.size() ? id : INT64_MAX, de.path()});
  }
  if (files.empty()) DENSE_FAIL("Pathfinder: no metadata files in '{}'", meta_dir.string());
  std::sort(files.begin(), files.end());
  std::vector<PathfinderRecord> out;
  for (const auto& [id, path] : files) {
    std::ifstream f(path, std::ios::binary);
    if (!f) DENSE_FAIL("{}: cannot open for reading", path.string());
    std::string line;
    size_t n = 0;
    while (std::getline(f, line)) {
      ++n;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      std::vector<std::string_view> cols;
      size_t s = 0;
      while (s <= line.size()) {
        const size_t e = std::min(line.find(' ', s), line.size());
        if (e > s) cols.push_back(std::string_view(line).substr(s, e - s));
        s = e + 1;
      }
      if (cols.size() < 4)
        DENSE_FAIL("{}:{}: expected at least 4 space-separated columns (subpath file index label), found {}",
                   path.string(), n, cols.size());
      int label = -1;
      const auto [end, e2] = std::from_chars(cols[3].data(), cols[3].data() + cols[3].size(), label);
      if (e2 != std::errc() || end != cols[3].data() + cols[3].size() || (label != 0 && label != 1))
        DENSE_FAIL("{}:{}: label '{}' is not 0 or 1", path.string(), n, cols[3]);
      PathfinderRecord r;
      r.image = dir / std::string(cols[0]) / std::string(cols[1]);
      r.label = label;
      r.metadata_line = n;
      r.metadata_file = path.string();
      out.push_back(std::move(r));
    }
  }
  return out;
}

ImageSplits load_pathfinder_dataset(const std::filesystem::path& dir, std::array<double, 3> fractions) {
  const auto records = read_pathfinder_metadata(dir);
  std::vector<GrayImage> images(records.size());
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < int64_t(records.size()); ++i) {
    try {
      images[size_t(i)] = read_png_gray(records[size_t(i)].image);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  ImageSet all;
  if (!images.empty()) {
    all.height = images[0].height;
    all.width = images[0].width;
  }
  all.pixels.reserve(images.size() * size_t(all.height * all.width));
  for (size_t i = 0; i < images.size(); ++i) {
    if (images[i].height != all.height || images[i].width != all.width)
      DENSE_FAIL("{}: image is {}x{}, the first one is {}x{}", records[i].image.string(), images[i].height,
                 images[i].width, all.height, all.width);
    all.append(images[i].pixels, records[i].label);
  }
  const auto sizes = split_sizes(all.size(), fractions);
  ImageSplits s;
  s.train = all.slice(0, sizes[0]);
  s.val = all.slice(sizes[0], sizes[0] + sizes[1]);
  s.test = all.slice(sizes[0] + sizes[1], all.size());
  return s;
}

}  // namespace dense::data::lra
