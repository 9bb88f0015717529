// One level of the biharmonic solver's hierarchy: its image-shaped grid, its unknowns as runs of
// consecutive slots of a row, and its planes and work vectors, with the bookkeeping that keeps
// the planes zero from one solve to the next. Every other part walks these runs.
// Compiled only as part of solver.cpp, once per instruction set (see simd.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>

#include "cpu/biharmonic/simd.h"
#include "kernels/biharmonic.h"

namespace fastinpaint {
namespace cpu {
namespace FASTINPAINT_CPU_ISA {
namespace {

// Unknown runs of a row at most this far apart are merged into one run, the pixels between
// being zero slots: a run costs a fixed overhead per tap and channel, a gap pixel a few cycles.
constexpr int64_t kGapMerge = 8;

// Consecutive slots of a row: unknowns, and the (zero) gaps between them (kGapMerge).
struct Run {
  int32_t y = 0, x0 = 0, len = 0;
  bool border = false;  // finest level: pixels within 2 of the image edge (stencil from the table)
  int64_t g = 0;        // grid index of (y, x0)
  int64_t k = 0;        // compact index of (y, x0)
  int64_t blk = 0;      // index of the run's first kBlock-block in Level::blocks (not for the
                        // finest level's interior runs, which have none)
  int64_t rank = 0;     // unknowns before the run (raster order)
};

// Calls f(run, grid index, compact index, length) for every run.
template <typename F>
inline void for_runs(const std::vector<Run>& runs, const F& f) {
  for (const Run& R : runs) f(R, R.g, R.k, static_cast<int64_t>(R.len));
}

// for_runs split across the intra-op threads when there are at least kParallelSlots slots (the
// runs must be independent). Below that, waking the threads costs more than the loop.
constexpr int64_t kParallelSlots = 8192;
template <typename F>
inline void par_runs(const std::vector<Run>& runs, int64_t slots, const F& f, int64_t min_slots = kParallelSlots) {
  const int64_t count = static_cast<int64_t>(runs.size());
  const int threads = at::get_num_threads();
  if (slots < min_slots || threads < 2) return for_runs(runs, f);
  at::parallel_for(0, count, (count + threads - 1) / threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) f(runs[i], runs[i].g, runs[i].k, static_cast<int64_t>(runs[i].len));
  });
}

struct Level {
  int64_t H = 0, W = 0, S = 0, plane = 0;  // grid H x W, row stride S = W + 4, plane = (H + 4) S
  int64_t n = 0;                           // slots of the runs (the unknowns and the gaps between them)
  int64_t unknowns = 0;
  int taps = 0;
  int64_t off[kBhCoarseTaps] = {};  // grid offset of each tap
  std::vector<Run> runs;
  std::vector<int64_t> share;    // team thread t works on runs [share[t], share[t + 1]) (split_runs)
  int workers = 1;               // threads with a non-empty share
  std::vector<uint8_t> unknown;  // plane: 1 at unknowns
  std::vector<float> mask;       // n: 1 at unknowns, 0 in gaps
  std::vector<float> coef;       // setup only: taps planes, zero off the unknowns and on taps reaching none
  std::vector<float> blocks;     // the coefficients by row block: [block][tap][kBlock], so that a
                                 // block's taps are contiguous (planes: 25 streams, cache misses);
                                 // the finest level has them for its border runs only
  int64_t n_blocks = 0;
  std::vector<float> dinv;       // n: 1 / diagonal
  double lmax = 0.0;             // spectral bound of D^-1 A for the smoother
  // finest level
  bool finest = false;
  float interior[kBhFineTaps] = {};  // the constant stencil of interior pixels
  const float* table = nullptr;      // 81 x 13 classes, for border runs
  // Work vectors: grid planes (C each) and compact arrays (C x n). All are zero off the unknowns:
  // every product that could make a gap non-zero is masked (finest-level matvec, prolongation).
  std::vector<float> x, d, d_next, ke;        // d doubles as the residual that is restricted
  std::vector<float> b, rc, kr, kp, kq;    // kr: FMG's right-hand side; kp, kq: K-cycle's p1, A p
  // The grid planes (coef; x, d, d_next, ke) are zero everywhere: after use, their slots are
  // zeroed again (clean_planes), so that the next solve on this level object need not clear whole
  // planes (most of a plane is off the hole; clearing them cost ~10 % of a solve).
  bool coef_clean = false, work_clean = false;
  // coarsest level
  std::vector<double> chol;  // dense Cholesky factor (lower, n x n); empty if coarsening stalled
  std::vector<double> chol_rhs;  // its right-hand sides and solutions, [unknown][channel]
  std::vector<int32_t> index;  // coarsest: plane -> compact index, -1 elsewhere

  int64_t grid(int64_t y, int64_t xx) const { return (y + 2) * S + xx + 2; }
};

void init_grid(Level& L, int64_t H, int64_t W, int taps) {
  L.H = H;
  L.W = W;
  L.S = W + 4;
  L.plane = (H + 4) * L.S;
  L.taps = taps;
  for (int k = 0; k < taps; ++k) {
    int dy, dx;
    bh_tap_offset(taps, k, dy, dx);
    L.off[k] = dy * L.S + dx;
  }
  L.unknown.assign(L.plane + kSlack, 0);
}

// Runs of slots (raster order, so the unknowns' order is their raster order). On the finest level
// runs are cut where the image-border band (2 pixels) begins and ends.
void build_runs(Level& L) {
  L.runs.clear();
  L.unknowns = 0;
  L.n_blocks = 0;
  int64_t k = 0;
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (int64_t y = 0; y < L.H; ++y) {
    const uint8_t* row = L.unknown.data() + L.grid(y, 0);
    spans.clear();
    for (int64_t xx = 0; xx < L.W;) {
      if (!row[xx]) {
        ++xx;
        continue;
      }
      int64_t end = xx;
      while (end < L.W && row[end]) ++end;
      if (!spans.empty() && xx - spans.back().second <= kGapMerge)
        spans.back().second = end;
      else
        spans.emplace_back(xx, end);
      xx = end;
    }
    for (const auto& [a0, e0] : spans) {
      int64_t cuts[4] = {a0, e0, e0, e0};
      if (L.finest && y >= 2 && y < L.H - 2) {  // split off the left and right border bands
        cuts[1] = std::clamp<int64_t>(2, a0, e0);
        cuts[2] = std::clamp<int64_t>(L.W - 2, cuts[1], e0);
      }
      for (int s = 0; s < 3; ++s) {
        const int64_t a = cuts[s], e = cuts[s + 1];
        if (e <= a) continue;
        Run R;
        R.y = static_cast<int32_t>(y);
        R.x0 = static_cast<int32_t>(a);
        R.len = static_cast<int32_t>(e - a);
        R.border = L.finest && (y < 2 || y >= L.H - 2 || a < 2 || e > L.W - 2);
        R.g = L.grid(y, a);
        R.k = k;
        R.blk = L.n_blocks;
        R.rank = L.unknowns;
        for (int64_t xx = a; xx < e; ++xx) L.unknowns += row[xx];
        k += e - a;
        if (!L.finest || R.border) L.n_blocks += (e - a + kBlock - 1) / kBlock;
        L.runs.push_back(R);
      }
    }
  }
  L.n = k;
  L.mask.assign(L.n + kBlock, 0.0f);  // + slack: matvec_block reads whole blocks
  for_runs(L.runs, [&](const Run&, int64_t g, int64_t k0, int64_t len) {
    for (int64_t i = 0; i < len; ++i) L.mask[k0 + i] = L.unknown[g + i] ? 1.0f : 0.0f;
  });
}

// v: `count` planes of L, zero unless clean and of that size.
void zeroed_planes(const Level& L, std::vector<float>& v, int64_t count, bool clean) {
  const size_t size = static_cast<size_t>(count * L.plane + kSlack);
  if (!clean || v.size() != size) v.assign(size, 0.0f);
}

// Zeroes the slots of `count` planes of L: what the solver wrote, so the planes are all zero again.
template <typename T>
void clean_planes(const Level& L, std::vector<T>& v, int64_t count) {
  for_runs(L.runs, [&](const Run&, int64_t g, int64_t, int64_t len) {
    for (int64_t c = 0; c < count; ++c) std::fill_n(v.data() + c * L.plane + g, len, T(0));
  });
}

// The work vectors for C channels. The compact ones need no clearing: every slot is written
// before it is read. They get kBlock slack cells: loops read whole blocks and registers.
void alloc_work(Level& L, int C) {
  for (auto* v : {&L.x, &L.d, &L.d_next, &L.ke}) zeroed_planes(L, *v, C, L.work_clean);
  L.work_clean = false;
  for (auto* v : {&L.b, &L.rc, &L.kr, &L.kp, &L.kq}) v->resize(C * L.n + kBlock);
}

void reset_level(Level& L) {
  // Planes left dirty (a solve that did not finish) are dropped: clean_planes only knows this
  // solve's slots.
  if (!L.coef_clean) L.coef.clear();
  if (!L.work_clean)
    for (auto* v : {&L.x, &L.d, &L.d_next, &L.ke}) v->clear();
  L.finest = false;
  L.table = nullptr;
  L.lmax = 0.0;
  L.chol.clear();
  L.index.clear();
}

}  // namespace
}  // namespace FASTINPAINT_CPU_ISA
}  // namespace cpu
}  // namespace fastinpaint
