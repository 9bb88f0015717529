// Per-pixel math of PatchMatch (Barnes et al. 2009) and patch voting (Wexler et al. 2007), shared
// verbatim by the CPU loops (csrc/cpu/patchmatch_cpu.cpp) and the CUDA kernels
// (csrc/cuda/patchmatch.cu).
//
// Layout: images are HWC float32 (channels innermost), so that one patch row of one image is
// (2r+1)·C contiguous floats; the field is int32 [H, W, 2] holding the (y, x) of the matched
// source patch's centre, -1 where the target pixel is inactive; distances are float32 [H, W].
//
// Determinism is a design goal: the CPU and the CUDA backends must produce the same field for
// the same seed. Hence
//   * random numbers come from a counter-based hash of (seed, pixel, iteration, draw), never from
//     a stateful generator whose sequence would depend on the thread schedule;
//   * every jump-flooding pass reads the previous field and writes a new one (double buffering),
//     so a pixel's result never depends on which neighbour happened to run first;
//   * sums run in one fixed order, and products go through pm_mul/pm_add, which stop nvcc from
//     contracting a*b+c into an FMA (g++ on x86-64 never contracts without -mfma): an FMA rounds
//     once instead of twice and the GPU distances would differ from the CPU ones in the last bit,
//     enough to flip a tie.
#pragma once

#include <cstdint>

#include "kernels/macros.h"

namespace fastinpaint {

// Distance of a target pixel that has no match yet (larger than any real SSD).
constexpr float kPmFar = 3.0e38f;

// Everything a PatchMatch step reads. All pointers live on the device running the kernel.
struct PMProblem {
  const float* A;              // target, [Ht, Wt, C]
  const float* B;              // source, [Hs, Ws, C]
  const float* target_weight;  // [Ht, Wt] per-pixel weight of the SSD, or null (all 1)
  const uint8_t* active;       // [Ht, Wt] 1 where the field is computed, or null (all)
  const uint8_t* valid;        // [Hs, Ws] 1 where a patch centred there may be matched
  const int32_t* valid_list;   // [n_valid] linear indices of the valid centres (random init)
  int64_t n_valid;
  int64_t C, Ht, Wt, Hs, Ws;
  int r;                       // patch radius: patches are (2r+1) x (2r+1)
  uint64_t seed;
};

C10_HOST_DEVICE FI_INLINE float pm_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);  // never fused into an FMA
#else
  return a * b;
#endif
}

C10_HOST_DEVICE FI_INLINE float pm_add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

// Counter-based random bits: a SplitMix64 finaliser over (seed, pixel, iteration, draw). Any
// backend, any thread schedule, same numbers.
C10_HOST_DEVICE FI_INLINE uint32_t pm_random(uint64_t seed, uint64_t pixel, uint32_t iteration, uint32_t draw) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull;
  z ^= (pixel + 0x632BE59BD9B4E019ull) * 0xD1B54A32D192ED03ull;
  z ^= ((uint64_t(iteration) << 32) | draw) * 0xA24BAED4963EE407ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return uint32_t(z >> 32);
}

// Uniform integer in [0, n) (n < 2^32) by multiply-shift: no modulo bias worth speaking of, no division.
C10_HOST_DEVICE FI_INLINE int64_t pm_uniform(uint32_t bits, int64_t n) { return int64_t((uint64_t(bits) * uint64_t(n)) >> 32); }

// Patch SSDs are summed in one canonical order, which every backend follows bit for bit (the
// CPU's vector loops in csrc/cpu/patchmatch_cpu.cpp, the CUDA threads here), so that a tie is
// broken the same way everywhere:
//   * the target patch is clipped to the target image; its rows are walked top to bottom;
//   * a clipped row's terms (pixel, channel) are one contiguous run of n = width·C floats in the
//     HWC layout, and term e of the run is added to lane e mod kPmLanes of kPmLanes running sums,
//     which carry on from row to row;
//   * term = d·d, or w·(d·d) with the target pixel's weight w, for d = a - b;
//   * after each row the lanes are reduced by the fixed tree pm_lane_total (the horizontal sum
//     of a 256-bit register: halves, then pairs); once that total exceeds `bound` the candidate
//     cannot win and the total is returned as it is.
constexpr int kPmLanes = 8;

C10_HOST_DEVICE FI_INLINE float pm_lane_total(const float* l) {
  return pm_add(pm_add(pm_add(l[0], l[4]), pm_add(l[2], l[6])), pm_add(pm_add(l[1], l[5]), pm_add(l[3], l[7])));
}

// Clipped patch window of target pixel (ty, tx): rows [y0, y1] and columns [x0, x1] as offsets
// from the centre.
struct PMWindow {
  int y0, y1, x0, x1;
};

C10_HOST_DEVICE FI_INLINE PMWindow pm_window(const PMProblem& P, int64_t ty, int64_t tx) {
  const int r = P.r;
  return PMWindow{ty - r < 0 ? int(-ty) : -r, ty + r >= P.Ht ? int(P.Ht - 1 - ty) : r,
                  tx - r < 0 ? int(-tx) : -r, tx + r >= P.Wt ? int(P.Wt - 1 - tx) : r};
}

// SSD between the target patch at (ty, tx) and the source patch at (sy, sx), in the canonical
// order above (the source patch lies fully inside the source: only valid centres are ever
// evaluated).
C10_HOST_DEVICE FI_INLINE float pm_patch_distance(const PMProblem& P, int64_t ty, int64_t tx, int64_t sy, int64_t sx,
                                                  float bound) {
  const PMWindow win = pm_window(P, ty, tx);
  const int64_t C = P.C;
  const int64_t n = (win.x1 - win.x0 + 1) * C;
  float lanes[kPmLanes] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  float ssd = 0.0f;
  for (int dy = win.y0; dy <= win.y1; ++dy) {
    const int64_t y = ty + dy;
    const float* a = P.A + (y * P.Wt + tx + win.x0) * C;
    const float* b = P.B + ((sy + dy) * P.Ws + sx + win.x0) * C;
    const float* w = P.target_weight ? P.target_weight + y * P.Wt + tx + win.x0 : nullptr;
    for (int64_t e = 0; e < n; ++e) {
      const float d = a[e] - b[e];
      const float t = w ? pm_mul(w[e / C], pm_mul(d, d)) : pm_mul(d, d);
      lanes[e % kPmLanes] = pm_add(lanes[e % kPmLanes], t);
    }
    ssd = pm_lane_total(lanes);
    if (ssd > bound) return ssd;
  }
  return ssd;
}

// The default distance policy of the search functions below: the canonical scalar loop. The CPU
// backend passes a vectorised functor that computes the very same numbers.
struct PMScalarDistance {
  C10_HOST_DEVICE FI_INLINE float operator()(const PMProblem& P, int64_t ty, int64_t tx, int64_t sy, int64_t sx,
                                             float bound) const {
    return pm_patch_distance(P, ty, tx, sy, sx, bound);
  }
  static constexpr bool kPrefetches = false;  // see pm_random_search
  C10_HOST_DEVICE FI_INLINE void prefetch(const PMProblem&, int64_t, int64_t, int64_t, int64_t) const {}
};

// The best match of one target pixel while it is being improved.
struct PMBest {
  int32_t y, x;
  float d;
};

// Tries source centre (sy, sx) for target pixel (ty, tx): ignored when outside the source or not
// a valid centre, or when it is the current match; taken when strictly better (ties keep the
// earlier candidate, in the fixed candidate order). `dist` is the distance policy (Dist above).
template <class Dist>
C10_HOST_DEVICE FI_INLINE void pm_try(const PMProblem& P, const Dist& dist, int64_t ty, int64_t tx, int64_t sy,
                                      int64_t sx, PMBest& best) {
  if (sy < 0 || sx < 0 || sy >= P.Hs || sx >= P.Ws) return;
  if (!P.valid[sy * P.Ws + sx]) return;
  if (sy == best.y && sx == best.x) return;
  const float d = dist(P, ty, tx, sy, sx, best.d);
  if (d < best.d) {
    best.y = int32_t(sy);
    best.x = int32_t(sx);
    best.d = d;
  }
}

C10_HOST_DEVICE FI_INLINE bool pm_is_active(const PMProblem& P, int64_t pix) { return P.active == nullptr || P.active[pix] != 0; }

// Initial match of target pixel (ty, tx): the caller's `init` (e.g. a field upsampled from a
// coarser level) where it names a valid centre, else a uniformly random valid centre.
// Writes nnf[2*pix .. 2*pix+1] and dist[pix]; inactive pixels get (-1, -1) and kPmFar.
template <class Dist = PMScalarDistance>
C10_HOST_DEVICE FI_INLINE void pm_init_pixel(const PMProblem& P, const int32_t* init, int64_t ty, int64_t tx,
                                             int32_t* nnf, float* dist_out, const Dist& dist = Dist()) {
  const int64_t pix = ty * P.Wt + tx;
  if (!pm_is_active(P, pix)) {
    nnf[2 * pix] = -1;
    nnf[2 * pix + 1] = -1;
    dist_out[pix] = kPmFar;
    return;
  }
  int64_t sy = -1, sx = -1;
  if (init) {
    sy = init[2 * pix];
    sx = init[2 * pix + 1];
  }
  if (sy < 0 || sx < 0 || sy >= P.Hs || sx >= P.Ws || !P.valid[sy * P.Ws + sx]) {
    const int64_t k = pm_uniform(pm_random(P.seed, uint64_t(pix), 0xFFFFFFFFu, 0u), P.n_valid);
    const int64_t s = P.valid_list[k];
    sy = s / P.Ws;
    sx = s % P.Ws;
  }
  nnf[2 * pix] = int32_t(sy);
  nnf[2 * pix + 1] = int32_t(sx);
  dist_out[pix] = dist(P, ty, tx, sy, sx, kPmFar);
}

// Propagation candidate from the neighbour at offset (dy, dx): the neighbour's match, shifted
// back by the same offset (coherent patches have coherent matches).
template <class Dist>
C10_HOST_DEVICE FI_INLINE void pm_try_neighbour(const PMProblem& P, const Dist& dist, const int32_t* field, int64_t ty,
                                                int64_t tx, int64_t dy, int64_t dx, PMBest& best) {
  const int64_t ny = ty + dy, nx = tx + dx;
  if (ny < 0 || nx < 0 || ny >= P.Ht || nx >= P.Wt) return;
  const int64_t q = ny * P.Wt + nx;
  const int32_t my = field[2 * q], mx = field[2 * q + 1];
  if (my < 0) return;  // inactive neighbour
  pm_try(P, dist, ty, tx, int64_t(my) - dy, int64_t(mx) - dx, best);
}

// Random search around the current best: one sample per radius max(Hs, Ws), /2, ..., 1, drawn
// uniformly in the square of that radius (clipped to the source) around the best match so far;
// draws keyed on `iteration`. A perfect match (distance 0) cannot be beaten and ends the search.
//
// The samples are scattered over the source, and on the CPU waiting for each one's memory in
// turn was most of the time. So a distance policy with kPrefetches first draws every sample as it
// would be drawn around the match the search starts from, and prefetches it; the search itself,
// the same loop on every backend, draws them again around the best so far (a sample moves only
// when an earlier one improved the match).
//
// Sample k (radius max(Hs, Ws) / 2^k) around (cy, cx).
C10_HOST_DEVICE FI_INLINE void pm_sample(const PMProblem& P, uint64_t pix, uint32_t iteration, uint32_t k,
                                         int64_t radius, int64_t cy, int64_t cx, int64_t& sy, int64_t& sx) {
  const int64_t ylo = cy - radius < 0 ? 0 : cy - radius, yhi = cy + radius >= P.Hs ? P.Hs - 1 : cy + radius;
  const int64_t xlo = cx - radius < 0 ? 0 : cx - radius, xhi = cx + radius >= P.Ws ? P.Ws - 1 : cx + radius;
  sy = ylo + pm_uniform(pm_random(P.seed, pix, iteration, 2 * k), yhi - ylo + 1);
  sx = xlo + pm_uniform(pm_random(P.seed, pix, iteration, 2 * k + 1), xhi - xlo + 1);
}

template <class Dist>
C10_HOST_DEVICE FI_INLINE void pm_random_search(const PMProblem& P, const Dist& dist, int64_t ty, int64_t tx,
                                                uint32_t iteration, PMBest& best) {
  const uint64_t pix = uint64_t(ty * P.Wt + tx);
  const int64_t first_radius = P.Hs > P.Ws ? P.Hs : P.Ws;
  int64_t sy, sx;
  if constexpr (Dist::kPrefetches) {
    uint32_t k = 0;
    for (int64_t radius = first_radius; radius >= 1 && best.d > 0.0f; radius /= 2, ++k) {
      pm_sample(P, pix, iteration, k, radius, best.y, best.x, sy, sx);
      dist.prefetch(P, ty, tx, sy, sx);
    }
  }
  uint32_t k = 0;
  for (int64_t radius = first_radius; radius >= 1 && best.d > 0.0f; radius /= 2, ++k) {
    pm_sample(P, pix, iteration, k, radius, best.y, best.x, sy, sx);
    pm_try(P, dist, ty, tx, sy, sx, best);
  }
}

// One jump-flooding pass for target pixel (ty, tx): start from its match in `prev`, try the
// matches of the 8 neighbours at distance `step` (read from `prev` too, so the pass is a pure
// function of the previous field), then, if `search`, a random search keyed on `iteration`.
// Writes the result to next/next_dist.
template <class Dist = PMScalarDistance>
C10_HOST_DEVICE FI_INLINE void pm_jump_pixel(const PMProblem& P, const int32_t* prev, const float* prev_dist,
                                             int64_t ty, int64_t tx, int64_t step, bool search, uint32_t iteration,
                                             int32_t* next, float* next_dist, const Dist& dist = Dist()) {
  const int64_t pix = ty * P.Wt + tx;
  PMBest best{prev[2 * pix], prev[2 * pix + 1], prev_dist[pix]};
  if (best.y >= 0) {
    for (int64_t dy = -1; dy <= 1; ++dy)
      for (int64_t dx = -1; dx <= 1; ++dx)
        if (dy != 0 || dx != 0) pm_try_neighbour(P, dist, prev, ty, tx, dy * step, dx * step, best);
    if (search) pm_random_search(P, dist, ty, tx, iteration, best);
  }
  next[2 * pix] = best.y;
  next[2 * pix + 1] = best.x;
  next_dist[pix] = best.d;
}

// A rectangle of the target scanned as one unit of work: rows [y0, y1), columns [x0, x1).
struct PMTile {
  int64_t y0, y1, x0, x1;
};

// One pixel of classic scan-order PatchMatch: forward scans (dir = +1) try the left and upper
// neighbours, backward scans (dir = -1) the right and lower ones, then random search. The tile's
// pixels are updated in place in `field`; neighbours outside the tile are read from `frozen` (the
// field at the start of the iteration), so that tiles can be scanned in any order, on any number
// of threads, and still give one result.
template <class Dist = PMScalarDistance>
C10_HOST_DEVICE FI_INLINE void pm_scan_pixel(const PMProblem& P, int32_t* field, float* dist_io, const int32_t* frozen,
                                             const PMTile& tile, int64_t ty, int64_t tx, int dir, uint32_t iteration,
                                             const Dist& dist = Dist()) {
  const int64_t pix = ty * P.Wt + tx;
  PMBest best{field[2 * pix], field[2 * pix + 1], dist_io[pix]};
  if (best.y < 0) return;
  const int64_t nx = tx - dir, ny = ty - dir;
  pm_try_neighbour(P, dist, (nx >= tile.x0 && nx < tile.x1) ? field : frozen, ty, tx, 0, -dir, best);
  pm_try_neighbour(P, dist, (ny >= tile.y0 && ny < tile.y1) ? field : frozen, ty, tx, -dir, 0, best);
  pm_random_search(P, dist, ty, tx, iteration, best);
  field[2 * pix] = best.y;
  field[2 * pix + 1] = best.x;
  dist_io[pix] = best.d;
}

// The distance of target pixel (ty, tx) as the ops return it: the raw SSD divided by the
// (weighted) number of the clipped patch's pixels, so that it is comparable between pixels at
// the border and inside (the voting weights rely on that); +inf where the pixel has no match.
C10_HOST_DEVICE FI_INLINE float pm_mean_distance(const PMProblem& P, const int32_t* nnf, const float* dist, int64_t ty,
                                                 int64_t tx) {
  const int64_t pix = ty * P.Wt + tx;
  if (nnf[2 * pix] < 0) return __builtin_huge_valf();
  const PMWindow win = pm_window(P, ty, tx);
  float norm = 0.0f;
  if (P.target_weight) {
    for (int dy = win.y0; dy <= win.y1; ++dy)
      for (int dx = win.x0; dx <= win.x1; ++dx) norm = pm_add(norm, P.target_weight[(ty + dy) * P.Wt + tx + dx]);
  } else {
    norm = float((win.y1 - win.y0 + 1) * (win.x1 - win.x0 + 1));
  }
  return norm > 0.0f ? dist[pix] / norm : dist[pix];
}

// Whether a patch of radius r centred at (y, x) lies inside the image and on valid pixels only.
C10_HOST_DEVICE FI_INLINE uint8_t pm_valid_centre(const uint8_t* valid, int64_t H, int64_t W, int r, int64_t y,
                                                  int64_t x) {
  if (y < r || x < r || y + r >= H || x + r >= W) return 0;
  for (int64_t v = y - r; v <= y + r; ++v)
    for (int64_t u = x - r; u <= x + r; ++u)
      if (!valid[v * W + u]) return 0;
  return 1;
}

// The source pixel that matched patch q = (y + dy, x + dx) proposes for target pixel (y, x), as a
// linear index into the source, with the patch's weight; false when the patch does not vote
// (outside the image, inactive, weight not > 0, or the proposal outside the source).
C10_HOST_DEVICE FI_INLINE bool pm_vote_candidate(int64_t Hs, int64_t Ws, const int32_t* nnf, const float* weight,
                                                 int64_t H, int64_t W, int64_t y, int64_t x, int dy, int dx,
                                                 int64_t& s, float& w) {
  const int64_t qy = y + dy, qx = x + dx;
  if (qy < 0 || qy >= H || qx < 0 || qx >= W) return false;
  const int64_t q = qy * W + qx;
  const int32_t my = nnf[2 * q], mx = nnf[2 * q + 1];
  if (my < 0) return false;
  w = weight ? weight[q] : 1.0f;
  if (!(w > 0.0f)) return false;
  const int64_t sy = int64_t(my) - dy, sx = int64_t(mx) - dx;
  if (sy < 0 || sx < 0 || sy >= Hs || sx >= Ws) return false;
  s = sy * Ws + sx;
  return true;
}

// Voting (gather form, deterministic, no atomics): target pixel (y, x) becomes the weighted mean
// of the values that every overlapping matched patch proposes for it,
//   out(p) = Σ_q w(q) · B(nnf(q) + p - q) / Σ_q w(q)   over active q with |q - p|∞ ≤ r,
// written to out[(y*W + x)*C ...]; 0 where no patch covers the pixel. Returns Σ_q w(q).
C10_HOST_DEVICE FI_INLINE float pm_vote_pixel(const float* B, int64_t Hs, int64_t Ws, int64_t C, const int32_t* nnf,
                                              const float* weight, int64_t H, int64_t W, int r, int64_t y, int64_t x,
                                              float* out) {
  float* o = out + (y * W + x) * C;
  for (int64_t c = 0; c < C; ++c) o[c] = 0.0f;
  float total = 0.0f;
  for (int dy = -r; dy <= r; ++dy) {
    for (int dx = -r; dx <= r; ++dx) {
      int64_t s;
      float w;
      if (!pm_vote_candidate(Hs, Ws, nnf, weight, H, W, y, x, dy, dx, s, w)) continue;
      const float* b = B + s * C;
      for (int64_t c = 0; c < C; ++c) o[c] = pm_add(o[c], pm_mul(w, b[c]));
      total = pm_add(total, w);
    }
  }
  if (total > 0.0f)
    for (int64_t c = 0; c < C; ++c) o[c] = o[c] / total;
  return total;
}

// How a vote combines the values the overlapping patches propose for a pixel.
enum PMVoteReduce : int {
  kPmVoteMean = 0,       // their weighted mean (pm_vote_pixel)
  kPmVotePlurality = 1,  // the one source pixel proposed with the most weight (pm_vote_plurality_pixel)
};

// Plurality voting: of the source pixels that the overlapping matched patches propose for target
// pixel (y, x) (those pm_vote_pixel averages), the one proposed with the largest total weight,
// copied as it is. Patches that propose the same source pixel are coherent (their matches share
// one offset), so this keeps the content the most (and most trusted) patches agree on instead of
// averaging every proposal into a blur; where no two agree it is the single most trusted patch's.
// Ties go to the candidate met first (rows of q top to bottom, left to right), and each group's
// weight is summed in that same order, so every backend picks the same pixel. O(K) for the K
// patches covering a pixel up to 9x9 patches, O(K²) beyond. Writes
// out[(y*W + x)*C ...] (0 where nothing votes); returns Σ_q w(q), as pm_vote_pixel does.
constexpr int kPmPluralityBuffer = 81;  // vote patches up to 9x9 gather their candidates first
constexpr int kPmPluralitySlots = 256;  // open-addressing table of their groups (>= 2x the candidates)

C10_HOST_DEVICE FI_INLINE float pm_vote_plurality_pixel(const float* B, int64_t Hs, int64_t Ws, int64_t C,
                                                        const int32_t* nnf, const float* weight, int64_t H, int64_t W,
                                                        int r, int64_t y, int64_t x, float* out) {
  float total = 0.0f, best_w = 0.0f;
  int64_t best = -1;
  if ((2 * r + 1) * (2 * r + 1) <= kPmPluralityBuffer) {
    // The candidates in window order, each added to its group's sum in a small hash table (so
    // every group is summed in window order), then the groups compared in the order of their
    // first members: O(K) per pixel.
    int64_t key[kPmPluralityBuffer];
    int16_t slot_of[kPmPluralityBuffer];
    int64_t slot_key[kPmPluralitySlots];
    float slot_w[kPmPluralitySlots];
    // The table's size: the power of two at least twice the candidates (32 for 3x3 patches, 128
    // for 7x7), so that a probe rarely passes more than a slot or two.
    const int K = (2 * r + 1) * (2 * r + 1);
    int bits = 5;
    while ((1 << bits) < 2 * K) ++bits;
    const int slots = 1 << bits;
    for (int k = 0; k < slots; ++k) slot_key[k] = -1;
    int n = 0;
    for (int dy = -r; dy <= r; ++dy)
      for (int dx = -r; dx <= r; ++dx) {
        float w;
        if (!pm_vote_candidate(Hs, Ws, nnf, weight, H, W, y, x, dy, dx, key[n], w)) continue;
        total = pm_add(total, w);
        int k = int((uint64_t(key[n]) * 0x9E3779B97F4A7C15ull) >> (64 - bits));  // Fibonacci hashing
        while (slot_key[k] >= 0 && slot_key[k] != key[n]) k = (k + 1) & (slots - 1);
        if (slot_key[k] < 0) {
          slot_key[k] = key[n];
          slot_w[k] = w;
        } else {
          slot_w[k] = pm_add(slot_w[k], w);
        }
        slot_of[n++] = int16_t(k);
      }
    for (int i = 0; i < n; ++i) {
      const float group = slot_w[slot_of[i]];
      if (group > best_w) {  // strict: of equal groups the one met first wins
        best_w = group;
        best = key[i];
      }
    }
  } else {
    // Larger patches: the same sums and the same choice, the candidates recomputed instead of stored.
    for (int dy = -r; dy <= r; ++dy) {
      for (int dx = -r; dx <= r; ++dx) {
        int64_t s;
        float w;
        if (!pm_vote_candidate(Hs, Ws, nnf, weight, H, W, y, x, dy, dx, s, w)) continue;
        total = pm_add(total, w);
        if (s == best) continue;  // the leading group: scored already
        // The group's weight, summed over all candidates in window order: every member of a
        // group gets the same sum, and only the first can win (strict >).
        float group = 0.0f;
        for (int ey = -r; ey <= r; ++ey)
          for (int ex = -r; ex <= r; ++ex) {
            int64_t t;
            float v;
            if (pm_vote_candidate(Hs, Ws, nnf, weight, H, W, y, x, ey, ex, t, v) && t == s) group = pm_add(group, v);
          }
        if (group > best_w) {
          best_w = group;
          best = s;
        }
      }
    }
  }
  float* o = out + (y * W + x) * C;
  const float* b = best >= 0 ? B + best * C : nullptr;
  for (int64_t c = 0; c < C; ++c) o[c] = b ? b[c] : 0.0f;
  return total;
}

// pm_vote_pixel (reduce = kPmVoteMean) or pm_vote_plurality_pixel (kPmVotePlurality) where mask
// (or null: everywhere) is non-zero; elsewhere out = 0 and returns 0.
C10_HOST_DEVICE FI_INLINE float pm_vote_masked_pixel(const float* B, int64_t Hs, int64_t Ws, int64_t C,
                                                     const int32_t* nnf, const float* weight, const uint8_t* mask,
                                                     int64_t H, int64_t W, int r, int reduce, int64_t y, int64_t x,
                                                     float* out) {
  if (mask == nullptr || mask[y * W + x] != 0)
    return reduce == kPmVotePlurality ? pm_vote_plurality_pixel(B, Hs, Ws, C, nnf, weight, H, W, r, y, x, out)
                                      : pm_vote_pixel(B, Hs, Ws, C, nnf, weight, H, W, r, y, x, out);
  float* o = out + (y * W + x) * C;
  for (int64_t c = 0; c < C; ++c) o[c] = 0.0f;
  return 0.0f;
}

}  // namespace fastinpaint
