// CPU backend of PatchMatch and voting: at::parallel_for loops around the per-pixel math of
// kernels/patchmatch.h. Rows are the unit of work: a row of patch distances is enough work to
// amortise a task, and neighbouring rows share cache lines of both images.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#define FI_BACKEND_NS cpu
#include "kernels/patchmatch_backend.h"
#undef FI_BACKEND_NS

namespace fastinpaint {
namespace cpu {

namespace {
// Scan-order bands: fixed height, independent of the thread count, so the field does not
// depend on how many threads ran it (see pm_scan_pixel).
constexpr int64_t kScanBandRows = 32;
}  // namespace

const char* pm_init(const PMProblem& P, const int32_t* init, int32_t* nnf, float* dist, void* /*stream*/) {
  at::parallel_for(0, P.Ht, 1, [&](int64_t begin, int64_t end) {
    for (int64_t y = begin; y < end; ++y)
      for (int64_t x = 0; x < P.Wt; ++x) pm_init_pixel(P, init, y, x, nnf, dist);
  });
  return nullptr;
}

const char* pm_jump_pass(const PMProblem& P, const int32_t* prev, const float* prev_dist, int32_t* next,
                         float* next_dist, int64_t step, bool search, uint32_t iteration, void* /*stream*/) {
  at::parallel_for(0, P.Ht, 1, [&](int64_t begin, int64_t end) {
    for (int64_t y = begin; y < end; ++y)
      for (int64_t x = 0; x < P.Wt; ++x) pm_jump_pixel(P, prev, prev_dist, y, x, step, search, iteration, next, next_dist);
  });
  return nullptr;
}

const char* pm_scan_iteration(const PMProblem& P, int32_t* nnf, float* dist, uint32_t iteration, void* /*stream*/) {
  const std::vector<int32_t> frozen(nnf, nnf + 2 * P.Ht * P.Wt);
  const int dir = (iteration % 2 == 0) ? 1 : -1;
  const int64_t bands = (P.Ht + kScanBandRows - 1) / kScanBandRows;
  at::parallel_for(0, bands, 1, [&](int64_t begin, int64_t end) {
    for (int64_t band = begin; band < end; ++band) {
      const int64_t lo = band * kScanBandRows, hi = std::min(P.Ht, lo + kScanBandRows);
      if (dir > 0) {
        for (int64_t y = lo; y < hi; ++y)
          for (int64_t x = 0; x < P.Wt; ++x) pm_scan_pixel(P, nnf, dist, frozen.data(), lo, hi, y, x, dir, iteration);
      } else {
        for (int64_t y = hi - 1; y >= lo; --y)
          for (int64_t x = P.Wt - 1; x >= 0; --x)
            pm_scan_pixel(P, nnf, dist, frozen.data(), lo, hi, y, x, dir, iteration);
      }
    }
  });
  return nullptr;
}

const char* pm_vote(const float* source, int64_t Hs, int64_t Ws, int64_t C, const int32_t* nnf, const float* weight,
                    int64_t H, int64_t W, int r, float* out, float* total, void* /*stream*/) {
  at::parallel_for(0, H, 1, [&](int64_t begin, int64_t end) {
    for (int64_t y = begin; y < end; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const float t = pm_vote_pixel(source, Hs, Ws, C, nnf, weight, H, W, r, y, x, out);
        if (total) total[y * W + x] = t;
      }
  });
  return nullptr;
}

}  // namespace cpu
}  // namespace fastinpaint
