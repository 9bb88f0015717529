// The thread team of the biharmonic solver: the threads of one parallel region that run the
// whole solve together, each on its share of every level's runs, and how the runs are shared out
// and how many threads solve. Apart from the levels because only the solve phase uses a team; the
// setup splits its loops across the intra-op threads (par_runs, setup_team).
// Compiled only as part of solver.cpp, once per instruction set (see simd.h).
#pragma once

#include <algorithm>
#include <cstdint>

#include <ATen/Parallel.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu/biharmonic/level.h"

namespace fastinpaint {
namespace cpu {
namespace FASTINPAINT_CPU_ISA {
namespace {

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

}  // namespace
}  // namespace FASTINPAINT_CPU_ISA
}  // namespace cpu
}  // namespace fastinpaint
