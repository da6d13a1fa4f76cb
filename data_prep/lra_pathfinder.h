#pragma once
// LRA Pathfinder / Path-X (data-sources §4c): the algorithm of drewlinsley/pathfinder snakes2.py, with the
// LRA parameters, drawing into grey images written as PNG plus LRA-style metadata.
//
// Per image (all randomness from PhiloxStream::for_example(seed, image index), so image i is the same
// whatever the thread count or the batch it is generated in):
//   1. label ~ {0, 1} uniform; paddle margin m uniform from paddle_margins.
//   2. Two target snakes. Seeds: the first paddle's tail is uniform over the free pixels at least
//      2*seed_distance from the border (the paddle, dilated by m, must not touch occupied pixels), orientation
//      uniform in -180..179 deg; the second tail lies seed_distance away at a uniform angle (0..359 deg).
//      Each snake then grows contour_length-1 paddles, alternating snakes: the pivot moves length + 2m along the
//      current orientation, candidate heads are the pixels on the circle of radius length + m around it, with
//      weight (1 - occupancy dilated by m) * max(cos(min(|dtheta| * continuity, pi/2)), 0)^2; a sampled paddle
//      is rejected when it overlaps the occupancy mask (max(mask + paddle mask) >= 1.8; the snake's own previous
//      paddle joins the mask one step late, as in snakes2.py); after max_paddle_retrial + 1 rejections, or when
//      no candidate has weight, the image starts again (up to max_restarts).
//   3. num_distractor_snakes snakes of distractor_length paddles, seeded anywhere free (1-pixel border), each
//      tried max_distractor_retrial + 1 times, skipped when it cannot be placed (or < 1% of pixels are free).
//   4. Markers: discs of marker_radius, the first at the origin (seed) end of a random target snake, the
//      second at the far end of the same snake (label 1) or of the other (label 0).
//   5. image / max(image) * 255, truncated to uint8.
// Rendering: paddles are segments of paddle_length px and paddle_thickness px width, anti-aliased by
// supersampling (supersample^2 samples per pixel); the occupancy of a paddle is its coverage dilated by m.
// Contrasts: target paddles paddle_contrast * snake_contrast (one of snake_contrasts per snake), distractor
// paddles one of snake_contrasts, markers 1 (as snakes2.py).
// Differences from snakes2.py: PIL line drawing + Lanczos resampling are replaced by exact supersampled
// coverage; both target snakes' last paddles join the occupancy mask before the distractors are drawn
// (snakes2.py adds only the second snake's); numpy's Mersenne Twister is replaced by Philox.
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data_prep/lra_common.h"
#include "data_prep/lra_png.h"

namespace dense::data::lra {

struct PathfinderConfig {
  int height = 32, width = 32;
  int padding = 1;
  std::vector<int> paddle_margins = {1};
  int paddle_length = 2;
  double paddle_thickness = 0.5;
  double marker_radius = 1.5;
  int antialias_scale = 2;  // recorded in metadata; supersample sets the actual anti-aliasing
  int seed_distance = 7;
  double continuity = 1.0;
  std::vector<double> snake_contrasts = {2.0};
  std::vector<double> paddle_contrasts = {0.75};
  int contour_length = 14;
  int distractor_length = 4;      // contour_length / 3
  int num_distractor_snakes = 5;  // Pathfinder-32: 20 // distractor_length
  int max_paddle_retrial = 2;
  int max_distractor_retrial = 4;
  int max_restarts = 100000;  // target-snake restarts before giving up on an image (error); PF64 p99 ~2600
  int supersample = 4;

  // LRA parameter sets (lra_benchmarks/data/pathfinder.py). contour_length 14 = "hard"
  // (curv_contour_length_14), 9 = intermediate, 6 = easy (curv_baseline).
  static PathfinderConfig pathfinder32(int contour_length = 14);
  static PathfinderConfig pathfinder64(int contour_length = 14);
  static PathfinderConfig pathfinder128(int contour_length = 14);  // Path-X
  static PathfinderConfig pathfinder256(int contour_length = 14);
  // Folder name of the difficulty: "curv_baseline" for 6, else "curv_contour_length_<n>".
  std::string difficulty_folder() const;
  void validate() const;  // throws dense::Error on an impossible configuration
};

struct PathfinderPoint {
  int y = 0, x = 0;
};

// A paddle: segment from (y0, x0) (pixel centres) of paddle_length px at angle theta (radians; y = rows).
struct PathfinderPaddle {
  double y0 = 0, x0 = 0, y1 = 0, x1 = 0;
};

struct PathfinderSample {
  GrayImage image;
  int label = 0;
  int margin = 0;
  std::array<std::vector<PathfinderPaddle>, 2> targets;  // seed paddle first, in growth order
  std::array<PathfinderPoint, 2> origin_tips;            // seed tails (origin ends)
  std::array<PathfinderPoint, 2> terminal_tips;          // far ends (head of the last paddle)
  int origin_snake = 0, terminal_snake = 0;              // which target snake each marker sits on
  PathfinderPoint origin_marker, terminal_marker;
  int distractors = 0;  // distractor snakes drawn
  int restarts = 0;     // target-snake restarts needed
};

// Image `index` of the set generated with `seed`.
PathfinderSample generate_pathfinder_sample(const PathfinderConfig& config, uint64_t seed, uint64_t index);

struct PathfinderWriteOptions {
  int64_t images_per_batch = 1000;
  int png_level = 6;
};

// Writes images [0, num_images) in the snakes2.py / LRA layout under `dir`:
//   imgs/<b>/sample_<j>.png  (b = i / images_per_batch, j = i % images_per_batch)
//   metadata/<b>.npy         text, one line per image: "imgs/<b> sample_<j>.png <j> <label> <continuity>
//                            <contour_length> <distractor_length> <paddle_length> <paddle_thickness> <margin>
//                            <number of paddle contrasts>" (the LRA reader takes columns 0, 1 and 3)
// Files are written atomically; a batch whose metadata file exists is skipped, so a re-run resumes.
// Uses all OpenMP threads. Returns the number of images generated (not skipped).
int64_t write_pathfinder_dataset(const std::filesystem::path& dir, const PathfinderConfig& config, uint64_t seed,
                                 int64_t num_images, const PathfinderWriteOptions& options = {});

struct PathfinderRecord {
  std::filesystem::path image;  // full path
  int label = 0;
  size_t metadata_line = 0;
  std::string metadata_file;
};
// Reads metadata/*.npy (numeric batch order; lines in file order). Errors name file:line.
std::vector<PathfinderRecord> read_pathfinder_metadata(const std::filesystem::path& dir);
// Loads all images (grey PNG) in metadata order and splits them train/val/test by `fractions`, unshuffled
// (docs/model.md §3.5: 80/10/10 in metadata order).
ImageSplits load_pathfinder_dataset(const std::filesystem::path& dir,
                                    std::array<double, 3> fractions = {0.8, 0.1, 0.1});

}  // namespace dense::data::lra
