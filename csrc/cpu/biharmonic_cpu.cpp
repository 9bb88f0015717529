// CPU multigrid solver for the biharmonic inpainting system.
//
// The matrix A (one row per hole pixel, the 13-point biharmonic stencil, known pixels moved to
// the right-hand side) is symmetric positive definite. We solve it by flexible conjugate
// gradients in float64, preconditioned by one multigrid K-cycle in float32, started from a full
// multigrid (FMG) guess:
//   * levels live on image-shaped grids (2-cell zero margin), each level's unknowns listed as
//     runs of consecutive pixels of a row (runs closer than kGapMerge are merged, the gap pixels
//     being zero slots). Every inner loop walks a run, so it is contiguous in memory and written
//     with GCC vectors of the register width (this file is compiled once per instruction set,
//     biharmonic_dispatch.cpp picks one); the matrix-vector product keeps a block of kBlock
//     pixels' sums in registers through all taps and hands them to the caller's update (fused,
//     no round trip through memory); vectors that feed a stencil are grid planes that are zero
//     off the unknowns, the others compact arrays in run order;
//   * the next coarser level's unknowns are the grid points (2Y, 2X) whose bilinear
//     interpolation reaches a fine unknown: the hole's shape is followed at every level and the
//     known pixels stay pinned (the interpolation is cut there);
//   * coarse matrices: Galerkin products P^T A P (5 x 5 stencils, built as one coefficient plane
//     per tap, then stored block by block so that a block's 25 taps are contiguous), hence SPD
//     and consistent with the hole's border; re-discretising does not converge. The first one
//     reads the finest level's coefficients from its stencil classes, a coarse run at a time;
//   * finest level: no coefficient planes: interior pixels share one constant stencil (the taps
//     on known pixels multiply the zeros of the grid plane); the runs within 2 of the image edge
//     have coefficient blocks like the coarse levels, each pixel's class row of the table;
//   * smoother: Chebyshev polynomial in D^-1 A (symmetric, and only whole-run matrix-vector
//     products, unlike multi-colour Gauss-Seidel), before and after the coarse correction: degree
//     2 on the finest level, 1 (damped Jacobi) on the Galerkin levels. Its spectral bound is
//     Gershgorin's on the finest level (exact for the interior stencil) and a power-iteration
//     estimate on the Galerkin levels (their Gershgorin bounds are 5-40x too large);
//   * K-cycle (Notay & Vassilevski): each coarse problem gets two flexible-CG steps
//     preconditioned by the next level's cycle. Bilinear transfers are too low-order for a
//     fourth-order operator (Hemker's rule m_P + m_R > 2m fails), and a plain V-cycle needs 3-5x
//     more outer iterations;
//   * coarsest level (<= kCoarsestMax unknowns): dense Cholesky in float64; if coarsening stalls
//     (1-pixel lines, isolated pixels), a long Chebyshev smoother instead;
//   * threads: one parallel region per solve (Team): every thread runs the whole algorithm on
//     its share of each level's runs and waits only where it reads what another wrote; the deep
//     levels have one worker. The setup's loops (Galerkin products, right-hand side, each
//     level's blocks and smoother bound) are split across the intra-op threads;
//   * runs are walked a register at a time and by kBlock-blocks, the last, partial one written by
//     masked store (store_first): runs average ~20 slots on free-form masks, and scalar tails
//     had cost as much as the products;
//   * passes are fused wherever the data allow: the dot products of CG steps inside their
//     matrix-vector products, the zero-start smoothing step in one pass; with BhOutput::image
//     the clipped solution goes straight into the image.
// Measured (../shared photos, 10-60 % holes and a centred square): FMG and one iteration leave
// ~1e-2 on [0, 1] images and each iteration divides the error by ~5; the caller stops on the size
// of the last change and its ratio to the one before (converged: 3-6 iterations for 1e-3 of the
// value range, leaving <= 3.1e-4).
// The per-pixel math (stencil classes, Galerkin terms, Chebyshev recurrence) is in
// kernels/biharmonic.h; the right-hand side is minus the finest operator applied to the image
// with its hole zeroed.
#include "cpu/biharmonic_cpu.h"

#include <algorithm>
#include <array>
#include <exception>
#include <mutex>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include <ATen/Parallel.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/biharmonic.h"

#ifndef FASTINPAINT_CPU_ISA
#define FASTINPAINT_CPU_ISA baseline
#endif

namespace fastinpaint {
namespace cpu {
namespace FASTINPAINT_CPU_ISA {
namespace {

constexpr int64_t kCoarsestMax = 64;  // unknowns of a level solved by dense Cholesky
constexpr int kMaxLevels = 24;
constexpr double kStallRatio = 0.8;  // stop coarsening when a level keeps > 80 % of the unknowns
// Chebyshev smoothing before and after the coarse correction: degree 2 on the finest level, 1
// (damped Jacobi) on the Galerkin levels, whose K-cycles make up for it: degree 2 there gave the
// same iteration counts for twice the coarse-level work.
constexpr int kFineDegree = 2;
constexpr int kCoarseDegree = 1;
constexpr double kSmootherRatio = 6.0;  // Chebyshev aims at eigenvalues of D^-1 A in [lmax / 6, lmax]
constexpr int kStalledDegree = 16;      // coarsest level whose coarsening stalled: a long Chebyshev
constexpr double kStalledRatio = 100.0;
// K-cycles only on levels of at least this many unknowns: a level is visited 2^depth times per
// iteration, and below this the extra accuracy does not pay for itself. Chosen on the total
// solve time over the 96 photo/mask pairs of ../shared: 256 was 10-15 % slower, 320-512 alike
// (400 the lowest), with the same worst error.
constexpr int64_t kKCycleMin = 400;
constexpr int kPowerIterations = 8;
constexpr double kLambdaMargin = 1.15;  // power iteration underestimates lmax
// Unknown runs of a row at most this far apart are merged into one run, the pixels between
// being zero slots: a run costs a fixed overhead per tap and channel, a gap pixel a few cycles.
constexpr int64_t kGapMerge = 8;
// Row blocks of the matrix-vector product: kBlock consecutive pixels' sums stay in registers
// through all taps. Planes get slack cells so that a run's last block may read past it: 2 kBlock
// for the Galerkin product, which reads a coarse block's fine children (stride 2).
constexpr int kBlock = 16;
constexpr int64_t kSlack = 2 * kBlock + 4;

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

// The threads that solve together, SPMD style: every thread runs the whole algorithm (same
// control flow) on its own share of every level's runs, and waits for the others (sync) before
// it reads what they wrote: at the start of every stencil or transfer operation, whose reads
// cross the share boundaries, and after a residual whose input is overwritten next. Sums go
// through `sums`, added in thread order, so that every thread gets the same value. One parallel
// region serves a whole solve: forking the threads once per operation cost more than the
// operations themselves on all but the finest levels (a few microseconds each).
//
// Small levels are worked on by one thread (Level::workers == 1). There, nobody waits: the
// other threads run through the same control flow with empty shares (their sums and scalars
// are zeros, applied to nothing) and wait at the next operation of a shared level, which is
// where they read the worker's results.
constexpr int kMaxTeam = 64;
// A level's runs are split so that each working thread gets at least this many slots.
constexpr int64_t kShareMinSlots = 512;
struct TeamSums {
  double value[2][kMaxTeam][2 * kBhMaxChannels];  // two sets used in turn: one sync per sum
};

struct Team {
  int id = 0, size = 1;
  TeamSums* sums = nullptr;
  int turn = 0;
  // A team of one outside the solve (setup): may split a big matrix-vector product across the
  // intra-op threads. Not in the solver, whose products carry per-thread state (dot products).
  bool runtime_threads = false;

  bool leader() const { return id == 0; }
  void barrier() const {
    if (size > 1) {
#pragma omp barrier
    }
  }
  // Whether several threads work on level L (then they sync there).
  bool shared(const Level& L) const { return size > 1 && L.workers > 1; }
  void sync(const Level& L) const {
    if (shared(L)) barrier();
  }
  void sync(const Level& A, const Level& B) const {
    if (shared(A) || shared(B)) barrier();
  }
  // values[i] <- their sum over level L's workers, i < count. A set is written again two sums
  // later, when every thread has passed the sync of the sum in between, so done reading it.
  void sum(const Level& L, double* values, int count) {
    if (!shared(L)) return;
    turn ^= 1;
    for (int i = 0; i < count; ++i) sums->value[turn][id][i] = values[i];
    barrier();
    for (int i = 0; i < count; ++i) {
      double s = 0.0;
      for (int t = 0; t < size; ++t) s += sums->value[turn][t][i];
      values[i] = s;
    }
  }
  double max(const Level& L, double value) {
    if (!shared(L)) return value;
    turn ^= 1;
    sums->value[turn][id][0] = value;
    barrier();
    for (int t = 0; t < size; ++t) value = std::max(value, sums->value[turn][t][0]);
    return value;
  }
};

inline Team setup_team() {
  Team team;
  team.runtime_threads = true;
  return team;
}

// The work of a run in split_runs' units (slots): the products go by whole kBlock-blocks, every run
// costs its loop set-up, and finest-level border runs also load their coefficients (13 more loads
// to the 39 of a 3-channel block). An even split of slots alone left the second of two threads
// waiting a quarter of a solve on a free-form mask (many short runs in some rows); weights cut the
// team's waiting by a third and solves by 3-5 %.
constexpr int64_t kRunCost = 8;
inline int64_t whole_blocks(int64_t len) { return (len + kBlock - 1) / kBlock * kBlock; }
inline int64_t run_cost(const Run& R) {
  const int64_t blocks = whole_blocks(R.len);
  return blocks + kRunCost + (R.border ? blocks / 3 : 0);
}

// L.share and L.workers for a team of `size`: contiguous runs, about the same work (run_cost)
// each, for as many threads as have kShareMinSlots; the others get none.
void split_runs(Level& L, int size) {
  const int64_t count = static_cast<int64_t>(L.runs.size());
  const int64_t working = std::clamp<int64_t>(L.n / kShareMinSlots, 1, size);
  L.workers = static_cast<int>(working);
  L.share.assign(size + 1, count);
  L.share[0] = 0;
  int64_t total = 0;
  for (const Run& R : L.runs) total += run_cost(R);
  int64_t r = 0, seen = 0;
  for (int64_t t = 1; t < working; ++t) {
    while (r < count && seen < t * total / working) seen += run_cost(L.runs[r++]);
    L.share[t] = r;
  }
}

// for_runs over the team thread's share (all runs for a team of one).
template <typename F>
inline void for_share(const Level& L, const Team& team, const F& f) {
  if (team.size == 1) return for_runs(L.runs, f);
  for (int64_t i = L.share[team.id]; i < L.share[team.id + 1]; ++i) {
    const Run& R = L.runs[i];
    f(R, R.g, R.k, static_cast<int64_t>(R.len));
  }
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

// One register of T as a GCC vector: this file is compiled once per instruction set
// (CMakeLists.txt) with the register width of each. Wider GCC vectors than the target's
// registers are lowered badly (AVX2 with 64-byte vectors ran slower than SSE2).
#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif
template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(kVecBytes)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(kVecBytes)));
};
template <typename T>
using Vec = typename VecOf<T>::type;
template <typename T>
constexpr int kLanes = kVecBytes / sizeof(T);
template <typename T>
constexpr int kParts = kBlock / kLanes<T>;

typedef float HalfVecFloat __attribute__((vector_size(kVecBytes / 2)));  // kLanes<double> floats

template <typename T>
FI_INLINE Vec<T> load_vec(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// out[j] = v[j] for j < m (all lanes if m >= kLanes<T>, none if m <= 0); memory past lane m is
// not touched, so a run's last block may end next to another run that another thread writes. Half
// of the blocks are a run's partial last block on free-form masks, and writing them by a
// run-time-length loop (or memcpy) cost as much as their matrix-vector product: hence the masked
// stores of AVX-512 and AVX2 (SSE2 has none: a loop).
template <typename T, typename V>
FI_INLINE void store_first(T* out, const V& v, int64_t m) {
  constexpr int N = sizeof(V) / sizeof(T);
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  if (m >= N) {
    std::memcpy(out, &v, sizeof(v));
    return;
  }
  constexpr bool f32 = std::is_same_v<T, float>;
#if defined(__AVX512F__)
  const unsigned bits = (1u << std::max<int64_t>(m, 0)) - 1u;
  if constexpr (sizeof(V) == 64) {
    if constexpr (f32) _mm512_mask_storeu_ps(out, static_cast<__mmask16>(bits), reinterpret_cast<const __m512&>(v));
    else _mm512_mask_storeu_pd(out, static_cast<__mmask8>(bits), reinterpret_cast<const __m512d&>(v));
    return;
  } else if constexpr (sizeof(V) == 32) {  // AVX512VL
    if constexpr (f32) _mm256_mask_storeu_ps(out, static_cast<__mmask8>(bits), reinterpret_cast<const __m256&>(v));
    else _mm256_mask_storeu_pd(out, static_cast<__mmask8>(bits), reinterpret_cast<const __m256d&>(v));
    return;
  }
#elif defined(__AVX__)
  if constexpr (sizeof(V) == 32 || sizeof(V) == 16) {
    V lane;
    for (int j = 0; j < N; ++j) lane[j] = T(j);
    const auto keep = lane < T(m);  // integer lanes: -1 where j < m
    if constexpr (sizeof(V) == 32) {
      if constexpr (f32) _mm256_maskstore_ps(out, reinterpret_cast<const __m256i&>(keep), reinterpret_cast<const __m256&>(v));
      else _mm256_maskstore_pd(out, reinterpret_cast<const __m256i&>(keep), reinterpret_cast<const __m256d&>(v));
    } else {
      if constexpr (f32) _mm_maskstore_ps(out, reinterpret_cast<const __m128i&>(keep), reinterpret_cast<const __m128&>(v));
      else _mm_maskstore_pd(out, reinterpret_cast<const __m128i&>(keep), reinterpret_cast<const __m128d&>(v));
    }
    return;
  }
#endif
  for (int64_t j = 0; j < m; ++j) out[j] = v[j];
}

// Calls f(i, m) for i = 0, N, 2N, ... < len and m = len - i, N = kLanes<T>: a run walked a register
// at a time, the last one partial. f loads whole registers (compact arrays and grid planes have
// slack cells past their ends) and stores with store_first(..., m).
template <typename T, typename F>
FI_INLINE void for_lanes(int64_t len, const F& f) {
  for (int64_t i = 0; i < len; i += kLanes<T>) f(i, len - i);
}

template <typename T>
FI_INLINE void fill_span(T* out, int64_t len, T value) {
  const Vec<T> v = Vec<T>{} + value;
  for_lanes<T>(len, [&](int64_t i, int64_t m) { store_first(out + i, v, m); });
}

// out[i] = in[i], i < len (in is read by whole registers).
template <typename T>
FI_INLINE void copy_span(const T* in, int64_t len, T* out) {
  for_lanes<T>(len, [&](int64_t i, int64_t m) { store_first(out + i, load_vec(in + i), m); });
}

// One Vec<T> (kLanes<T> values) from float or T memory.
template <typename T, typename U>
FI_INLINE Vec<T> load_as(const U* p) {
  if constexpr (std::is_same_v<T, U>) {
    return load_vec(p);
  } else {
    static_assert(std::is_same_v<T, double> && std::is_same_v<U, float>);
    HalfVecFloat f;
    std::memcpy(&f, p, sizeof(f));
    return __builtin_convertvector(f, Vec<double>);
  }
}

// sum[c][j] = (A v)(g + j), j < kBlock, on the C channels; v: grid planes. Reads a whole block
// whatever the run's length (planes have kSlack spare cells). coef: the block's coefficients
// (Level::blocks), or null for the finest level's constant interior stencil, which is non-zero in
// gaps, hence the mask.
template <int C, typename T>
FI_INLINE void matvec_block(const Level& L, const T* v, int64_t g, int64_t k, const float* coef, T (*sum)[kBlock]) {
  constexpr int P = kParts<T>, N = kLanes<T>;
  Vec<T> acc[C][P] = {};
  if (coef == nullptr) {
    for (int t = 0; t < kBhFineTaps; ++t) {
      const T a = T(L.interior[t]);
      const T* vt = v + g + L.off[t];
      for (int c = 0; c < C; ++c)
        for (int p = 0; p < P; ++p) acc[c][p] += a * load_vec(vt + c * L.plane + p * N);
    }
    for (int c = 0; c < C; ++c)
      for (int p = 0; p < P; ++p) acc[c][p] *= load_as<T>(L.mask.data() + k + p * N);
  } else {
    for (int t = 0; t < L.taps; ++t) {
      const T* vt = v + g + L.off[t];
      for (int p = 0; p < P; ++p) {
        const Vec<T> a = load_as<T>(coef + t * kBlock + p * N);
        for (int c = 0; c < C; ++c) acc[c][p] += a * load_vec(vt + c * L.plane + p * N);
      }
    }
  }
  for (int c = 0; c < C; ++c)
    for (int p = 0; p < P; ++p) std::memcpy(sum[c] + p * N, &acc[c][p], sizeof(acc[c][p]));
}

// Calls f(g, k, m, sum) for every block of every run (of the team thread's share), sum[c][j] =
// (A v) at grid index g + j (compact index k + j), j < m: the product fused with what consumes
// it, so that no compact A v array makes a round trip through memory. f must only write at its
// own block's slots.
template <int C, typename T, typename F>
void matvec_apply(const Level& L, const Team& team, const T* v, const F& f) {
  team.sync(L);
  auto body = [&](const Run& R, int64_t g, int64_t k, int64_t len) {
    T sum[C][kBlock];
    for (int64_t i = 0; i < len; i += kBlock) {
      const int64_t m = std::min<int64_t>(kBlock, len - i);
      const float* coef = L.finest && !R.border ? nullptr : L.blocks.data() + (R.blk + i / kBlock) * L.taps * kBlock;
      matvec_block<C, T>(L, v, g + i, k + i, coef, sum);
      f(g + i, k + i, m, sum);
    }
  };
  if (team.runtime_threads)
    par_runs(L.runs, L.n, body);
  else
    for_share(L, team, body);
}

// out = A v on the C channels: v grid planes (stride plane), out compact (stride n).
template <int C, typename T>
void matvec(const Level& L, const Team& team, const T* v, T* out) {
  matvec_apply<C, T>(L, team, v, [&](int64_t, int64_t k, int64_t m, const T (*sum)[kBlock]) {
    for (int c = 0; c < C; ++c) copy_span(sum[c], m, out + c * L.n + k);
  });
}

// out = b - A v (compact or, with out_grid, grid planes).
template <int C, typename T>
void residual(const Level& L, const Team& team, const T* b, const T* v, T* out, bool out_grid) {
  matvec_apply<C, T>(L, team, v, [&](int64_t g, int64_t k, int64_t m, const T (*sum)[kBlock]) {
    constexpr int N = kLanes<T>;
    for (int c = 0; c < C; ++c) {
      const T* bc = b + c * L.n + k;
      T* oc = out + (out_grid ? c * L.plane + g : c * L.n + k);
      for (int p = 0; p < kParts<T>; ++p) store_first(oc + p * N, load_vec(bc + p * N) - load_vec(sum[c] + p * N), m - p * N);
    }
  });
}

// sum a[i] b[i] over i < len in float64, 8 lanes at a time (a plain loop would be one serial
// chain of adds: the compiler may not reassociate floating-point sums).

template <typename T, typename U>
FI_INLINE double dot_span(const T* a, const U* b, int64_t len) {
  constexpr int N = kLanes<double>;
  Vec<double> acc = {};
  int64_t i = 0;
  for (; i + N <= len; i += N) acc += load_as<double>(a + i) * load_as<double>(b + i);
  double s = 0.0;
  for (; i < len; ++i) s += double(a[i]) * double(b[i]);
  for (int j = 0; j < N; ++j) s += acc[j];
  return s;
}

// sum of a[j] b[j] over j < m <= kBlock, in vector registers: reads whole blocks (the arrays have
// kBlock slack), the lanes past m are dropped. (A scalar loop would be one serial chain of adds:
// the compiler may not reassociate floating-point sums.)
template <typename T>
FI_INLINE T block_dot(const T* a, const T* b, int64_t m) {
  constexpr int N = kLanes<T>;
  Vec<T> lane;
  for (int j = 0; j < N; ++j) lane[j] = T(j);
  Vec<T> acc = {};
  for (int p = 0; p < kBlock / N; ++p) {
    const Vec<T> prod = load_vec(a + p * N) * load_vec(b + p * N);
    acc += lane + T(p * N) < T(m) ? prod : Vec<T>{};
  }
  T s = 0;
  for (int j = 0; j < N; ++j) s += acc[j];
  return s;
}

// The team thread's share of per-channel dot products of grid planes and a compact array, added
// to out[C] (Team::sum completes them).
template <int C, typename T, typename U>
void dot_grid(const Level& L, const Team& team, const T* grid, const U* compact, double* out) {
  for_share(L, team, [&](const Run&, int64_t g, int64_t k, int64_t len) {
    for (int c = 0; c < C; ++c) out[c] += dot_span(grid + c * L.plane + g, compact + c * L.n + k, len);
  });
}

inline double safe_ratio(double num, double den) {  // 0 for a converged (zero) channel
  return den != 0.0 ? num / den : 0.0;
}

// The outer iteration's stop: the last change is at most tol, and so is 4x the error it leaves
// by the last two changes' ratio rho (a contraction rho per step leaves ~change rho / (1 - rho)).
// Photographs contract by ~0.2 per step (the first test alone then decides); rough images such as
// uniform noise by up to ~0.5, where the first test alone left errors up to 1.7 tol.
inline bool converged(double update, double previous, double tol) {
  if (!(update <= tol)) return false;
  const double rho = update / previous;  // 0 after the first step
  return rho < 1.0 && update * rho <= 0.25 * tol * (1.0 - rho);
}

// The fine coefficients as coarsen reads them for one coarse run (row Y, first column X0): tap t
// of fine pixel (2 Y + dy, 2 X0 + dx), dy in -1..1 and dx from -1 to 2 L + 1 (L: the run's length
// rounded up to whole kBlock-blocks), is at origin[t * tap_stride + dy * row_stride + dx]. Zero off
// the fine unknowns and on taps that reach none, up to the run's end.
struct FineCoefficients {
  const float* origin;
  int64_t tap_stride, row_stride;
};

// The finest level's coefficients around a coarse run, from the stencil classes (the finest
// level keeps no coefficient planes): 3 fine rows x (2 L + 2) columns x 13 taps, in buf. Interior
// pixels (all but 2 pixels along the image edges) share one stencil: a loop per tap.
FineCoefficients finest_window(const Level& F, const Run& R, std::vector<float>& buf) {
  const int64_t width = 2 * whole_blocks(R.len) + 2, rows = 3, x0 = 2 * int64_t{R.x0} - 1;
  buf.assign(kBhFineTaps * rows * width, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t y = 2 * int64_t{R.y} - 1 + r;
    if (y < 0 || y >= F.H) continue;
    const int64_t ja = std::max<int64_t>(0, -x0), jb = std::clamp<int64_t>(F.W - x0, ja, width);  // in the image
    const bool interior_row = y >= 2 && y < F.H - 2;
    const int64_t ia = interior_row ? std::clamp<int64_t>(2 - x0, ja, jb) : jb;
    const int64_t ib = interior_row ? std::clamp<int64_t>(F.W - 2 - x0, ia, jb) : jb;
    const uint8_t* u = F.unknown.data() + F.grid(y, 0) + x0;  // column j of the window
    for (int t = 0; t < kBhFineTaps; ++t) {
      float* out = buf.data() + (t * rows + r) * width;
      const uint8_t* ut = u + F.off[t];
      const float a = F.interior[t];
      for (int64_t j = ia; j < ib; ++j) out[j] = (u[j] & ut[j]) ? a : 0.0f;
    }
    for (int64_t j = ja; j < jb; ++j) {  // the image-border band
      if (j == ia) j = ib;
      if (j >= jb) break;
      if (!u[j]) continue;
      const float* row = F.table + bh_stencil_class(y, x0 + j, F.H, F.W) * kBhFineTaps;
      for (int t = 0; t < kBhFineTaps; ++t) buf[(t * rows + r) * width + j] = u[j + F.off[t]] ? row[t] : 0.0f;
    }
  }
  return {buf.data() + width + 1, rows * width, width};
}

// kLanes<float> values a[0], a[2], a[4], ...: two loads and a shuffle.
FI_INLINE Vec<float> load_even(const float* a) {
  typedef int32_t Index __attribute__((vector_size(kVecBytes)));
  Index even;
  for (int j = 0; j < kLanes<float>; ++j) even[j] = 2 * j;
  return __builtin_shuffle(load_vec(a), load_vec(a + kLanes<float>), even);
}

// The gather terms of the Galerkin product (kernels/biharmonic.h) grouped by target: target t's
// are [start[t], start[t + 1]), each a weight and where its fine coefficient is (offset, for the
// run at hand).
struct GalerkinTerms {
  std::vector<BhGalerkinGather> terms;
  std::vector<float> weight;
  int start[kBhGalerkinTargets + 1] = {};

  explicit GalerkinTerms(int fine_taps) : terms(9 * fine_taps) {
    terms.resize(bh_galerkin_gathers(fine_taps, terms.data()));
    std::stable_sort(terms.begin(), terms.end(), [](const auto& a, const auto& b) { return a.target < b.target; });
    for (const BhGalerkinGather& term : terms) {
      weight.push_back(term.weight);
      ++start[term.target + 1];
    }
    for (int t = 0; t < kBhGalerkinTargets; ++t) start[t + 1] += start[t];
  }
  // offset[i]: term i's fine coefficient from fine.origin
  void offsets(const FineCoefficients& fine, std::vector<int64_t>& offset) const {
    offset.resize(terms.size());
    for (size_t i = 0; i < terms.size(); ++i) {
      const int cy = terms[i].child / 3 - 1, cx = terms[i].child % 3 - 1;
      offset[i] = terms[i].tap * fine.tap_stride + cy * fine.row_stride + cx;
    }
  }
};

// The Galerkin coefficients of the coarse slots g .. g + m - 1 (m <= kBlock: a run's block) into
// Cl's planes, in the two stages of kernels/biharmonic.h: the gather into 7 x 7 targets, each
// summed in registers, then the separable restriction. The fine children of consecutive coarse
// points are 2 apart: origin + 2j, whole registers.
void galerkin_block(const float* origin, const GalerkinTerms& terms, const int64_t* offset, Level& Cl, int64_t g,
                    int64_t m) {
  constexpr int N = kLanes<float>, P = kParts<float>;
  Vec<float> target[kBhGalerkinTargets][P];
  for (int t = 0; t < kBhGalerkinTargets; ++t) {
    Vec<float> sum[P] = {};
    for (int i = terms.start[t]; i < terms.start[t + 1]; ++i)
      for (int p = 0; p < P; ++p) sum[p] += terms.weight[i] * load_even(origin + offset[i] + 2 * p * N);
    for (int p = 0; p < P; ++p) target[t][p] = sum[p];
  }
  // Along an axis, coarse tap D takes t = 2D - 1, 2D, 2D + 1 (within -3..3) with weights
  // hat(t - 2D) = 1/2, 1, 1/2: targets (ty, tx) -> row (ty, DX) -> coefficient (DY, DX).
  auto restrict_axis = [](auto&& in, int D, Vec<float>* out) {
    for (int p = 0; p < P; ++p) out[p] = Vec<float>{};
    for (int t = std::max(2 * D - 1, -3); t <= std::min(2 * D + 1, 3); ++t)
      for (int p = 0; p < P; ++p) out[p] += static_cast<float>(bh_hat(t - 2 * D)) * in(t + 3)[p];
  };
  Vec<float> row[7][5][P];
  for (int ty = 0; ty < 7; ++ty)
    for (int DX = -2; DX <= 2; ++DX)
      restrict_axis([&](int tx) { return target[ty * 7 + tx]; }, DX, row[ty][DX + 2]);
  for (int DY = -2; DY <= 2; ++DY)
    for (int DX = -2; DX <= 2; ++DX) {
      const int tap = (DY + 2) * 5 + DX + 2;
      Vec<float> coef[P];
      restrict_axis([&](int ty) { return row[ty][DX + 2]; }, DY, coef);
      // Taps that reach no coarse unknown are zeroed (the next Galerkin product relies on it).
      const uint8_t* reach = Cl.unknown.data() + g + Cl.off[tap];
      for (int p = 0; p < P; ++p) {
        Vec<float> keep;
        for (int j = 0; j < N; ++j) keep[j] = reach[p * N + j] ? 1.0f : 0.0f;
        store_first(Cl.coef.data() + tap * Cl.plane + g + p * N, coef[p] * keep, m - p * N);
      }
    }
}

// Cl <- the next coarser level of F: unknowns, runs and Galerkin coefficient planes. F's
// coefficients: its planes (F.taps of them, zero off the unknowns and on taps that reach none),
// or for the finest level its stencil classes.
void coarsen(const Level& F, Level& Cl) {
  init_grid(Cl, F.H / 2 + 1, F.W / 2 + 1, kBhCoarseTaps);
  // Bilinear parents of fine (y, x): y/2 if y is even, else (y-1)/2 and (y+1)/2; same in x.
  for_runs(F.runs, [&](const Run& R, int64_t g, int64_t, int64_t len) {
    const int64_t y0 = R.y / 2, y1 = (R.y + 1) / 2;
    uint8_t* r0 = Cl.unknown.data() + Cl.grid(y0, 0);
    uint8_t* r1 = Cl.unknown.data() + Cl.grid(y1, 0);
    for (int64_t i = 0; i < len; ++i) {
      if (!F.unknown[g + i]) continue;
      const int64_t xx = R.x0 + i;
      r0[xx / 2] = r0[(xx + 1) / 2] = r1[xx / 2] = r1[(xx + 1) / 2] = 1;
    }
  });
  build_runs(Cl);

  const GalerkinTerms terms(F.taps);
  zeroed_planes(Cl, Cl.coef, Cl.taps, Cl.coef_clean);
  Cl.coef_clean = false;
  // Run by run, block by block (a block's rows of every fine plane stay in cache). Float sums: the
  // coarse levels only serve the preconditioner. ~350 multiply-adds per slot, so the threads pay
  // off from a thousand slots.
  par_runs(Cl.runs, Cl.n, [&](const Run& R, int64_t g, int64_t, int64_t len) {
    thread_local std::vector<float> window;
    thread_local std::vector<int64_t> offset;
    const FineCoefficients fine =
        F.finest ? finest_window(F, R, window)
                 : FineCoefficients{F.coef.data() + F.grid(2 * R.y, 2 * R.x0), F.plane, F.S};
    terms.offsets(fine, offset);
    for (int64_t i = 0; i < len; i += kBlock) galerkin_block(fine.origin + 2 * i, terms, offset.data(), Cl, g + i, len - i);
  }, 1024);
}

// The finest level's coefficient planes (13): only when it is also the coarsest (dense solve).
void finest_coef_planes(Level& F) {
  zeroed_planes(F, F.coef, kBhFineTaps, F.coef_clean);
  F.coef_clean = false;
  for_runs(F.runs, [&](const Run& R, int64_t g, int64_t, int64_t len) {
    for (int64_t i = 0; i < len; ++i) {
      if (!F.unknown[g + i]) continue;
      const float* row = F.table + bh_stencil_class(R.y, R.x0 + i, F.H, F.W) * kBhFineTaps;
      for (int t = 0; t < kBhFineTaps; ++t) F.coef[t * F.plane + g + i] = F.unknown[g + i + F.off[t]] ? row[t] : 0.0f;
    }
  });
}

// The coefficients in the row-block layout of the matrix-vector product: a coarse level's from its
// planes; the finest level's border runs' from their stencil classes (the taps on known pixels
// included: they multiply zeros of the solver's planes, and the right-hand side's known values).
void block_coefficients(Level& L) {
  L.blocks.resize(L.n_blocks * L.taps * kBlock);  // every entry is written below
  for_runs(L.runs, [&](const Run& R, int64_t g, int64_t, int64_t len) {
    if (L.finest && !R.border) return;
    for (int64_t i0 = 0; i0 < len; i0 += kBlock) {
      float* out = L.blocks.data() + (R.blk + i0 / kBlock) * L.taps * kBlock;
      const int64_t m = std::min<int64_t>(kBlock, len - i0);  // the block's lanes past the run: zero
      if (L.finest) {
        std::fill_n(out, L.taps * kBlock, 0.0f);
        for (int64_t j = 0; j < m; ++j) {
          if (!L.unknown[g + i0 + j]) continue;
          const float* row = L.table + bh_stencil_class(R.y, R.x0 + i0 + j, L.H, L.W) * kBhFineTaps;
          for (int t = 0; t < L.taps; ++t) out[t * kBlock + j] = row[t];
        }
        continue;
      }
      for (int t = 0; t < L.taps; ++t) {
        const float* coef = L.coef.data() + t * L.plane + g + i0;
        for (int64_t j = 0; j < kBlock; ++j) out[t * kBlock + j] = j < m ? coef[j] : 0.0f;
      }
    }
  });
}

// out = -A v on the finest level, C channels (v: grid planes, out: compact), on the intra-op threads.
template <int C>
void minus_matvec(const Level& F, const double* v, double* out) {
  matvec_apply<C, double>(F, setup_team(), v, [&](int64_t, int64_t k, int64_t m, const double (*sum)[kBlock]) {
    for (int c = 0; c < C; ++c)
      for (int p = 0; p < kParts<double>; ++p)
        store_first(out + c * F.n + k + p * kLanes<double>, -load_vec(sum[c] + p * kLanes<double>), m - p * kLanes<double>);
  });
}

// Calls f(c0, std::integral_constant<int, G>{}) for each group of channels [c0, c0 + G) of C in
// turn, G = min(kBhMaxChannels, C - c0): the channel loops are unrolled for each group size.
template <typename F>
void for_channel_groups(int64_t C, const F& f) {
  for (int64_t c0 = 0; c0 < C; c0 += kBhMaxChannels) {
    switch (std::min<int64_t>(kBhMaxChannels, C - c0)) {
      case 1: f(c0, std::integral_constant<int, 1>{}); break;
      case 2: f(c0, std::integral_constant<int, 2>{}); break;
      case 3: f(c0, std::integral_constant<int, 3>{}); break;
      default: f(c0, std::integral_constant<int, 4>{}); break;
    }
  }
}

// Diagonal inverse, and for Galerkin levels lmax(D^-1 A) by power iteration (deterministic start).
void setup_smoother(Level& L) {
  L.dinv.resize(L.n + kBlock);  // + slack: read by whole blocks
  if (L.finest) {
    const float inv_interior = 1.0f / L.interior[kBhFineCentre];
    for_runs(L.runs, [&](const Run& R, int64_t, int64_t k, int64_t len) {
      for (int64_t i = 0; i < len; ++i)
        L.dinv[k + i] = R.border ? L.mask[k + i] / L.table[bh_stencil_class(R.y, R.x0 + i, L.H, L.W) * kBhFineTaps + kBhFineCentre]
                                 : L.mask[k + i] * inv_interior;
    });
    // Gershgorin: max over the classes present of sum |a_k| / a_centre (3.2 for the interior
    // stencil, which is also the interior's exact lmax).
    bool present[81] = {};
    present[kBhInteriorClass] = true;
    for (const Run& R : L.runs)
      if (R.border)
        for (int64_t xx = R.x0; xx < R.x0 + R.len; ++xx) present[bh_stencil_class(R.y, xx, L.H, L.W)] = true;
    double bound = 0.0;
    for (int cls = 0; cls < 81; ++cls) {
      if (!present[cls]) continue;
      const float* a = L.table + cls * kBhFineTaps;
      double s = 0.0;
      for (int t = 0; t < kBhFineTaps; ++t) s += std::abs(a[t]);
      bound = std::max(bound, s / a[kBhFineCentre]);
    }
    L.lmax = bound;
    return;
  }
  for_runs(L.runs, [&](const Run&, int64_t g, int64_t k, int64_t len) {
    const float* a = L.coef.data() + kBhCoarseCentre * L.plane + g;
    for (int64_t i = 0; i < len; ++i) L.dinv[k + i] = a[i] > 0.0f ? 1.0f / a[i] : 0.0f;
  });
  std::vector<float> v(L.plane + kSlack, 0.0f), av(L.n);
  uint32_t state = 12345u;
  for_runs(L.runs, [&](const Run&, int64_t g, int64_t k, int64_t len) {
    for (int64_t i = 0; i < len; ++i) {
      state = state * 1664525u + 1013904223u;
      v[g + i] = L.mask[k + i] * (0.5f + static_cast<float>(state >> 8) * (1.0f / 16777216.0f));
    }
  });
  // Power iteration on D^-1 A, estimating with the Rayleigh quotient of the pencil (A, D),
  // v.Av / v.Dv: a lower bound on lmax that converges twice as fast as the norm ratio.
  double lambda = 0.0;
  for (int it = 0; it < kPowerIterations; ++it) {
    matvec<1, float>(L, setup_team(), v.data(), av.data());
    double vav = 0.0, vdv = 0.0, norm2 = 0.0;
    for_runs(L.runs, [&](const Run&, int64_t g, int64_t k, int64_t len) {
      for (int64_t i = 0; i < len; ++i) {
        const double vi = v[g + i], di = L.dinv[k + i];
        vav += vi * av[k + i];
        if (di > 0) vdv += vi * vi / di;
        av[k + i] *= L.dinv[k + i];
        norm2 += double(av[k + i]) * av[k + i];
      }
    });
    lambda = std::max(lambda, vdv > 0 ? vav / vdv : 0.0);
    const float scale = static_cast<float>(1.0 / std::max(std::sqrt(norm2), 1e-300));
    for_runs(L.runs, [&](const Run&, int64_t g, int64_t k, int64_t len) {
      for (int64_t i = 0; i < len; ++i) v[g + i] = av[k + i] * scale;
    });
  }
  L.lmax = kLambdaMargin * lambda;
}

// Dense Cholesky of the coarsest matrix. Galerkin coarse matrices can be singular (two coarse
// unknowns whose only fine child is shared): a pivot that vanishes relative to its diagonal is
// replaced by the diagonal, a harmless regularisation in a preconditioner (P maps that direction
// to zero anyway).
void factor_coarsest(Level& L) {
  const int64_t n = L.unknowns;
  L.index.assign(L.plane, -1);
  int32_t next = 0;
  for_runs(L.runs, [&](const Run&, int64_t g, int64_t, int64_t len) {
    for (int64_t i = 0; i < len; ++i)
      if (L.unknown[g + i]) L.index[g + i] = next++;
  });
  std::vector<double>& M = L.chol;
  M.assign(n * n, 0.0);
  for_runs(L.runs, [&](const Run&, int64_t g, int64_t, int64_t len) {
    for (int64_t i = 0; i < len; ++i) {
      if (!L.unknown[g + i]) continue;
      const int64_t row = L.index[g + i];
      for (int t = 0; t < L.taps; ++t) {
        const int32_t j = L.index[g + i + L.off[t]];
        if (j >= 0) M[row * n + j] += L.coef[t * L.plane + g + i];
      }
    }
  });
  for (int64_t j = 0; j < n; ++j) {
    const double orig = M[j * n + j];
    double d = orig;
    for (int64_t k = 0; k < j; ++k) d -= M[j * n + k] * M[j * n + k];
    if (!(d > 1e-10 * std::abs(orig))) d = std::abs(orig) > 0 ? std::abs(orig) : 1.0;
    d = std::sqrt(d);
    M[j * n + j] = d;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = M[i * n + j];
      for (int64_t k = 0; k < j; ++k) s -= M[i * n + k] * M[j * n + k];
      M[i * n + j] = s / d;
    }
    for (int64_t i = 0; i < j; ++i) M[i * n + j] = 0.0;  // keep the upper triangle clean
  }
}

// Buffers kept from one solve to the next on the same thread, so that a solve of a similar size
// touches no fresh memory page (the page faults cost ~15 % of a solve on a 512 x 340 photo).
// Kept only for images of up to kCacheMaxPixels.
constexpr int64_t kCacheMaxPixels = int64_t{1} << 22;
struct Workspace {
  std::vector<Level> spare;  // level objects, the finest last
  std::vector<double> known, b, fx, r, q, grid;
  std::array<int64_t, 3> known_shape = {};  // the (H, W, C) of the known planes
  std::vector<float> bf;
  bool grid_clean = false;  // grid is all zero (see Level::work_clean)
};

Workspace& workspace() {
  thread_local Workspace ws;
  return ws;
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

template <int C>
struct Solver {
  std::vector<Level>& levels;
  Workspace& ws;
  Team& team;

  template <typename F>
  void each(const Level& L, const F& f) const {
    for_share(L, team, f);
  }

  // v (grid planes) at the unknowns <- value
  void fill_grid(const Level& L, std::vector<float>& v, float value) {
    each(L, [&](const Run&, int64_t g, int64_t, int64_t len) {
      for (int c = 0; c < C; ++c) fill_span(v.data() + c * L.plane + g, len, value);
    });
  }

  void copy_compact(const Level& L, const std::vector<float>& from, std::vector<float>& to) {
    each(L, [&](const Run&, int64_t, int64_t k, int64_t len) {
      for (int c = 0; c < C; ++c) copy_span(from.data() + c * L.n + k, len, to.data() + c * L.n + k);
    });
  }

  // Chebyshev smoothing of A x = b on level L (x: grid, b: compact). zero_start: from x = 0, so
  // the first step sets x (whatever x held) from b, with no product.
  void smooth(Level& L, bool zero_start, int degree, double ratio) {
    const int64_t n = L.n, P = L.plane;
    if (!zero_start) {
      residual<C, float>(L, team, L.b.data(), L.x.data(), L.rc.data(), false);
      team.sync(L);  // the step below writes x, which the other threads' residual may still read
    }
    BhChebyshev s = bh_chebyshev_init(L.lmax, ratio);
    const float inv_theta = static_cast<float>(1.0 / s.theta);
    float* d_old = L.d.data();
    float* d_new = L.d_next.data();
    each(L, [&](const Run&, int64_t g, int64_t k, int64_t len) {
      const float* di = L.dinv.data() + k;
      for (int c = 0; c < C; ++c) {
        float* d = d_old + c * P + g;
        float* x = L.x.data() + c * P + g;
        if (zero_start) {  // residual b; the later steps update it in rc
          const float* b = L.b.data() + c * n + k;
          for_lanes<float>(len, [&](int64_t i, int64_t m) {
            const Vec<float> di_b = inv_theta * load_vec(di + i) * load_vec(b + i);
            store_first(d + i, di_b, m);
            store_first(x + i, di_b, m);
          });
          if (degree > 1) copy_span(b, len, L.rc.data() + c * n + k);
        } else {
          const float* r = L.rc.data() + c * n + k;
          for_lanes<float>(len, [&](int64_t i, int64_t m) {
            const Vec<float> di_r = inv_theta * load_vec(di + i) * load_vec(r + i);
            store_first(d + i, di_r, m);
            store_first(x + i, load_vec(x + i) + di_r, m);
          });
        }
      }
    });
    // Later steps, fused with their product A d: the new direction goes to the other d plane
    // (the product still reads the old one around each block).
    for (int step = 1; step < degree; ++step) {
      double cd, cr;
      bh_chebyshev_step(s, cd, cr);
      const float fd = static_cast<float>(cd), fr = static_cast<float>(cr);
      matvec_apply<C, float>(L, team, d_old, [&](int64_t g, int64_t k, int64_t m, const float (*ad)[kBlock]) {
        constexpr int N = kLanes<float>;
        for (int c = 0; c < C; ++c) {
          float* r = L.rc.data() + c * n + k;
          float* x = L.x.data() + c * P + g;
          const float* dc = d_old + c * P + g;
          float* dn = d_new + c * P + g;
          for (int q = 0; q < kParts<float>; ++q) {
            const int64_t j = q * N;
            const Vec<float> rj = load_vec(r + j) - load_vec(ad[c] + j);
            const Vec<float> dj = fd * load_vec(dc + j) + fr * load_vec(L.dinv.data() + k + j) * rj;
            store_first(r + j, rj, m - j);
            store_first(dn + j, dj, m - j);
            store_first(x + j, load_vec(x + j) + dj, m - j);
          }
        }
      });
      std::swap(d_old, d_new);
    }
  }

  // Cl.b <- P^T r, r: the fine level's grid planes `r` (zero off the fine unknowns).
  void restrict_to(const Level& F, const float* r, Level& Cl) {
    team.sync(F, Cl);
    each(Cl, [&](const Run& R, int64_t, int64_t k, int64_t len) {
      for (int c = 0; c < C; ++c) {
        const float* r0 = r + c * F.plane + F.grid(2 * R.y - 1, 2 * R.x0 - 1);
        const float* r1 = r0 + F.S;
        const float* r2 = r1 + F.S;
        float* out = Cl.b.data() + c * Cl.n + k;
        for (int64_t i = 0; i < len; ++i) {
          const int64_t j = 2 * i;
          const float top = 0.5f * r0[j] + r0[j + 1] + 0.5f * r0[j + 2];
          const float mid = 0.5f * r1[j] + r1[j + 1] + 0.5f * r1[j + 2];
          const float bot = 0.5f * r2[j] + r2[j + 1] + 0.5f * r2[j + 2];
          out[i] = 0.5f * top + mid + 0.5f * bot;
        }
      }
    });
  }

  // dst (F's grid planes) += P e, e: Cl's grid planes. Fine x = 2X takes coarse X, x = 2X + 1 the
  // mean of X and X + 1; an odd row y the mean of rows y / 2 and y / 2 + 1. The coarse rows are
  // first blended into a row buffer, then each pair of fine pixels (2X, 2X + 1) is filled from
  // it: loops without per-pixel index arithmetic or branches, which the compiler vectorises.
  void prolong_add(const Level& Cl, const float* e, const Level& F, float* dst) {
    team.sync(Cl, F);
    constexpr int64_t kChunk = 256;  // fine pixels per row buffer (on the stack: no allocation here)
    each(F, [&](const Run& R, int64_t g0, int64_t k0, int64_t run_len) {
      const float wy = (R.y & 1) ? 0.5f : 0.0f;  // weight of the second coarse row
      for (int64_t i0 = 0; i0 < run_len; i0 += kChunk) {
        const int64_t x0 = R.x0 + i0, g = g0 + i0, len = std::min(kChunk, run_len - i0);
        const float* __restrict mask = F.mask.data() + k0 + i0;
        const int64_t first = x0 & 1;  // 1: the chunk starts at an odd x
        const int64_t pairs = (len + first + 1) / 2, X0 = x0 / 2;
        float row[kChunk / 2 + 2];
        for (int c = 0; c < C; ++c) {
          const float* __restrict e0 = e + c * Cl.plane + Cl.grid(R.y / 2, X0);
          const float* __restrict e1 = e + c * Cl.plane + Cl.grid((R.y + 1) / 2, X0);
          for (int64_t X = 0; X <= pairs; ++X) row[X] = (1.0f - wy) * e0[X] + wy * e1[X];
          float* __restrict out = dst + c * F.plane + g;
          int64_t i = 0;
          if (first) {  // the chunk's first pixel is odd: half a pair
            out[0] += mask[0] * 0.5f * (row[0] + row[1]);
            i = 1;
          }
          const int64_t full = (len - i) / 2;  // pixel i + 2j is even, coarse column j + first
          const float* __restrict rp = row + first;
          float* __restrict op = out + i;
          const float* __restrict mp = mask + i;
          for (int64_t j = 0; j < full; ++j) {
            op[2 * j] += mp[2 * j] * rp[j];
            op[2 * j + 1] += mp[2 * j + 1] * 0.5f * (rp[j] + rp[j + 1]);
          }
          i += 2 * full;
          if (i < len) out[i] += mask[i] * row[(i + first) / 2];
        }
      }
    });
  }

  void coarsest(Level& L) {
    if (L.chol.empty()) {  // coarsening stalled: a long smoother (still a symmetric operator)
      smooth(L, true, kStalledDegree, kStalledRatio);
      return;
    }
    team.sync(L);  // b comes from every thread
    if (team.leader()) {
      const int64_t n = L.unknowns;
      const double* M = L.chol.data();
      double* y = L.chol_rhs.data();  // [unknown][channel]: the channels share every row operation
      for_runs(L.runs, [&](const Run&, int64_t g, int64_t k, int64_t len) {
        for (int64_t i = 0; i < len; ++i)
          if (L.index[g + i] >= 0)
            for (int c = 0; c < C; ++c) y[L.index[g + i] * C + c] = L.b[c * L.n + k + i];
      });
      for (int64_t i = 0; i < n; ++i) {  // M y = b
        double s[C];
        for (int c = 0; c < C; ++c) s[c] = y[i * C + c];
        for (int64_t k = 0; k < i; ++k)
          for (int c = 0; c < C; ++c) s[c] -= M[i * n + k] * y[k * C + c];
        for (int c = 0; c < C; ++c) y[i * C + c] = s[c] / M[i * n + i];
      }
      for (int64_t i = n - 1; i >= 0; --i) {  // M^T x = y
        double s[C];
        for (int c = 0; c < C; ++c) s[c] = y[i * C + c];
        for (int64_t k = i + 1; k < n; ++k)
          for (int c = 0; c < C; ++c) s[c] -= M[k * n + i] * y[k * C + c];
        for (int c = 0; c < C; ++c) y[i * C + c] = s[c] / M[i * n + i];
      }
      for_runs(L.runs, [&](const Run&, int64_t g, int64_t, int64_t len) {
        for (int64_t i = 0; i < len; ++i)
          if (L.index[g + i] >= 0)
            for (int c = 0; c < C; ++c) L.x[c * L.plane + g + i] = static_cast<float>(y[L.index[g + i] * C + c]);
      });
    }
    team.sync(L);
  }

  // levels[l].x <- an approximation of A_l^{-1} levels[l].b: pre-smoothing, coarse-grid
  // correction (a K-cycle below the finest level), post-smoothing.
  void cycle(size_t l) {
    Level& L = levels[l];
    if (l + 1 == levels.size()) {
      coarsest(L);
      return;
    }
    Level& Cl = levels[l + 1];
    const int degree = l == 0 ? kFineDegree : kCoarseDegree;
    smooth(L, true, degree, kSmootherRatio);
    // residual, into the d planes (free until the post-smoothing), then restricted
    residual<C, float>(L, team, L.b.data(), L.x.data(), L.d.data(), true);
    restrict_to(L, L.d.data(), Cl);
    const float* e;
    if (l + 2 < levels.size() && Cl.unknowns >= kKCycleMin) {
      kcycle(l + 1);
      e = Cl.ke.data();
    } else {
      cycle(l + 1);
      e = Cl.x.data();
    }
    prolong_add(Cl, e, L, L.x.data());
    smooth(L, false, degree, kSmootherRatio);
  }

  // q = A p on level L (p: grid planes, q: compact), and in the same pass the team's per-channel
  // dot products p.r (r: compact) into dots[c] and p.q into dots[C + c].
  template <typename T>
  void matvec_dots(const Level& L, const T* p, const T* r, T* q, double* dots) {
    for (int i = 0; i < 2 * C; ++i) dots[i] = 0.0;
    matvec_apply<C, T>(L, team, p, [&](int64_t g, int64_t k, int64_t m, const T (*ap)[kBlock]) {
      for (int c = 0; c < C; ++c) {
        const T* pc = p + c * L.plane + g;
        copy_span(ap[c], m, q + c * L.n + k);
        dots[c] += block_dot(pc, r + c * L.n + k, m);
        dots[C + c] += block_dot(pc, ap[c], m);
      }
    });
    team.sum(L, dots, 2 * C);
  }

  // K-cycle: levels[m].ke <- two flexible-CG steps on A_m e = levels[m].b, each preconditioned by
  // one cycle on level m. The residual is kept in b (what the second cycle solves for), so b is
  // lost.
  void kcycle(size_t m) {
    Level& L = levels[m];
    const int64_t n = L.n, P = L.plane;
    // step 1: z1 = B r, p1 = z1, e = a1 p1, r -= a1 A p1
    cycle(m);
    double dots[2 * C];  // p.r, p.q
    matvec_dots<float>(L, L.x.data(), L.b.data(), L.kq.data(), dots);
    double pq[C], a1[C];
    for (int c = 0; c < C; ++c) {
      pq[c] = dots[C + c];
      a1[c] = safe_ratio(dots[c], pq[c]);
    }
    each(L, [&](const Run&, int64_t g, int64_t k, int64_t len) {
      for (int c = 0; c < C; ++c) {
        const float* __restrict x = L.x.data() + c * P + g;
        float* __restrict ke = L.ke.data() + c * P + g;
        float* __restrict kp = L.kp.data() + c * n + k;
        float* __restrict r = L.b.data() + c * n + k;
        const float* __restrict kq = L.kq.data() + c * n + k;
        const float a = static_cast<float>(a1[c]);
        for_lanes<float>(len, [&](int64_t i, int64_t m) {
          const Vec<float> xi = load_vec(x + i);
          store_first(kp + i, xi, m);
          store_first(ke + i, a * xi, m);
          store_first(r + i, load_vec(r + i) - a * load_vec(kq + i), m);
        });
      }
    });
    // step 2: z2 = B r, p2 = z2 - (z2.q1 / p1.q1) p1, e += a2 p2
    cycle(m);
    double zq[C] = {}, beta[C];
    dot_grid<C>(L, team, L.x.data(), L.kq.data(), zq);
    team.sum(L, zq, C);
    for (int c = 0; c < C; ++c) beta[c] = -safe_ratio(zq[c], pq[c]);
    each(L, [&](const Run&, int64_t g, int64_t k, int64_t len) {
      for (int c = 0; c < C; ++c) {
        float* __restrict x = L.x.data() + c * P + g;
        const float* __restrict kp = L.kp.data() + c * n + k;
        const float bc = static_cast<float>(beta[c]);
        for_lanes<float>(len, [&](int64_t i, int64_t m) {  // x is now p2
          store_first(x + i, load_vec(x + i) + bc * load_vec(kp + i), m);
        });
      }
    });
    matvec_dots<float>(L, L.x.data(), L.b.data(), L.kq.data(), dots);
    each(L, [&](const Run&, int64_t g, int64_t, int64_t len) {
      for (int c = 0; c < C; ++c) {
        const float* __restrict x = L.x.data() + c * P + g;
        float* __restrict ke = L.ke.data() + c * P + g;
        const float a = static_cast<float>(safe_ratio(dots[c], dots[C + c]));
        for_lanes<float>(len, [&](int64_t i, int64_t m) { store_first(ke + i, load_vec(ke + i) + a * load_vec(x + i), m); });
      }
    });
  }

  // ke += x on level L's grid planes
  void add_x_to_ke(Level& L) {
    each(L, [&](const Run&, int64_t g, int64_t, int64_t len) {
      for (int c = 0; c < C; ++c) {
        float* ke = L.ke.data() + c * L.plane + g;
        const float* x = L.x.data() + c * L.plane + g;
        for_lanes<float>(len, [&](int64_t i, int64_t m) { store_first(ke + i, load_vec(ke + i) + load_vec(x + i), m); });
      }
    });
  }

  // Full multigrid: levels[0].ke <- an approximation of the solution, from the coarsest level up
  // (each level: the prolonged coarser solution plus one cycle on its residual). b: compact,
  // float, the finest right-hand side.
  void fmg(const std::vector<float>& b) {
    // right-hand sides of every level, kept in kr (b is the cycles' input, and the K-cycles'
    // residual)
    copy_compact(levels[0], b, levels[0].kr);
    for (size_t l = 0; l + 1 < levels.size(); ++l) {
      Level& L = levels[l];
      each(L, [&](const Run&, int64_t g, int64_t k, int64_t len) {
        for (int c = 0; c < C; ++c) copy_span(L.kr.data() + c * L.n + k, len, L.d.data() + c * L.plane + g);
      });
      restrict_to(L, L.d.data(), levels[l + 1]);
      copy_compact(levels[l + 1], levels[l + 1].b, levels[l + 1].kr);
    }
    Level& Lc = levels.back();
    copy_compact(Lc, Lc.kr, Lc.b);
    coarsest(Lc);
    fill_grid(Lc, Lc.ke, 0.0f);
    add_x_to_ke(Lc);
    for (size_t l = levels.size() - 1; l-- > 0;) {
      Level& L = levels[l];
      fill_grid(L, L.ke, 0.0f);
      prolong_add(levels[l + 1], levels[l + 1].ke.data(), L, L.ke.data());
      residual<C, float>(L, team, L.kr.data(), L.ke.data(), L.b.data(), false);
      cycle(l);
      add_x_to_ke(L);
    }
  }

  // Flexible preconditioned CG on the finest level in float64 (the K-cycle is not a fixed linear
  // operator), all channels in lock step, from the FMG guess. b, x: compact C x n; the caller's
  // buffers: ws.r, ws.q (C x n), ws.bf (C x n floats), ws.grid (C planes, zero off the
  // unknowns), which holds the search direction p. Stops when the last step changed no value by
  // more than tol.
  void fcg(const double* b, std::vector<double>& x, double tol, int64_t max_iter, BhSolveInfo* info) {
    Level& L = levels[0];
    const int64_t n = L.n, P = L.plane;
    double* r = ws.r.data();
    double* q = ws.q.data();
    double* p = ws.grid.data();
    each(L, [&](const Run&, int64_t, int64_t k, int64_t len) {
      for (int c = 0; c < C; ++c) std::copy_n(b + c * n + k, len, ws.bf.data() + c * n + k);
    });
    fmg(ws.bf);
    each(L, [&](const Run&, int64_t g, int64_t k, int64_t len) {
      for (int c = 0; c < C; ++c) {
        std::copy_n(L.ke.data() + c * P + g, len, x.data() + c * n + k);
        std::copy_n(L.ke.data() + c * P + g, len, p + c * P + g);
      }
    });
    residual<C, double>(L, team, b, p, r, false);
    team.sync(L);  // p is overwritten below
    each(L, [&](const Run&, int64_t, int64_t k, int64_t len) {  // the preconditioner's input
      for (int c = 0; c < C; ++c) std::copy_n(r + c * n + k, len, L.b.data() + c * n + k);
    });

    double update = INFINITY, previous = INFINITY;
    double pq_last[C] = {};
    int64_t it = 0;
    for (; it < max_iter && !converged(update, previous, tol); ++it) {
      cycle(0);  // z = B r, in L.x
      double beta[C] = {};
      if (it > 0) {  // p = z - (z.q / p.q) p, q = A p of the last step
        double zq[C] = {};
        dot_grid<C>(L, team, L.x.data(), q, zq);
        team.sum(L, zq, C);
        for (int c = 0; c < C; ++c) beta[c] = -safe_ratio(zq[c], pq_last[c]);
      }
      each(L, [&](const Run&, int64_t g, int64_t, int64_t len) {
        for (int c = 0; c < C; ++c) {
          double* pc = p + c * P + g;
          const float* z = L.x.data() + c * P + g;
          for_lanes<double>(len, [&](int64_t i, int64_t m) {
            store_first(pc + i, load_as<double>(z + i) + beta[c] * load_vec(pc + i), m);
          });
        }
      });
      double dots[2 * C];  // p.r, p.q
      matvec_dots<double>(L, p, r, q, dots);
      double alpha[C];
      for (int c = 0; c < C; ++c) {
        alpha[c] = safe_ratio(dots[c], dots[C + c]);
        pq_last[c] = dots[C + c];
      }
      double big = 0.0;  // max |alpha p|
      each(L, [&](const Run&, int64_t g, int64_t k, int64_t len) {
        for (int c = 0; c < C; ++c) {
          double* xc = x.data() + c * n + k;
          double* rc = r + c * n + k;
          float* bc = L.b.data() + c * n + k;
          const double* pc = p + c * P + g;
          const double* qc = q + c * n + k;
          Vec<double> lane, big_lanes = {};  // |p| max by lanes (see dot_span)
          for (int j = 0; j < kLanes<double>; ++j) lane[j] = j;
          for_lanes<double>(len, [&](int64_t i, int64_t m) {
            const Vec<double> pv = load_vec(pc + i);
            const Vec<double> size = lane < double(m) ? (pv < 0 ? -pv : pv) : Vec<double>{};
            big_lanes = big_lanes > size ? big_lanes : size;
            store_first(xc + i, load_vec(xc + i) + alpha[c] * pv, m);
            const Vec<double> rv = load_vec(rc + i) - alpha[c] * load_vec(qc + i);
            store_first(rc + i, rv, m);
            // the next iteration's preconditioner input
            store_first(bc + i, __builtin_convertvector(rv, HalfVecFloat), m);
          });
          double pmax = 0.0;
          for (int j = 0; j < kLanes<double>; ++j) pmax = std::max(pmax, big_lanes[j]);
          big = std::max(big, std::abs(alpha[c]) * pmax);
        }
      });
      previous = update;
      update = team.max(L, big);
    }
    if (team.leader()) {
      info->iterations = std::max(info->iterations, it);
      info->last_update = std::max(info->last_update, update);
    }
  }

  // After fcg (whose last sum is a sync: nobody reads the planes any more): the solution of
  // channels [c0, c0 + C) of C_in to `result`, and the slots of the grid planes zeroed again
  // (Level::work_clean), each thread on its share.
  void finish(const std::vector<double>& x, int64_t C_in, int64_t c0, const BhOutput& result) {
    const Level& F = levels[0];
    const int64_t n = F.n;
    each(F, [&](const Run& R, int64_t g, int64_t k, int64_t len) {
      int64_t rank = R.rank;
      for (int64_t i = 0; i < len; ++i) {
        if (!F.unknown[g + i]) continue;
        if (result.image != nullptr) {
          double* pixel = result.image + (int64_t{R.y} * F.W + R.x0 + i) * C_in + c0;
          for (int c = 0; c < C; ++c) pixel[c] = std::clamp(x[c * n + k + i], result.lo[c0 + c], result.hi[c0 + c]);
        } else {
          for (int c = 0; c < C; ++c) result.x[rank * C_in + c0 + c] = x[c * n + k + i];
        }
        ++rank;
      }
      for (int c = 0; c < C; ++c) fill_span(ws.grid.data() + c * F.plane + g, len, 0.0);
    });
    for (Level& L : levels)
      each(L, [&](const Run&, int64_t g, int64_t, int64_t len) {
        for (auto* v : {&L.x, &L.d, &L.d_next, &L.ke})
          for (int c = 0; c < C; ++c) fill_span(v->data() + c * L.plane + g, len, 0.0f);
      });
  }
};

// The number of threads that solve a system with this many slots on its finest level together.
// No more than the processors this process may run on: a team waits at hundreds of barriers per
// solve, and with more threads than processors each wait can last a scheduler time slice (4
// threads on 2 processors ran 1.8x slower than 2).
int team_size(int64_t fine_slots) {
  const int64_t by_size = std::max<int64_t>(1, fine_slots / (4 * kShareMinSlots));
  int64_t size = std::min<int64_t>({at::get_num_threads(), kMaxTeam, by_size});
#ifdef _OPENMP
  size = std::min<int64_t>(size, omp_get_num_procs());
#endif
  return static_cast<int>(std::max<int64_t>(size, 1));
}

template <int C>
void solve_channels(std::vector<Level>& levels, Workspace& ws, int64_t C_in, int64_t c0, const BhOutput& result, double tol,
                    int64_t max_iter, BhSolveInfo* info) {
  for (Level& L : levels) alloc_work(L, C);
  const Level& F = levels[0];
  const int64_t n = F.n;
  const double* b = ws.b.data() + c0 * n;
  std::vector<double>& x = ws.fx;
  // Every slot of these is written before it is read (fcg): no clearing. Slack: see alloc_work.
  x.resize(C * n + kBlock);
  for (auto* v : {&ws.r, &ws.q}) v->resize(C * n + kBlock);
  ws.bf.resize(C * n + kBlock);
  if (!ws.grid_clean || ws.grid.size() != static_cast<size_t>(C * F.plane + kSlack))
    ws.grid.assign(C * F.plane + kSlack, 0.0);
  ws.grid_clean = false;
  const Level& last = levels.back();
  if (!last.chol.empty()) levels.back().chol_rhs.assign(last.unknowns * C, 0.0);

  const int size = team_size(n);
  if (size > 1) {
    for (Level& L : levels) split_runs(L, size);
    TeamSums sums;
#pragma omp parallel num_threads(size)
    {
      Team team;
#ifdef _OPENMP
      team.id = omp_get_thread_num();
      team.size = omp_get_num_threads();
#endif
      team.sums = &sums;
      if (team.size != size) {  // the runtime gave fewer threads (nested region, limits): re-split
        team.barrier();
        if (team.leader())
          for (Level& L : levels) split_runs(L, team.size);
        team.barrier();
      }
      Solver<C> solver{levels, ws, team};
      solver.fcg(b, x, tol, max_iter, info);
      solver.finish(x, C_in, c0, result);
    }
  } else {
    Team team;
    Solver<C> solver{levels, ws, team};
    solver.fcg(b, x, tol, max_iter, info);
    solver.finish(x, C_in, c0, result);
  }
  for (Level& L : levels) L.work_clean = true;
  ws.grid_clean = true;
}

}  // namespace

const char* biharmonic_mg_solve(int64_t H, int64_t W, const uint8_t* hole, const double* image, int64_t C,
                                const double* table, const BhOutput& out, double tol, int64_t max_iter,
                                BhSolveInfo* info) {
  if (H <= 0 || W <= 0) return "empty image";
  if (C < 1) return "need at least one channel";
  if ((H + 4) * (W + 4) >= (int64_t{1} << 31) - 1) return "image too large for 32-bit indices";
  *info = BhSolveInfo{};

  std::vector<float> table_f(table, table + 81 * kBhFineTaps);
  for (int k = 0; k < 81 * kBhFineTaps; ++k)
    if (static_cast<double>(table_f[k]) != table[k]) return "stencil coefficients must be exact in float32";

  Workspace& ws = workspace();
  std::vector<Level> levels;
  levels.reserve(kMaxLevels + 1);  // no reallocation: references to levels stay valid
  auto new_level = [&]() -> Level& {
    if (ws.spare.empty()) {
      levels.emplace_back();
    } else {
      levels.push_back(std::move(ws.spare.back()));
      ws.spare.pop_back();
    }
    reset_level(levels.back());
    return levels.back();
  };
  // Give the level objects back to the workspace however this function returns.
  struct GiveBack {
    std::vector<Level>& levels;
    Workspace& ws;
    bool keep;
    ~GiveBack() {
      if (!keep) {
        ws = Workspace{};
        return;
      }
      for (auto it = levels.rbegin(); it != levels.rend(); ++it) ws.spare.push_back(std::move(*it));
    }
  } give_back{levels, ws, H * W <= kCacheMaxPixels};

  Level& F = new_level();
  F.finest = true;
  F.table = table_f.data();
  for (int t = 0; t < kBhFineTaps; ++t) F.interior[t] = table_f[kBhInteriorClass * kBhFineTaps + t];
  init_grid(F, H, W, kBhFineTaps);
  for (int64_t yy = 0; yy < H; ++yy)
    for (int64_t xx = 0; xx < W; ++xx) F.unknown[F.grid(yy, xx)] = hole[yy * W + xx] != 0;
  build_runs(F);
  const int64_t n = F.n;
  if (F.unknowns == 0) return "no hole pixel";
  if (F.unknowns == H * W) return "no known pixel";
  for (const Run& R : F.runs)
    for (int64_t xx = R.x0; xx < R.x0 + R.len; ++xx)
      if (F.unknown[F.grid(R.y, xx)] && !(table[bh_stencil_class(R.y, xx, H, W) * kBhFineTaps + kBhFineCentre] > 0))
        return "the matrix has a non-positive diagonal entry";
  block_coefficients(F);  // the border runs' (the right-hand side below needs them)

  // Right-hand sides, compact channel-major (C x n): the taps on known pixels move to b, so
  // b = -(A applied to the image with its hole zeroed), at the unknowns: one matrix-vector product
  // per channel on a grid plane of the known values.
  std::vector<double>& b = ws.b;
  b.resize(C * n + kBlock);  // every slot is written below; + slack: read by whole blocks
  {
    // The known values, one plane per channel. Every image pixel is written, so the planes'
    // margins stay zero from one solve to the next of the same shape.
    std::vector<double>& known = ws.known;
    if (ws.known_shape != std::array<int64_t, 3>{H, W, C}) {
      known.assign(C * F.plane + kSlack, 0.0);
      ws.known_shape = {H, W, C};
    }
    // The same pass finds each channel's range of known values (lo, hi) and checks they are finite.
    for (int64_t c = 0; c < C; ++c) {
      out.lo[c] = INFINITY;
      out.hi[c] = -INFINITY;
    }
    bool finite = true;
    std::mutex merge;
    at::parallel_for(0, H, 16, [&](int64_t y0, int64_t y1) {
      std::vector<double> lo(C, INFINITY), hi(C, -INFINITY);
      bool ok = true;
      for (int64_t yy = y0; yy < y1; ++yy) {
        const uint8_t* h = hole + yy * W;
        const double* src = image + yy * W * C;
        if (out.image != nullptr && out.image != image) std::memcpy(out.image + yy * W * C, src, W * C * sizeof(double));
        for (int64_t c = 0; c < C; ++c) {
          double* row = known.data() + c * F.plane + F.grid(yy, 0);
          double l = lo[c], u = hi[c];
          for (int64_t xx = 0; xx < W; ++xx) {
            const double v = h[xx] ? 0.0 : src[xx * C + c];
            row[xx] = v;
            ok = ok && v - v == 0.0;  // false for NaN and inf
            if (!h[xx]) {
              l = std::min(l, v);
              u = std::max(u, v);
            }
          }
          lo[c] = l;
          hi[c] = u;
        }
      }
      std::lock_guard<std::mutex> lock(merge);
      finite = finite && ok;
      for (int64_t c = 0; c < C; ++c) {
        out.lo[c] = std::min(out.lo[c], lo[c]);
        out.hi[c] = std::max(out.hi[c], hi[c]);
      }
    });
    if (!finite) return "image has non-finite values (NaN or inf) outside the hole";
    for_channel_groups(C, [&](int64_t c0, auto group) {
      minus_matvec<decltype(group)::value>(F, known.data() + c0 * F.plane, b.data() + c0 * n);
    });
  }

  if (F.unknowns > kCoarsestMax) {
    while (levels.back().unknowns > kCoarsestMax && static_cast<int>(levels.size()) < kMaxLevels) {
      const Level& fine = levels.back();
      Level& next = new_level();
      coarsen(fine, next);
      if (next.unknowns > kStallRatio * fine.unknowns) {  // coarsening stalled: drop the level
        ws.spare.push_back(std::move(next));
        levels.pop_back();
        break;
      }
    }
  }
  // Each level's coefficient blocks and smoother bounds: independent, so the levels are dealt to
  // the threads (the second level alone is about half of the work).
  std::exception_ptr failure;
  const int64_t count = static_cast<int64_t>(levels.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, std::min<int>(at::get_num_threads(), count)))
  for (int64_t i = 0; i < count; ++i) {
    try {
      Level& L = levels[i];
      if (!L.finest) block_coefficients(L);
      setup_smoother(L);
      if (i + 1 < count && !L.coef.empty() && !L.coef_clean) {  // served its Galerkin product and blocks
        clean_planes(L, L.coef, L.taps);
        L.coef_clean = true;
      }
    } catch (...) {
#pragma omp critical(fastinpaint_bh_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
  Level& last = levels.back();
  if (last.unknowns <= kCoarsestMax) {
    if (last.finest) {  // a small system: the coarsest level is the fine one
      finest_coef_planes(last);
      last.taps = kBhFineTaps;
    }
    factor_coarsest(last);
  }
  // The last level's coefficient planes have served too (blocks, diagonals, Cholesky factor).
  if (!last.coef.empty() && !last.coef_clean) {
    clean_planes(last, last.coef, last.taps);
    last.coef_clean = true;
  }
  info->levels = static_cast<int64_t>(levels.size());

  // The tolerance is relative to the largest channel range of the known values.
  double scale = 0.0;
  for (int64_t c = 0; c < C; ++c) scale = std::max(scale, out.hi[c] - out.lo[c]);
  if (!(scale > 0)) scale = 1.0;
  tol *= scale;
  for_channel_groups(C, [&](int64_t c0, auto group) {
    solve_channels<decltype(group)::value>(levels, ws, C, c0, out, tol, max_iter, info);
  });
  info->last_update /= scale;
  return nullptr;
}

}  // namespace FASTINPAINT_CPU_ISA
}  // namespace cpu
}  // namespace fastinpaint
