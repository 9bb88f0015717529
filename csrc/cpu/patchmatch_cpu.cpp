// CPU backend of PatchMatch and voting: loops around the per-pixel math of kernels/patchmatch.h.
//
// Compiled once per instruction set (CMakeLists.txt: FASTINPAINT_CPU_ISAS), each copy in its own
// namespace cpu::<isa>; csrc/cpu/patchmatch_dispatch.cpp picks one at run time. The patch
// distance, nearly all of the time, runs on GCC vectors of kPmLanes floats (one AVX register, two
// SSE ones) in the canonical order of kernels/patchmatch.h, so every copy gives the same field as
// the CUDA kernels. This file is compiled with -ffp-contract=off: a fused multiply-add would round
// differently from the canonical mul-then-add.
//
// Threads: every pass is cut into many more chunks than threads (tiles, or a few rows), taken
// from a shared counter. A thread the OS deschedules holds up one small chunk, not a fixed share
// of the pass. Chunks are fixed by the image, not by the thread count, so results do not depend
// on it.
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#ifndef FASTINPAINT_CPU_ISA
#error "compile with FASTINPAINT_CPU_ISA=<isa> (see CMakeLists.txt)"
#endif
#define FI_BACKEND_NS cpu::FASTINPAINT_CPU_ISA
#include "kernels/patchmatch_backend.h"
#undef FI_BACKEND_NS

namespace fastinpaint {
namespace cpu {
namespace FASTINPAINT_CPU_ISA {

namespace {

typedef float v8f __attribute__((vector_size(kPmLanes * sizeof(float))));
typedef int32_t v8i __attribute__((vector_size(kPmLanes * sizeof(int32_t))));
typedef float v4f __attribute__((vector_size(4 * sizeof(float))));
static_assert(kPmLanes == 8, "the vector types below hold kPmLanes floats");

FI_INLINE v8f load(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// pm_lane_total on a register: halves, then pairs.
FI_INLINE float lane_total(v8f l) {
  const v4f lo = __builtin_shufflevector(l, l, 0, 1, 2, 3);
  const v4f hi = __builtin_shufflevector(l, l, 4, 5, 6, 7);
  const v4f s = lo + hi;
  return (s[0] + s[2]) + (s[1] + s[3]);
}

// pm_patch_distance, kPmLanes terms at a time. A row's last, partial register is loaded whole
// (the op glue leaves kPmLanes floats of slack after both images) and its extra lanes are
// cleared after the subtraction, so they add +0 to their lanes, which changes no sum.
struct VectorDistance {
  FI_INLINE float operator()(const PMProblem& P, int64_t ty, int64_t tx, int64_t sy, int64_t sx, float bound) const {
    const PMWindow win = pm_window(P, ty, tx);
    const int64_t C = P.C;
    const int64_t n = (win.x1 - win.x0 + 1) * C;
    const int64_t whole = n / kPmLanes * kPmLanes;
    const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
    const v8i keep = lane < int32_t(n - whole);  // all ones in the lanes of the last register's terms
    v8f acc = {};
    float ssd = 0.0f;
    for (int dy = win.y0; dy <= win.y1; ++dy) {
      const int64_t y = ty + dy;
      const float* a = P.A + (y * P.Wt + tx + win.x0) * C;
      const float* b = P.B + ((sy + dy) * P.Ws + sx + win.x0) * C;
      if (P.target_weight == nullptr) {
        int64_t e = 0;
        for (; e < whole; e += kPmLanes) {
          const v8f d = load(a + e) - load(b + e);
          acc += d * d;
        }
        if (e < n) {
          const v8f d = (v8f)((v8i)(load(a + e) - load(b + e)) & keep);
          acc += d * d;
        }
      } else {
        const float* w = P.target_weight + y * P.Wt + tx + win.x0;
        for (int64_t e = 0; e < n; e += kPmLanes) {
          v8f wv = {};
          for (int j = 0; j < kPmLanes && e + j < n; ++j) wv[j] = w[(e + j) / C];
          v8f d = load(a + e) - load(b + e);
          if (e + kPmLanes > n) d = (v8f)((v8i)d & keep);
          acc += wv * (d * d);
        }
      }
      ssd = lane_total(acc);
      if (ssd > bound) return ssd;
    }
    return ssd;
  }

  static constexpr bool kPrefetches = true;
  // The sample's validity byte and the first rows of its source patch, which every comparison
  // reads (most stop after a row or two: the early exit).
  FI_INLINE void prefetch(const PMProblem& P, int64_t ty, int64_t tx, int64_t sy, int64_t sx) const {
    __builtin_prefetch(P.valid + sy * P.Ws + sx);
    const PMWindow win = pm_window(P, ty, tx);
    const float* b = P.B + ((sy + win.y0) * P.Ws + sx + win.x0) * P.C;
    const int64_t bytes = (win.x1 - win.x0 + 1) * P.C * int64_t(sizeof(float));
    for (int row = 0; row < 2 && win.y0 + row <= win.y1; ++row, b += P.Ws * P.C)
      for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(reinterpret_cast<const char*>(b) + off);
  }
};

// Runs chunk(i) for every i in [0, n) on the intra-op threads, each thread taking the next
// unclaimed chunk until none is left.
template <class F>
void for_each_chunk(int64_t n, const F& chunk) {
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), n);
  if (threads <= 1 || at::in_parallel_region()) {
    for (int64_t i = 0; i < n; ++i) chunk(i);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n;
         i = next.fetch_add(1, std::memory_order_relaxed))
      chunk(i);
  });
}

// Row chunks: a few rows of a 512-px image per chunk, at least 32 chunks in all where the image
// has the rows.
int64_t rows_per_chunk(int64_t H) { return std::max<int64_t>(1, std::min<int64_t>(8, H / 32)); }

template <class F>
void for_each_row(int64_t H, const F& row) {
  const int64_t step = rows_per_chunk(H);
  for_each_chunk((H + step - 1) / step, [&](int64_t c) {
    for (int64_t y = c * step, end = std::min(H, y + step); y < end; ++y) row(y);
  });
}

// Scan-order tiles: their size fixes which neighbours come from the frozen field, so it must
// not depend on the thread count. 16 x 64 cuts a 512-px image's hole into dozens of chunks.
constexpr int64_t kTileRows = 16, kTileCols = 64;

// Copies tile t of a field [Ht, Wt, 2] from src to dst.
void copy_tile(const PMProblem& P, const PMTile& t, const int32_t* src, int32_t* dst) {
  for (int64_t y = t.y0; y < t.y1; ++y)
    std::memcpy(dst + 2 * (y * P.Wt + t.x0), src + 2 * (y * P.Wt + t.x0), sizeof(int32_t) * 2 * (t.x1 - t.x0));
}

}  // namespace

const char* pm_init(const PMProblem& P, const int32_t* init, int32_t* nnf, float* dist, void* /*stream*/) {
  for_each_row(P.Ht, [&](int64_t y) {
    for (int64_t x = 0; x < P.Wt; ++x) pm_init_pixel(P, init, y, x, nnf, dist, VectorDistance());
  });
  return nullptr;
}

const char* pm_jump_pass(const PMProblem& P, const int32_t* prev, const float* prev_dist, int32_t* next,
                         float* next_dist, int64_t step, bool search, uint32_t iteration, void* /*stream*/) {
  for_each_row(P.Ht, [&](int64_t y) {
    for (int64_t x = 0; x < P.Wt; ++x)
      pm_jump_pixel(P, prev, prev_dist, y, x, step, search, iteration, next, next_dist, VectorDistance());
  });
  return nullptr;
}

const char* pm_scan(const PMProblem& P, int32_t* nnf, float* dist, uint32_t first_iteration, int64_t iterations,
                    void* /*stream*/) {
  if (iterations <= 0) return nullptr;
  // Tiles with at least one active pixel (inactive ones hold (-1, -1) in both fields).
  std::vector<PMTile> tiles;
  for (int64_t y0 = 0; y0 < P.Ht; y0 += kTileRows)
    for (int64_t x0 = 0; x0 < P.Wt; x0 += kTileCols) {
      const PMTile t{y0, std::min(P.Ht, y0 + kTileRows), x0, std::min(P.Wt, x0 + kTileCols)};
      bool any = false;
      for (int64_t y = t.y0; y < t.y1 && !any; ++y)
        for (int64_t x = t.x0; x < t.x1 && !any; ++x) any = nnf[2 * (y * P.Wt + x)] >= 0;
      if (any) tiles.push_back(t);
    }
  // Each iteration reads the previous field (`frozen`) and scans every tile in a copy of it.
  std::vector<int32_t> other(nnf, nnf + 2 * P.Ht * P.Wt);
  int32_t* frozen = nnf;
  int32_t* field = other.data();
  for (int64_t k = 0; k < iterations; ++k) {
    const uint32_t iteration = first_iteration + uint32_t(k);
    const int dir = (iteration % 2 == 0) ? 1 : -1;
    for_each_chunk(int64_t(tiles.size()), [&](int64_t i) {
      const PMTile& t = tiles[i];
      copy_tile(P, t, frozen, field);
      if (dir > 0) {
        for (int64_t y = t.y0; y < t.y1; ++y)
          for (int64_t x = t.x0; x < t.x1; ++x)
            pm_scan_pixel(P, field, dist, frozen, t, y, x, dir, iteration, VectorDistance());
      } else {
        for (int64_t y = t.y1 - 1; y >= t.y0; --y)
          for (int64_t x = t.x1 - 1; x >= t.x0; --x)
            pm_scan_pixel(P, field, dist, frozen, t, y, x, dir, iteration, VectorDistance());
      }
    });
    std::swap(frozen, field);
  }
  if (frozen != nnf)  // the last iteration wrote the scratch copy: bring its tiles back
    for_each_chunk(int64_t(tiles.size()), [&](int64_t i) { copy_tile(P, tiles[i], frozen, nnf); });
  return nullptr;
}

// pm_valid_centre for every pixel in O(H·W) rather than O(H·W·r²): per row, the length of the
// run of valid pixels ending at each pixel, then per column the number of consecutive rows whose
// horizontal test passes; a centre is valid when both reach 2r + 1.
const char* pm_valid_centres(const uint8_t* valid, int64_t H, int64_t W, int r, uint8_t* out, void* /*stream*/) {
  const int64_t p = 2 * int64_t(r) + 1;
  std::vector<uint8_t> across(H * W, 0);  // 1 where the row segment [x - r, x + r] is all valid
  for_each_row(H, [&](int64_t y) {
    int64_t run = 0;
    for (int64_t x = 0; x < W; ++x) {
      run = valid[y * W + x] ? run + 1 : 0;
      if (run >= p) across[y * W + x - r] = 1;
    }
  });
  const int64_t cols_per_chunk = 256;
  for_each_chunk((W + cols_per_chunk - 1) / cols_per_chunk, [&](int64_t c) {
    const int64_t x0 = c * cols_per_chunk, x1 = std::min(W, x0 + cols_per_chunk);
    std::vector<int64_t> run(x1 - x0, 0);
    for (int64_t y = 0; y < H; ++y) {
      for (int64_t x = x0; x < x1; ++x) out[y * W + x] = 0;
      for (int64_t x = x0; x < x1; ++x) {
        int64_t& n = run[x - x0];
        n = across[y * W + x] ? n + 1 : 0;
        if (n >= p) out[(y - r) * W + x] = 1;
      }
    }
  });
  return nullptr;
}

const char* pm_mean_distances(const PMProblem& P, const int32_t* nnf, const float* dist, float* mean,
                              void* /*stream*/) {
  for_each_row(P.Ht, [&](int64_t y) {
    for (int64_t x = 0; x < P.Wt; ++x) mean[y * P.Wt + x] = pm_mean_distance(P, nnf, dist, y, x);
  });
  return nullptr;
}

const char* pm_vote(const float* source, int64_t Hs, int64_t Ws, int64_t C, const int32_t* nnf, const float* weight,
                    const uint8_t* mask, int64_t H, int64_t W, int r, int reduce, float* out, float* total,
                    void* /*stream*/) {
  for_each_row(H, [&](int64_t y) {
    for (int64_t x = 0; x < W; ++x) {
      const float t = pm_vote_masked_pixel(source, Hs, Ws, C, nnf, weight, mask, H, W, r, reduce, y, x, out);
      if (total) total[y * W + x] = t;
    }
  });
  return nullptr;
}

}  // namespace FASTINPAINT_CPU_ISA
}  // namespace cpu
}  // namespace fastinpaint
